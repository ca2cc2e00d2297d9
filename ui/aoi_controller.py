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
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QAction, QMenu, QStackedWidget, QToolButton, QWidget

from ..gis.compat import GEOMETRY_POLYGON
from .aoi import Aoi, aoi_from_layer_extent, aoi_from_selected_features
from .i18n import translator
from .map_tools import AoiRubberBand, PolygonAoiTool, RectangleAoiTool
from .widgets import icon

tr = translator("AoiController")
log = logging.getLogger(__name__)


def show_map_canvas(canvas: QWidget) -> bool:
    """Bring the map canvas to the front; True when it is visible then.

    Before a project is opened QGIS shows its welcome page in the canvas's place (the two are
    pages of a QStackedWidget): a map tool turned on there draws on a hidden map, so nothing
    happens. Showing the canvas's page is what QGIS itself does when the first layer is added.
    """
    if canvas.isVisible():
        return True
    child, parent = canvas, canvas.parentWidget()
    while parent is not None:
        if isinstance(parent, QStackedWidget) and parent.indexOf(child) >= 0:
            parent.setCurrentWidget(child)
        child, parent = parent, parent.parentWidget()
    return canvas.isVisible()


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
        self.selection_action.setToolTip(tr("Use the selected polygons of the active layer as the area of interest"))
        self.selection_action.triggered.connect(lambda: self.use_selected_features())
        self.extent_action = self._action(
            window, "aoi_selection", tr("Use the extent of the active layer as AOI"), "OpenEOTileJobsUseExtent"
        )
        self.extent_action.triggered.connect(lambda: self.use_layer_extent())
        # The extent is in the drop-down of the selection's toolbar button (selection_button), not
        # in a menu of selection_action: QGIS's plugin menu shows an action with a menu as a submenu
        # that repeats the action's own name.
        self._menu = QMenu(window)
        self._menu.addAction(self.extent_action)

    @staticmethod
    def _action(parent: QWidget, icon_name: str, text: str, name: str, checkable: bool = False) -> QAction:
        action = QAction(icon(icon_name), text, parent)
        action.setObjectName(name)
        action.setCheckable(checkable)
        return action

    def selection_button(self, parent: QWidget) -> QToolButton:
        """The toolbar's selection button: click uses the selection, its arrow offers the extent."""
        button = QToolButton(parent)
        button.setDefaultAction(self.selection_action)
        button.setMenu(self._menu)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        button.setObjectName("OpenEOTileJobsUseSelectionButton")
        return button

    def toolbar_actions(self) -> list[QAction]:
        """The actions the plugin puts on its toolbar and menu (the extent one lives in the selection menu)."""
        return [self.rectangle_action, self.polygon_action, self.selection_action]

    # setting the AOI -----------------------------------------------------------
    def activate_tool(self, tool) -> None:
        self.canvas.setMapTool(tool)
        if not show_map_canvas(self.canvas):
            self.message.emit(
                tr("The map is not shown, so there is nowhere to draw: open or create a project, then draw the area."),
                Qgis.MessageLevel.Warning,
            )
        elif not QgsProject.instance().mapLayers():
            if self.canvas.extent().width() <= 0 or self.canvas.scale() < 1_000:  # an empty project's
                world = QgsRectangle(-180, -85, 180, 85)
                wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
                transform = QgsCoordinateTransform(
                    wgs84, self.canvas.mapSettings().destinationCrs(), QgsProject.instance()
                )
                self.canvas.setExtent(transform.transformBoundingBox(world))
                self.canvas.refresh()
            self.message.emit(
                tr("The map has no layer yet: add one (or a basemap) to see where you draw, or use a layer's extent."),
                Qgis.MessageLevel.Info,
            )

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
            self.extent_action,
        ):
            action.deleteLater()
        self._menu.deleteLater()
