"""The whole panel against the Local demo backend, through the real widgets: draw the area with
the mouse, preview and create the grid, add the Local demo backend and sign in with its OIDC
device flow (the test approves the code, as the user would in the browser), pick the demo
process, run, open the logs of tiles that failed through fault injection, retry them."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsProject, QgsRectangle, QgsSettings
from qgis.gui import QgsGui
from qgis.PyQt.QtCore import QPoint, Qt
from qgis.PyQt.QtWidgets import QApplication, QPlainTextEdit

from openeo_tile_jobs.core import grid as core_grid
from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.ui import credentials, local_demo
from openeo_tile_jobs.ui.dock import TileJobsDock

UTM31 = QgsCoordinateReferenceSystem("EPSG:32631")
TEST_MASTER_PASSWORD = "openeo-tile-jobs-tests"


@pytest.fixture()
def auth_db(qgis_app):
    """The test profile's authentication database, unlocked with the tests' master password."""
    manager = QgsApplication.authManager()
    assert ".qgis-settings" in manager.authenticationDatabasePath()  # never a real profile
    assert manager.setMasterPassword(TEST_MASTER_PASSWORD, True), (
        f"{manager.authenticationDatabasePath()} has another master password: delete that test file"
    )
    return manager


@pytest.fixture()
def dock(qgis_iface, qgis_canvas, qtbot, auth_db):
    QgsSettings().remove("openeo_tile_jobs")
    window = qgis_canvas.window()
    window.resize(1000, 700)
    window.show()
    qtbot.waitUntil(lambda: qgis_canvas.mapSettings().outputSize().width() > 700)
    qgis_canvas.setDestinationCrs(UTM31)
    size = qgis_canvas.mapSettings().outputSize()  # 100 m per pixel: the drawn AOI is 20 km x 15 km
    qgis_canvas.setExtent(
        QgsRectangle(500_000, 5_000_000, 500_000 + 100 * size.width(), 5_000_000 + 100 * size.height())
    )
    panel = TileJobsDock(None, iface=qgis_iface)
    panel.resize(420, 900)
    panel.show()
    yield panel
    panel.close_down()
    qtbot.waitUntil(lambda: not panel.run_controller.running, timeout=10_000)
    panel.close()
    panel.deleteLater()
    QgsProject.instance().removeAllMapLayers()
    for name in [p.name for p in panel.backends_page.profiles]:
        credentials.forget(name)
    QgsSettings().remove("openeo_tile_jobs")
    local_demo.use_backend(None)


def _wait_run_end(dock, qtbot, timeout=60_000) -> str:
    qtbot.waitUntil(lambda: dock.run_controller.last_outcome is not None, timeout=timeout)
    return dock.run_controller.last_outcome


def test_panel_end_to_end(dock, qgis_canvas, qtbot, tmp_path: Path, local_backend_factory) -> None:
    backend = local_backend_factory(auth="oidc")
    backend.set_faults(job_error=1.0)  # every job of the first run fails
    local_demo.use_backend(backend)

    # 1. Area: a rectangle drawn with the mouse
    dock.aoi_controller.rectangle_action.trigger()
    viewport = qgis_canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(viewport, pos=QPoint(200, 180))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=QPoint(300, 250))
    assert dock.aoi_controller.aoi is not None

    # 2. Grid: 10 km tiles, count previewed, then created
    grid = dock.grid_page
    grid.tile_size.setValue(10_000)
    qtbot.waitUntil(lambda: grid.preview_grid is not None and grid.preview_grid.tile_size == 10_000)
    tiles = grid.preview_count
    aoi = dock.aoi_controller.aoi
    assert tiles == len(core_grid.make_grid(aoi.wkt(), tile_size=10_000, aoi_crs=aoi.crs_authid()))
    grid.database.setFilePath(str(tmp_path / "run.gpkg"))
    qtbot.mouseClick(grid.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.run_controller.tile_layer is not None, timeout=10_000)
    assert dock.run_page.model.rowCount() == tiles

    # 3. Backends: the Local demo preset, not signed in yet, then the device flow
    page = dock.backends_page
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    page.preset.setCurrentIndex(page.preset.findData("local"))
    assert page.url.text() == backend.url
    assert page.auth.currentData() == "oidc_device"
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert [p.name for p in page.profiles] == ["Local demo"]
    qtbot.mouseClick(page.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Local demo" in page.reports, timeout=10_000)
    assert page.reports["Local demo"].signed_in is False
    assert "openEO API" in page.state_label.text()

    qtbot.mouseClick(page.sign_in_button, Qt.MouseButton.LeftButton)
    dialog = page.sign_in_dialog
    assert dialog is not None and dialog.isVisible()  # QGIS is not blocked: we are still running here
    qtbot.waitUntil(lambda: bool(dialog.user_code), timeout=10_000)
    assert backend.url in dialog.link.text()
    assert dialog.user_code in backend.pending_user_codes()
    assert backend.approve_device(dialog.user_code)  # the user approves in the browser
    qtbot.waitUntil(lambda: page.reports["Local demo"].signed_in is True, timeout=15_000)
    assert not dialog.isVisible()
    profile = page.profile("Local demo")
    qtbot.waitUntil(lambda: credentials.has_stored_sign_in(profile), timeout=5_000)
    assert credentials.load_credentials(profile).refresh_token
    stored = QgsSettings()
    stored.beginGroup("openeo_tile_jobs")
    remembered = " ".join(str(stored.value(k)) for k in stored.allKeys())
    assert credentials.load_credentials(profile).refresh_token not in remembered  # only in QgsAuthManager

    # 4. Process: the demo process, its form generated from the schemas
    process = dock.process_page
    qtbot.mouseClick(process.demo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: process.resolved is not None, timeout=15_000)
    assert process.geometry_combo.currentData() == "spatial_extent"
    temporal = process.form.editors["temporal_extent"]
    assert temporal.raw_value() == ["2024-06-01", "2024-09-01"]
    temporal.set_value(["2024-09-01", "2024-06-01"])  # wrong way round: nothing may start

    # 5. Run: invalid parameter first, then the real run
    run = dock.run_page
    run.output.setFilePath(str(tmp_path / "results"))
    qtbot.mouseClick(run.start_button, Qt.MouseButton.LeftButton)
    assert temporal.message.text() == "The start must come before the end."
    assert not dock.run_controller.running
    assert dock.tabs.currentIndex() == 3  # the panel shows the step to fix
    temporal.set_value(["2024-06-01", "2024-07-01"])
    qtbot.mouseClick(run.start_button, Qt.MouseButton.LeftButton)
    assert dock.run_controller.running
    assert _wait_run_end(dock, qtbot) == "done"
    assert run.count_labels[statuses.ERROR].text() == str(tiles)

    # the logs of a failed tile
    first = run.model.row_data(0)
    assert first["status"] == statuses.ERROR and first["id"]
    run.actions.show_logs(first)
    qtbot.waitUntil(lambda: bool(dock.run_controller.tile_handlers.log_dialogs), timeout=10_000)
    text = dock.run_controller.tile_handlers.log_dialogs[-1].findChild(QPlainTextEdit).toPlainText()
    assert "error" in text.lower()

    # the same menu on the map: click the south-west tile (x0_y0) with the tile menu tool
    controller = dock.run_controller
    assert controller.layer_action in QgsGui.mapLayerActionRegistry().mapLayerActions(controller.tile_layer)
    controller.tile_tool_action.trigger()
    assert qgis_canvas.mapTool() is controller.tile_tool
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=QPoint(150, 200))
    menu = controller.tile_tool.last_menu
    assert menu is not None
    texts = {a.text(): a for a in menu.actions()}
    assert texts["Show job logs…"].isEnabled() and texts["Copy job id"].isEnabled()
    x0_y0 = next(run.model.row_data(i) for i in range(tiles) if run.model.row_data(i)["tile_id"] == "x0_y0")
    texts["Copy job id"].trigger()
    assert QApplication.clipboard().text() == x0_y0["id"]
    menu.close()

    # retry that tile from its map menu, with the fault gone
    backend.set_faults()
    first = x0_y0
    retry = texts["Retry tile"]
    assert retry.isEnabled()
    dock.run_controller.last_outcome = None
    retry.trigger()
    assert _wait_run_end(dock, qtbot) == "done"
    row = dock.run_controller.db.get(int(first["fid"]))
    assert row["status"] == statuses.FINISHED
    assert run.count_labels[statuses.FINISHED].text() == "1"

    # then every other failed tile with "Retry failed"
    dock.run_controller.last_outcome = None
    qtbot.mouseClick(run.retry_button, Qt.MouseButton.LeftButton)
    assert _wait_run_end(dock, qtbot) == "done"
    assert run.count_labels[statuses.FINISHED].text() == str(tiles)
    assert run.count_labels[statuses.ERROR].text() == "0"
    assert run.progress.value() == tiles
    assert all(r["status"] == statuses.FINISHED for r in (run.model.row_data(i) for i in range(tiles)))
    qtbot.waitUntil(lambda: len(dock.run_controller.session.results.layers()) >= tiles, timeout=10_000)


def test_basic_auth_through_a_qgis_authentication_configuration(dock, qtbot, local_backend_factory, auth_db) -> None:
    from qgis.core import QgsAuthMethodConfig

    backend = local_backend_factory(auth="basic")
    config = QgsAuthMethodConfig()
    config.setMethod("Basic")
    config.setName("openEO demo user")
    config.setConfig("username", "demo")
    config.setConfig("password", "demo")
    ok, config = auth_db.storeAuthenticationConfig(config)
    assert ok
    try:
        page = dock.backends_page
        qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
        page.name.setText("Basic demo")
        page.url.setText(backend.url)
        page.auth.setCurrentIndex(page.auth.findData("basic"))
        qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
        assert page.authcfg_message.text()  # no configuration chosen yet: not saved
        assert page.profiles == []
        page.authcfg.setConfigId(config.id())
        qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
        assert [p.name for p in page.profiles] == ["Basic demo"]
        qtbot.mouseClick(page.test_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "Basic demo" in page.reports, timeout=10_000)
        assert page.reports["Basic demo"].signed_in is True
        assert "signed in as demo" in page.state_label.text()
        remembered = QgsSettings().value("openeo_tile_jobs/backends", "", str)
        assert 'demo"' not in remembered.replace('"Basic demo"', "")  # neither user nor password stored there
    finally:
        auth_db.removeAuthenticationConfig(config.id())


def test_device_sign_in_can_be_cancelled(dock, qtbot, local_backend_factory) -> None:
    backend = local_backend_factory(auth="oidc")
    local_demo.use_backend(backend)
    page = dock.backends_page
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    page.preset.setCurrentIndex(page.preset.findData("local"))
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(page.sign_in_button, Qt.MouseButton.LeftButton)
    dialog = page.sign_in_dialog
    qtbot.waitUntil(lambda: bool(dialog.user_code), timeout=10_000)
    assert not page.sign_in_button.isEnabled()
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    qtbot.waitUntil(page.sign_in_button.isEnabled, timeout=15_000)  # the polling task ended
    assert page.reports.get("Local demo") is None
    assert not credentials.has_stored_sign_in(page.profile("Local demo"))
