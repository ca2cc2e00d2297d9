"""Map tools that capture an AOI on the canvas: a rectangle and a polygon.

Both emit ``aoiCaptured(QgsGeometry, QgsCoordinateReferenceSystem)`` in the
canvas CRS. QGIS 3.22 has no capture signals on QgsMapToolCapture, so the
polygon tool is a plain QgsMapTool drawing its own QgsRubberBand.
"""

from __future__ import annotations

from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsPointXY, QgsRectangle
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent, QgsMapTool, QgsMapToolExtent, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QKeyEvent

from ..gis.compat import GEOMETRY_POLYGON
from .i18n import translator

tr = translator("MapTools")

#: Colour of everything the panel draws for the AOI.
AOI_STROKE = QColor(0, 0, 128)
AOI_FILL = QColor(0, 0, 128, 40)


class RectangleAoiTool(QgsMapToolExtent):
    """Drag a rectangle; emits the AOI when the mouse button is released."""

    aoiCaptured = pyqtSignal(QgsGeometry, QgsCoordinateReferenceSystem)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.setToolName(tr("Draw a rectangle AOI"))
        self.extentChanged.connect(self._on_extent)

    def _on_extent(self, rectangle: QgsRectangle) -> None:
        if rectangle.isNull() or rectangle.width() <= 0 or rectangle.height() <= 0:
            return
        crs = self.canvas().mapSettings().destinationCrs()
        self.clearRubberBand()
        self.aoiCaptured.emit(QgsGeometry.fromRect(rectangle), crs)


class PolygonAoiTool(QgsMapTool):
    """Click vertices; right-click or double-click closes the polygon; Backspace undoes; Esc cancels."""

    aoiCaptured = pyqtSignal(QgsGeometry, QgsCoordinateReferenceSystem)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.setToolName(tr("Draw a polygon AOI"))
        self.setCursor(Qt.CursorShape.CrossCursor)
        self._points: list[QgsPointXY] = []
        self._band = QgsRubberBand(canvas, GEOMETRY_POLYGON)
        self._band.setStrokeColor(AOI_STROKE)
        self._band.setFillColor(AOI_FILL)
        self._band.setWidth(2)
        self._band.setLineStyle(Qt.PenStyle.DashLine)

    # events -----------------------------------------------------------------
    def canvasPressEvent(self, event: QgsMapMouseEvent) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            self._finish()
        elif event.button() == Qt.MouseButton.LeftButton:
            self._points.append(event.snapPoint())
            self._redraw()

    def canvasMoveEvent(self, event: QgsMapMouseEvent) -> None:
        if self._points:
            self._redraw(floating=event.snapPoint())

    def canvasDoubleClickEvent(self, event: QgsMapMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._finish()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.reset()
            event.accept()
        elif event.key() in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete) and self._points:
            self._points.pop()
            self._redraw()
            event.accept()
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._finish()
            event.accept()
        else:
            event.ignore()

    def deactivate(self) -> None:
        self.reset()
        super().deactivate()

    # helpers ----------------------------------------------------------------
    def points(self) -> list[QgsPointXY]:
        return list(self._points)

    def reset(self) -> None:
        self._points.clear()
        self._band.reset(GEOMETRY_POLYGON)

    def remove_rubber_band(self) -> None:
        """Take the rubber band off the canvas (the plugin's unload)."""
        self.reset()
        scene = self._band.scene()
        if scene is not None:
            scene.removeItem(self._band)

    def _redraw(self, floating: QgsPointXY | None = None) -> None:
        self._band.reset(GEOMETRY_POLYGON)
        points = self._points + ([floating] if floating is not None else [])
        for i, point in enumerate(points):
            self._band.addPoint(point, i == len(points) - 1)

    def _finish(self) -> None:
        points = _without_repeats(self._points)
        self.reset()
        if len(points) < 3:
            return
        geometry = QgsGeometry.fromPolygonXY([points + [points[0]]])
        if not geometry.isGeosValid():
            geometry = geometry.makeValid()
        if geometry.isNull() or geometry.area() <= 0:
            return
        self.aoiCaptured.emit(geometry, self.canvas().mapSettings().destinationCrs())


def _without_repeats(points: list[QgsPointXY]) -> list[QgsPointXY]:
    """Drop consecutive duplicates (a double-click adds the last vertex twice)."""
    kept: list[QgsPointXY] = []
    for point in points:
        if not kept or point != kept[-1]:
            kept.append(point)
    return kept


class AoiRubberBand:
    """Shows the current AOI (or the grid preview) on the canvas."""

    def __init__(self, canvas: QgsMapCanvas, stroke: QColor = AOI_STROKE, fill: QColor = AOI_FILL, width: int = 2):
        self._canvas = canvas
        self.band = QgsRubberBand(canvas, GEOMETRY_POLYGON)
        self.band.setStrokeColor(stroke)
        self.band.setFillColor(fill)
        self.band.setWidth(width)

    def show(self, geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem) -> None:
        self.band.setToGeometry(geometry, crs)
        self.band.show()

    def clear(self) -> None:
        self.band.reset(GEOMETRY_POLYGON)

    def is_empty(self) -> bool:
        return self.band.numberOfVertices() == 0

    def remove(self) -> None:
        self.clear()
        scene = self.band.scene()
        if scene is not None:
            scene.removeItem(self.band)
