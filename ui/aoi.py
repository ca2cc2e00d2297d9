"""The area of interest (AOI): a polygon, its CRS, where it came from, and its area."""

from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDistanceArea,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)

from ..gis.compat import AREA_SQUARE_KILOMETERS, GEOMETRY_POLYGON
from .i18n import translator

tr = translator("Aoi")


@dataclass
class Aoi:
    """A polygon AOI in ``crs``; ``source`` says where it came from, for the user."""

    geometry: QgsGeometry
    crs: QgsCoordinateReferenceSystem
    source: str

    def area_km2(self) -> float:
        """Ellipsoidal area in square kilometres (WGS 84 ellipsoid)."""
        measure = QgsDistanceArea()
        measure.setSourceCrs(self.crs, QgsProject.instance().transformContext())
        measure.setEllipsoid("EPSG:7030")
        square_metres = measure.measureArea(self.geometry)
        return measure.convertAreaMeasurement(square_metres, AREA_SQUARE_KILOMETERS)

    def in_crs(self, crs: QgsCoordinateReferenceSystem) -> QgsGeometry:
        geometry = QgsGeometry(self.geometry)
        if crs != self.crs:
            geometry.transform(QgsCoordinateTransform(self.crs, crs, QgsProject.instance()))
        return geometry

    def wkt(self) -> str:
        return self.geometry.asWkt()

    def crs_authid(self) -> str:
        """``EPSG:xxxx`` when the CRS has one, else its WKT (what pyproj accepts)."""
        return self.crs.authid() or self.crs.toWkt()

    def is_valid_polygon(self) -> bool:
        return not self.geometry.isNull() and self.geometry.type() == GEOMETRY_POLYGON and self.geometry.area() > 0


def aoi_from_rectangle(rectangle: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> Aoi:
    return Aoi(QgsGeometry.fromRect(rectangle), crs, tr("Rectangle drawn on the map"))


def aoi_from_selected_features(layer: QgsVectorLayer) -> Aoi | None:
    """Union of the selected polygons of ``layer`` (None when nothing usable is selected)."""
    if layer is None or not isinstance(layer, QgsVectorLayer) or layer.selectedFeatureCount() == 0:
        return None
    request = QgsFeatureRequest().setNoAttributes()
    parts = [f.geometry() for f in layer.getSelectedFeatures(request) if f.hasGeometry()]
    parts = [g for g in parts if g.type() == GEOMETRY_POLYGON]
    if not parts:
        return None
    union = QgsGeometry.unaryUnion(parts)
    if union.isNull():
        return None
    count = len(parts)
    source = tr("{count} selected feature(s) of layer '{layer}'").format(count=count, layer=layer.name())
    return Aoi(union, layer.crs(), source)


def aoi_from_layer_extent(layer) -> Aoi | None:
    if layer is None or not layer.isValid():
        return None
    extent = layer.extent()
    if extent.isNull() or extent.isEmpty():
        return None
    return Aoi(QgsGeometry.fromRect(extent), layer.crs(), tr("Extent of layer '{layer}'").format(layer=layer.name()))
