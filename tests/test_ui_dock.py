"""The dock's steps driven through their real widgets: AOI drawn with the mouse, tile count,
grid creation with the limit confirmation, and invalid inputs that start nothing."""

from __future__ import annotations

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsRectangle, QgsSettings
from qgis.PyQt.QtCore import QPoint, Qt
from ui_helpers import panel

from openeo_tile_jobs.core import grid as core_grid
from openeo_tile_jobs.ui.dock import TileJobsDock

UTM31 = QgsCoordinateReferenceSystem("EPSG:32631")


@pytest.fixture()
def dock(qgis_iface, qgis_canvas, qtbot):
    with panel(qgis_iface, qgis_canvas, qtbot, QgsRectangle(500_000, 5_000_000, 580_000, 5_060_000)) as dock:
        dock.resize(400, 900)
        dock.show()
        yield dock


def draw_rectangle(canvas, qtbot, start=QPoint(100, 100), end=QPoint(300, 250)) -> None:
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, pos=(start + end) / 2)
    qtbot.mouseMove(viewport, pos=end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)


def test_every_step_reads_at_dock_width(dock) -> None:
    assert dock.tabs.count() == 5
    for index in range(dock.tabs.count()):
        page = dock.tabs.widget(index).widget()  # the scroll area's content
        assert page.minimumSizeHint().width() <= 400, dock.tabs.tabText(index)


def test_draw_aoi_preview_count_and_create_grid(dock, qgis_canvas, qtbot, tmp_path) -> None:
    dock.aoi_controller.rectangle_action.trigger()
    assert qgis_canvas.mapTool() is dock.aoi_controller.rectangle_tool
    draw_rectangle(qgis_canvas, qtbot)

    aoi = dock.aoi_controller.aoi
    assert aoi is not None and aoi.crs.authid() == "EPSG:32631"
    assert "km²" in dock.area_page.area_label.text()
    assert not dock.aoi_controller.band.is_empty()

    grid_page = dock.grid_page
    grid_page.tile_size.setValue(5000)
    qtbot.waitUntil(lambda: grid_page.preview_grid is not None and grid_page.preview_grid.tile_size == 5000)
    expected = core_grid.make_grid(aoi.wkt(), tile_size=5000, aoi_crs="EPSG:32631")
    assert grid_page.preview_count == len(expected)
    assert f"{len(expected):,} tiles" in grid_page.count_label.text()
    assert not grid_page.preview_band.is_empty()

    # above the limit: a warning, and nothing is written without the confirmation
    grid_page.max_tiles.setValue(2)
    qtbot.waitUntil(lambda: grid_page.confirm_many.isVisibleTo(grid_page))
    assert "above the limit" in grid_page.limit_warning.text()
    database = tmp_path / "run.gpkg"
    grid_page.database.setFilePath(str(database))
    qtbot.mouseClick(grid_page.create_button, Qt.MouseButton.LeftButton)
    assert "Confirm" in grid_page.create_message.text()
    assert not database.exists()

    grid_page.confirm_many.setChecked(True)
    qtbot.mouseClick(grid_page.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.run_controller.tile_layer is not None, timeout=10_000)
    assert database.exists()
    layer = dock.run_controller.tile_layer
    assert layer.featureCount() == len(expected)
    assert dock.run_page.model.rowCount() == len(expected)
    assert dock.run_page.count_labels["not_started"].text() == f"{len(expected):,}"


def test_polygon_from_toolbar_action(dock, qgis_canvas, qtbot) -> None:
    dock.aoi_controller.polygon_action.trigger()
    viewport = qgis_canvas.viewport()
    for point in (QPoint(100, 100), QPoint(400, 120), QPoint(250, 400)):
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=point)
    qtbot.mouseClick(viewport, Qt.MouseButton.RightButton, pos=QPoint(250, 400))
    assert dock.aoi_controller.aoi is not None
    assert dock.area_page.source_label.text() == "Polygon drawn on the map"


def test_invalid_inputs_show_messages_and_start_nothing(dock, qtbot, tmp_path) -> None:
    run_page = dock.run_page
    run_page.output.setFilePath("")
    qtbot.mouseClick(run_page.start_button, Qt.MouseButton.LeftButton)
    assert run_page.start_message.isVisibleTo(run_page)
    assert "grid" in run_page.start_message.text().lower()
    assert run_page.output_message.text()
    assert dock.backends_page.list_message.text()
    assert dock.process_page.load_message.text()
    assert not dock.run_controller.running and dock.run_controller.scheduler is None

    grid_page = dock.grid_page
    grid_page.tile_size.setValue(0)
    grid_page.update_preview()
    assert grid_page.tile_size_message.text()
    qtbot.mouseClick(grid_page.create_button, Qt.MouseButton.LeftButton)
    assert grid_page.create_message.text()  # no area yet

    backends = dock.backends_page
    qtbot.mouseClick(backends.add_button, Qt.MouseButton.LeftButton)
    backends.url.setText("http://openeo.example.org")
    qtbot.mouseClick(backends.save_button, Qt.MouseButton.LeftButton)
    assert backends.name_message.text()
    assert "https" in backends.url_message.text()
    assert backends.profiles == []
    backends.preset.setCurrentIndex(backends.preset.findData("cdse"))
    assert backends.url.text() == "https://openeofed.dataspace.copernicus.eu"
    qtbot.mouseClick(backends.save_button, Qt.MouseButton.LeftButton)
    assert [p.name for p in backends.profiles] == ["CDSE federation"]
    assert QgsSettings().value("openeo_tile_jobs/backends", "", str).count("refresh_token") == 0

    process = dock.process_page
    process.set_source("file")
    process.graph_file.setFilePath("")
    qtbot.mouseClick(process.load_button, Qt.MouseButton.LeftButton)
    assert process.graph_file_message.text()
    process.set_source("namespace")
    process.namespace.setText("not a url")
    qtbot.mouseClick(process.load_button, Qt.MouseButton.LeftButton)
    assert process.namespace_message.text()


