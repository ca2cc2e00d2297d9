"""The tile menu on the map: a map tool that opens it for the tile under the mouse, and a
map-layer action (identify results, attribute table) that opens it for a feature."""

from __future__ import annotations

from typing import Callable, Optional

from qgis.core import Qgis, QgsFeature, QgsMapLayer, QgsVectorLayer
from qgis.gui import QgsGui, QgsMapLayerAction, QgsMapMouseEvent, QgsMapToolIdentify
from qgis.PyQt.QtGui import QCursor
from qgis.PyQt.QtWidgets import QMenu

from .i18n import translator
from .run_page import TileActions, build_tile_menu

SINGLE_FEATURE = (
    Qgis.MapLayerActionTarget.SingleFeature
    if hasattr(Qgis, "MapLayerActionTarget")
    else QgsMapLayerAction.Target.SingleFeature  # before QGIS 3.30
)

tr = translator("TileMapMenu")

RowsForFids = Callable[[list[int]], list[dict]]


def tile_menu(rows: list[dict], actions: TileActions, parent=None) -> QMenu:
    menu = QMenu(parent)
    build_tile_menu(menu, rows, actions)
    return menu


class TileMenuTool(QgsMapToolIdentify):
    """Click a tile of the run's tile layer: its menu (logs, retry, results, job id) opens."""

    def __init__(self, canvas, layer: Callable[[], Optional[QgsVectorLayer]], rows: RowsForFids, actions: TileActions):
        super().__init__(canvas)
        self.setToolName(tr("Tile menu"))
        self._layer = layer
        self._rows = rows
        self._actions = actions
        self.last_menu: Optional[QMenu] = None
        self.last_rows: list[dict] = []

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:
        layer = self._layer()
        if layer is None:
            return
        point = event.pixelPoint()  # Qt 6 mouse events have no x()/y()
        hits = self.identify(point.x(), point.y(), [layer], QgsMapToolIdentify.IdentifyMode.TopDownStopAtFirst)
        fids = [int(hit.mFeature.id()) for hit in hits]
        rows = self._rows(fids) if fids else []
        if not rows:
            return
        self.last_rows = rows
        self.last_menu = tile_menu(rows, self._actions, self.canvas())
        self.last_menu.popup(self.canvas().mapToGlobal(point))

    def canvasPressEvent(self, event: QgsMapMouseEvent) -> None:  # identify on release only
        event.accept()


class TileLayerAction(QgsMapLayerAction):
    """ "openEO tile…" in the identify results and the attribute table of the tile layer."""

    def __init__(self, layer: QgsMapLayer, rows: RowsForFids, actions: TileActions, parent=None) -> None:
        super().__init__(tr("openEO tile…"), parent, layer, SINGLE_FEATURE)
        self._rows = rows
        self._actions = actions
        self.last_menu: Optional[QMenu] = None
        self.triggeredForFeature.connect(self._open)

    def _open(self, _layer: QgsMapLayer, feature: QgsFeature) -> None:
        rows = self._rows([int(feature.id())])
        if rows:
            self.last_menu = tile_menu(rows, self._actions)
            self.last_menu.popup(QCursor.pos())

    def register(self) -> None:
        QgsGui.mapLayerActionRegistry().addMapLayerAction(self)

    def unregister(self) -> None:
        QgsGui.mapLayerActionRegistry().removeMapLayerAction(self)
