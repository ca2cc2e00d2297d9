"""QGIS enums that QGIS 3.26-3.36 moved into ``Qgis``, spelled once for QGIS 3.22 up to QGIS 4.

QGIS 3.30+ still answers to the old class-scoped names through aliases; QGIS 4 does not. Each
constant takes the ``Qgis`` member where this QGIS has it, else the class-scoped one. The old
branch carries the comment ``# before QGIS ...``, which scripts/qt6_rules.py accepts on QGIS 3.44.
"""

from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsColorRampShader,
    QgsCoordinateReferenceSystem,
    QgsMapLayerProxyModel,
    QgsPalLayerSettings,
    QgsProcessing,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsUnitTypes,
    QgsWkbTypes,
)


def _has(enum_name: str) -> bool:
    return hasattr(Qgis, enum_name)


GEOMETRY_POLYGON = (
    Qgis.GeometryType.Polygon if _has("GeometryType") else QgsWkbTypes.GeometryType.PolygonGeometry  # before QGIS 3.30
)
AREA_SQUARE_KILOMETERS = (
    Qgis.AreaUnit.SquareKilometers
    if _has("AreaUnit")
    else QgsUnitTypes.AreaUnit.AreaSquareKilometers  # before QGIS 3.30
)
LABEL_OVER_POINT = (
    Qgis.LabelPlacement.OverPoint
    if _has("LabelPlacement")
    else QgsPalLayerSettings.Placement.OverPoint  # before QGIS 3.26
)
LAYER_FILTER_VECTOR = (
    Qgis.LayerFilter.VectorLayer
    if _has("LayerFilter")
    else QgsMapLayerProxyModel.Filter.VectorLayer  # before QGIS 3.34
)
LAYER_FILTER_RASTER = (
    Qgis.LayerFilter.RasterLayer
    if _has("LayerFilter")
    else QgsMapLayerProxyModel.Filter.RasterLayer  # before QGIS 3.34
)
CRS_WKT_PREFERRED = (
    Qgis.CrsWktVariant.Preferred
    if _has("CrsWktVariant")
    else QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED  # before QGIS 3.36
)
SHADER_LINEAR = (
    Qgis.ShaderInterpolationMethod.Linear
    if _has("ShaderInterpolationMethod")
    else QgsColorRampShader.Type.Interpolated  # before QGIS 3.36
)
NUMBER_DOUBLE = (
    Qgis.ProcessingNumberParameterType.Double
    if _has("ProcessingNumberParameterType")
    else QgsProcessingParameterNumber.Type.Double  # before QGIS 3.36
)
NUMBER_INTEGER = (
    Qgis.ProcessingNumberParameterType.Integer
    if _has("ProcessingNumberParameterType")
    else QgsProcessingParameterNumber.Type.Integer  # before QGIS 3.36
)
PARAMETER_ADVANCED = (
    Qgis.ProcessingParameterFlag.Advanced
    if _has("ProcessingParameterFlag")
    else QgsProcessingParameterDefinition.Flag.FlagAdvanced  # before QGIS 3.36
)
SOURCE_VECTOR_POLYGON = (
    Qgis.ProcessingSourceType.VectorPolygon
    if _has("ProcessingSourceType")
    else QgsProcessing.SourceType.TypeVectorPolygon  # before QGIS 3.36
)
