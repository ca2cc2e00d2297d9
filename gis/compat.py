"""QGIS enums that QGIS 3.26-3.36 moved into ``Qgis``, spelled once for QGIS 3.22 up to QGIS 4.

QGIS 3.30+ still answers to the old class-scoped names through aliases; QGIS 4 does not. Each
constant is the ``Qgis`` member where this QGIS has it, else the class-scoped one. The old
spelling's line carries the comment ``# before QGIS ...``, which scripts/qt6_rules.py accepts.
"""

from __future__ import annotations

from typing import Callable

from qgis.core import Qgis, QgsColorRampShader, QgsMapLayerProxyModel, QgsPalLayerSettings, QgsProcessing, QgsUnitTypes
from qgis.core import QgsCoordinateReferenceSystem as Crs
from qgis.core import QgsProcessingParameterDefinition as ParameterDefinition
from qgis.core import QgsProcessingParameterNumber as NumberParameter
from qgis.core import QgsWkbTypes as WkbTypes


def _moved(enum_name: str, member: str, before: Callable[[], object]) -> object:
    """``Qgis.<enum_name>.<member>`` where this QGIS has that enum, else ``before()``."""
    enum_type = getattr(Qgis, enum_name, None)
    return getattr(enum_type, member) if enum_type is not None else before()


GEOMETRY_POLYGON = _moved("GeometryType", "Polygon", lambda: WkbTypes.GeometryType.PolygonGeometry)  # before QGIS 3.30
AREA_SQUARE_KILOMETERS = _moved(
    "AreaUnit", "SquareKilometers", lambda: QgsUnitTypes.AreaUnit.AreaSquareKilometers
)  # before QGIS 3.30
LABEL_OVER_POINT = _moved(
    "LabelPlacement", "OverPoint", lambda: QgsPalLayerSettings.Placement.OverPoint
)  # before QGIS 3.26
LAYER_FILTER_VECTOR = _moved(
    "LayerFilter", "VectorLayer", lambda: QgsMapLayerProxyModel.Filter.VectorLayer
)  # before QGIS 3.34
LAYER_FILTER_RASTER = _moved(
    "LayerFilter", "RasterLayer", lambda: QgsMapLayerProxyModel.Filter.RasterLayer
)  # before QGIS 3.34
CRS_WKT_PREFERRED = _moved("CrsWktVariant", "Preferred", lambda: Crs.WktVariant.WKT_PREFERRED)  # before QGIS 3.36
SHADER_LINEAR = _moved(
    "ShaderInterpolationMethod", "Linear", lambda: QgsColorRampShader.Type.Interpolated
)  # before QGIS 3.36
NUMBER_DOUBLE = _moved(
    "ProcessingNumberParameterType", "Double", lambda: NumberParameter.Type.Double
)  # before QGIS 3.36
NUMBER_INTEGER = _moved(
    "ProcessingNumberParameterType", "Integer", lambda: NumberParameter.Type.Integer
)  # before QGIS 3.36
PARAMETER_ADVANCED = _moved(
    "ProcessingParameterFlag", "Advanced", lambda: ParameterDefinition.Flag.FlagAdvanced
)  # before QGIS 3.36
SOURCE_VECTOR_POLYGON = _moved(
    "ProcessingSourceType", "VectorPolygon", lambda: QgsProcessing.SourceType.TypeVectorPolygon
)  # before QGIS 3.36
