"""AOI map tools driven by simulated mouse events on a real QgsMapCanvas."""

from __future__ import annotations

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle
from qgis.PyQt.QtCore import QPoint, Qt

from openeo_tile_jobs.ui.aoi import Aoi
from openeo_tile_jobs.ui.map_tools import AoiRubberBand, PolygonAoiTool, RectangleAoiTool

UTM31 = QgsCoordinateReferenceSystem("EPSG:32631")


@pytest.fixture()
def canvas(qgis_canvas, qtbot):
    qgis_canvas.setDestinationCrs(UTM31)
    window = qgis_canvas.window()  # the canvas only gets its real size once its window shows
    window.resize(1000, 700)
    window.show()
    qtbot.waitUntil(lambda: qgis_canvas.mapSettings().outputSize().width() > 700)
    qgis_canvas.setExtent(QgsRectangle(500_000, 5_000_000, 580_000, 5_060_000))
    qgis_canvas.refresh()
    yield qgis_canvas
    qgis_canvas.unsetMapTool(qgis_canvas.mapTool())


def _captured(tool):
    got = []
    tool.aoiCaptured.connect(lambda geometry, crs: got.append(Aoi(geometry, crs, "test")))
    return got


def test_rectangle_tool_emits_drawn_rectangle(canvas, qtbot) -> None:
    tool = RectangleAoiTool(canvas)
    canvas.setMapTool(tool)
    got = _captured(tool)
    viewport = canvas.viewport()
    start, end = QPoint(100, 100), QPoint(300, 250)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, pos=QPoint(200, 180))
    qtbot.mouseMove(viewport, pos=end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)

    assert len(got) == 1
    aoi = got[0]
    assert aoi.crs.authid() == "EPSG:32631"
    corner_a = canvas.getCoordinateTransform().toMapCoordinates(start)
    corner_b = canvas.getCoordinateTransform().toMapCoordinates(end)
    box = aoi.geometry.boundingBox()
    assert box.xMinimum() == pytest.approx(min(corner_a.x(), corner_b.x()))
    assert box.yMaximum() == pytest.approx(max(corner_a.y(), corner_b.y()))
    # 200 x 150 pixels; the UTM scale factor makes the ellipsoidal area differ slightly from the planar one
    planar_km2 = 200 * 150 * canvas.mapUnitsPerPixel() ** 2 / 1e6
    assert aoi.area_km2() == pytest.approx(planar_km2, rel=0.01)


def test_polygon_tool_clicks_then_right_click(canvas, qtbot) -> None:
    tool = PolygonAoiTool(canvas)
    canvas.setMapTool(tool)
    got = _captured(tool)
    viewport = canvas.viewport()
    for point in (QPoint(100, 100), QPoint(300, 100), QPoint(300, 300)):
        qtbot.mouseMove(viewport, pos=point)
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=point)
    assert len(tool.points()) == 3
    qtbot.mouseClick(viewport, Qt.MouseButton.RightButton, pos=QPoint(300, 300))

    assert len(got) == 1
    assert got[0].is_valid_polygon()
    # right triangle with legs of 200 pixels
    assert got[0].geometry.area() == pytest.approx(0.5 * (200 * canvas.mapUnitsPerPixel()) ** 2, rel=1e-6)
    assert tool.points() == []


def test_polygon_tool_escape_and_too_few_points_emit_nothing(canvas, qtbot) -> None:
    tool = PolygonAoiTool(canvas)
    canvas.setMapTool(tool)
    got = _captured(tool)
    viewport = canvas.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=QPoint(200, 100))
    qtbot.mouseClick(viewport, Qt.MouseButton.RightButton, pos=QPoint(200, 100))  # only two vertices
    assert got == []
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=QPoint(200, 100))
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=QPoint(200, 200))
    qtbot.keyClick(viewport, Qt.Key.Key_Escape)
    assert tool.points() == []
    qtbot.mouseClick(viewport, Qt.MouseButton.RightButton, pos=QPoint(200, 100))
    assert got == []


def test_rubber_band_shows_and_clears(canvas) -> None:
    band = AoiRubberBand(canvas)
    aoi_crs = QgsCoordinateReferenceSystem("EPSG:4326")
    from qgis.core import QgsGeometry

    band.show(QgsGeometry.fromRect(QgsRectangle(3.1, 45.2, 3.3, 45.4)), aoi_crs)
    assert not band.is_empty()
    band.remove()
    assert band.is_empty()
