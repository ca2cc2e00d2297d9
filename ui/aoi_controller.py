"""The current AOI and how the user sets it: map tools, toolbar actions and the rubber band."""

from __future__ import annotations

import logging
from typing import Optional

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsMapLayer,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QAction, QMenu, QWidget

from ..gis.compat import GEOMETRY_POLYGON
from .aoi import Aoi, aoi_from_layer_extent, aoi_from_selected_features
from .i18n import translator
from .map_tools import AoiRubberBand, PolygonAoiTool, RectangleAoiTool
from .widgets import icon

tr = translator("AoiController")
log = logging.getLogger(__name__)


class AoiController(QObject):
    """Owns the AOI map tools, their actions and the AOI rubber band; emits ``aoiChanged``."""

    aoiChanged = pyqtSignal(object)  # Aoi or None
    message = pyqtSignal(str, int)  # text, Qgis.MessageLevel

    def __init__(self, iface, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.aoi: Optional[Aoi] = None
        self.rectangle_tool = RectangleAoiTool(self.canvas)
        self.polygon_tool = PolygonAoiTool(self.canvas)
        self.rectangle_tool.aoiCaptured.connect(lambda g, c: self._captured(g, c, tr("Rectangle drawn on the map")))
        self.polygon_tool.aoiCaptured.connect(lambda g, c: self._captured(g, c, tr("Polygon drawn on the map")))
        self.band = AoiRubberBand(self.canvas)

        window = iface.mainWindow()
        self.rectangle_action = self._action(
            window, "aoi_rectangle", tr("Draw a rectangle AOI"), "OpenEOTileJobsDrawRectangle", checkable=True
        )
        self.rectangle_action.setToolTip(tr("Draw the area of interest as a rectangle: press, drag and release"))
        self.rectangle_action.triggered.connect(lambda: self.activate_tool(self.rectangle_tool))
        self.rectangle_tool.setAction(self.rectangle_action)

        self.polygon_action = self._action(
            window, "aoi_polygon", tr("Draw a polygon AOI"), "OpenEOTileJobsDrawPolygon", checkable=True
        )
        self.polygon_action.setToolTip(
            tr("Draw the area of interest as a polygon: click the vertices, right-click to finish, Esc to cancel")
        )
        self.polygon_action.triggered.connect(lambda: self.activate_tool(self.polygon_tool))
        self.polygon_tool.setAction(self.polygon_action)

        self.selection_action = self._action(
            window, "aoi_selection", tr("Use the selected features as AOI"), "OpenEOTileJobsUseSelection"
        )
        self.selection_action.setToolTip(
            tr("Use the selected polygons of the active layer as the area of interest (menu: the layer's extent)")
        )
        self.selection_action.triggered.connect(lambda: self.use_selected_features())
        self.extent_action = self._action(
            window, "aoi_selection", tr("Use the extent of the active layer as AOI"), "OpenEOTileJobsUseExtent"
        )
        self.extent_action.triggered.connect(lambda: self.use_layer_extent())
        self._menu = QMenu(window)
        # Not selection_action itself: a menu holding the action it hangs on is a cycle, and QGIS's
        # customization walks menus recursively when the plugin loads (stack overflow, QGIS crashes).
        self.selection_menu_action = self._action(
            window, "aoi_selection", tr("Use the selected features as AOI"), "OpenEOTileJobsUseSelectionMenu"
        )
        self.selection_menu_action.triggered.connect(lambda: self.use_selected_features())
        self._menu.addAction(self.selection_menu_action)
        self._menu.addAction(self.extent_action)
        self.selection_action.setMenu(self._menu)

    @staticmethod
    def _action(parent: QWidget, icon_name: str, text: str, name: str, checkable: bool = False) -> QAction:
        action = QAction(icon(icon_name), text, parent)
        action.setObjectName(name)
        action.setCheckable(checkable)
        return action

    def toolbar_actions(self) -> list[QAction]:
        """The actions the plugin puts on its toolbar and menu (the extent one lives in the selection menu)."""
        return [self.rectangle_action, self.polygon_action, self.selection_action]

    # setting the AOI -----------------------------------------------------------
    def activate_tool(self, tool) -> None:
        self.canvas.setMapTool(tool)

    def use_selected_features(self, layer: Optional[QgsMapLayer] = None) -> bool:
        layer = layer if layer is not None else self.iface.activeLayer()
        if not isinstance(layer, QgsVectorLayer) or layer.geometryType() != GEOMETRY_POLYGON:
            self.message.emit(tr("Select polygon features in a polygon layer first."), Qgis.MessageLevel.Warning)
            return False
        aoi = aoi_from_selected_features(layer)
        if aoi is None:
            self.message.emit(
                tr("No polygon is selected in layer '{layer}'.").format(layer=layer.name()), Qgis.MessageLevel.Warning
            )
            return False
        self.set_aoi(aoi)
        return True

    def use_layer_extent(self, layer: Optional[QgsMapLayer] = None) -> bool:
        layer = layer if layer is not None else self.iface.activeLayer()
        aoi = aoi_from_layer_extent(layer)
        if aoi is None:
            self.message.emit(tr("Choose a layer with an extent first."), Qgis.MessageLevel.Warning)
            return False
        self.set_aoi(aoi)
        return True

    def _captured(self, geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem, source: str) -> None:
        self.set_aoi(Aoi(geometry, crs, source))

    def set_aoi(self, aoi: Optional[Aoi]) -> None:
        self.aoi = aoi
        self.set_outline_only(False)
        if aoi is None:
            self.band.clear()
        else:
            self.band.show(aoi.geometry, aoi.crs)
            log.info("AOI set: %s, %.2f km²", aoi.source, aoi.area_km2())
        self.aoiChanged.emit(aoi)

    def clear(self) -> None:
        self.set_aoi(None)

    def set_outline_only(self, outline_only: bool) -> None:
        """Drop the AOI's fill once tiles are drawn over it (their colours must show)."""
        from qgis.PyQt.QtGui import QColor

        from .map_tools import AOI_FILL

        self.band.band.setFillColor(QColor(0, 0, 0, 0) if outline_only else AOI_FILL)

    def zoom_to_aoi(self) -> None:
        if self.aoi is None:
            return
        destination = self.canvas.mapSettings().destinationCrs()
        transform = QgsCoordinateTransform(self.aoi.crs, destination, QgsProject.instance())
        extent = transform.transformBoundingBox(self.aoi.geometry.boundingBox())
        extent.scale(1.1)
        self.canvas.setExtent(extent)
        self.canvas.refresh()

    # unload -----------------------------------------------------------------------
    def close_down(self) -> None:
        """Leave the canvas as it was: no tool of ours active, no rubber band."""
        for tool in (self.rectangle_tool, self.polygon_tool):
            if self.canvas.mapTool() is tool:
                self.canvas.unsetMapTool(tool)
        self.polygon_tool.remove_rubber_band()
        self.band.remove()
        for action in (
            self.rectangle_action,
            self.polygon_action,
            self.selection_action,
            self.selection_menu_action,
            self.extent_action,
        ):
            action.deleteLater()
        self._menu.deleteLater()