def test_selected_features_and_layer_extent_become_the_area(dock, qgis_iface) -> None:
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "fields", "memory")
    features = []
    for west in (3.0, 3.2, 3.4):
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(west, 45.0, west + 0.1, 45.1)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    layer.updateExtents()
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)

    controller = dock.aoi_controller
    controller.selection_action.trigger()  # nothing selected: a message, no area
    assert controller.aoi is None
    layer.selectByIds([f.id() for f in layer.getFeatures()][:2])
    controller.selection_action.trigger()
    assert controller.aoi is not None
    assert controller.aoi.source == "2 selected feature(s) of layer 'fields'"
    assert controller.aoi.crs.authid() == "EPSG:4326"
    controller.extent_action.trigger()
    assert controller.aoi.source == "Extent of layer 'fields'"
    assert controller.aoi.geometry.boundingBox().xMaximum() == pytest.approx(3.5)


def test_choices_are_remembered(qgis_iface, qgis_canvas) -> None:
    QgsSettings().remove("openeo_tile_jobs")
    first = TileJobsDock(None, iface=qgis_iface)
    first.grid_page.tile_size.setValue(12_000)
    first.grid_page.clip.setChecked(True)
    first.grid_page._remember()
    first.close_down()
    second = TileJobsDock(None, iface=qgis_iface)
    try:
        assert second.grid_page.tile_size.value() == 12_000
        assert second.grid_page.clip.isChecked()
    finally:
        second.close_down()
        QgsSettings().remove("openeo_tile_jobs")


def test_proxy_comes_from_qgis_network_settings(qgis_app) -> None:
    from openeo_tile_jobs.ui.proxies import qgis_proxies

    settings = QgsSettings()
    try:
        settings.setValue("proxy/proxyEnabled", False)
        assert qgis_proxies() is None
        settings.setValue("proxy/proxyEnabled", True)
        settings.setValue("proxy/proxyType", "HttpProxy")
        settings.setValue("proxy/proxyHost", "proxy.example.org")
        settings.setValue("proxy/proxyPort", "3128")
        settings.setValue("proxy/proxyUser", "")
        assert qgis_proxies() == {"http": "http://proxy.example.org:3128", "https": "http://proxy.example.org:3128"}
    finally:
        settings.remove("proxy")


def test_existing_run_is_replaced_only_after_a_second_click_and_can_be_reopened(dock, qgis_canvas, qtbot, tmp_path):
    dock.aoi_controller.rectangle_action.trigger()
    draw_rectangle(qgis_canvas, qtbot)
    grid_page = dock.grid_page
    grid_page.tile_size.setValue(10_000)
    database = tmp_path / "run.gpkg"
    grid_page.database.setFilePath(str(database))
    qtbot.waitUntil(lambda: grid_page.preview_grid is not None and grid_page.preview_grid.tile_size == 10_000)
    qtbot.mouseClick(grid_page.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.run_controller.tile_layer is not None, timeout=10_000)
    written = database.stat().st_mtime_ns

    qtbot.mouseClick(grid_page.create_button, Qt.MouseButton.LeftButton)
    assert "exists" in grid_page.database_message.text()
    assert database.stat().st_mtime_ns == written
    first_layer = dock.run_controller.tile_layer
    qtbot.mouseClick(grid_page.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.run_controller.tile_layer is not first_layer, timeout=10_000)

    assert dock.run_controller.open_run(str(database))
    assert dock.run_page.model.rowCount() == grid_page.preview_count
    assert not dock.run_controller.open_run(str(tmp_path / "missing.gpkg"))
    assert dock.run_page.start_message.text()


def test_local_demo_preset_starts_the_backend_in_the_background(dock, qtbot, tmp_path, monkeypatch) -> None:
    """Picking the preset must not block QGIS while the backend starts; its URL arrives when it is up."""
    import requests

    from openeo_tile_jobs.ui import local_demo

    monkeypatch.setattr(local_demo, "data_dir", lambda: tmp_path / "local_backend")
    monkeypatch.setattr(local_demo, "OPTIONS", {"auth": "none", "pixel_size": 200.0})
    assert local_demo.running_url() is None
    page = dock.backends_page
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    page.preset.setCurrentIndex(page.preset.findData("local"))
    assert page.url.text() == ""  # back on the main thread at once, the start goes on in a task
    assert "Starting" in page.url.placeholderText()
    qtbot.waitUntil(lambda: page.url.text() != "", timeout=30_000)
    assert page.url.text() == local_demo.running_url()
    assert requests.get(page.url.text() + "/", timeout=5).json()["api_version"] == "1.2.0"
    # the panel's close_down (the plugin's unload) stops the backend it started
