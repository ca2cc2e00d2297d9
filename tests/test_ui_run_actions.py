"""The Run step's actions against a real Local demo backend: retry from the tile menu during a
run (the message names the engine's count), the tile menu tool clicked on the map canvas."""

from __future__ import annotations

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle
from qgis.PyQt.QtCore import QPoint, Qt
from ui_helpers import panel, ready_to_run

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.ui.run_figures import ACTIVE_TIME_KEY
from openeo_tile_jobs.ui.run_page import format_duration

UTM31 = QgsCoordinateReferenceSystem("EPSG:32631")


@pytest.fixture()
def dock(qgis_iface, qgis_canvas, qtbot):
    with panel(qgis_iface, qgis_canvas, qtbot, QgsRectangle(495_000, 4_995_000, 525_000, 5_025_000)) as dock:
        messages: list[str] = []
        dock.run_controller.notify = lambda text, *_: messages.append(text)
        dock.messages = messages
        yield dock


def test_retry_from_the_tile_menu_during_a_run_names_the_count(dock, qtbot, tmp_path, local_backend_factory):
    backend = local_backend_factory(min_run_time=1.5)
    backend.set_faults(job_error=1.0)
    ready_to_run(dock, qtbot, backend, tmp_path)
    controller, run = dock.run_controller, dock.run_page
    assert controller.start(), run.start_message.text()

    def failed_fid():
        return next((int(r["fid"]) for r in map(run.model.row_data, range(4)) if r["status"] == statuses.ERROR), None)

    qtbot.waitUntil(lambda: failed_fid() is not None, timeout=30_000)
    backend.set_faults()  # the cause is fixed: the retried job and the rest succeed
    fid = failed_fid()
    assert controller.running  # three tiles still to go, one job at a time
    row = controller.rows_for_fids([fid])
    menu = run.tile_menu(row)
    retry = next(a for a in menu.actions() if a.text() == "Retry tile")
    retry.trigger()
    assert "1 tile(s) will be retried." in dock.messages
    assert not any("None" in m for m in dock.messages)
    qtbot.waitUntil(lambda: controller.last_outcome is not None, timeout=60_000)
    assert controller.db.get(fid)["status"] == statuses.FINISHED

    # the run's active time is kept with it: reopened, Elapsed goes on from there
    recorded = controller.db.run_record()[ACTIVE_TIME_KEY]
    assert recorded > 0
    assert controller.open_run(str(controller.db_path))
    assert run.elapsed_label.text() == format_duration(recorded)


def test_tile_menu_tool_opens_the_menu_of_the_clicked_tile(dock, qgis_canvas, qtbot, tmp_path, local_backend):
    ready_to_run(dock, qtbot, local_backend, tmp_path)
    controller = dock.run_controller
    controller.tile_tool_action.trigger()
    assert qgis_canvas.mapTool() is controller.tile_tool
    # the south-west tile x0_y0 (500-510 km E, 5000-5010 km N) is left of and below the centre
    point = qgis_canvas.getCoordinateTransform().transform(505_000, 5_005_000).toQPointF().toPoint()
    qtbot.mouseClick(qgis_canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(point.x(), point.y()))
    menu = controller.tile_tool.last_menu
    assert menu is not None
    assert menu.isVisible()
    assert [r["tile_id"] for r in controller.tile_tool.last_rows] == ["x0_y0"]
    texts = [a.text() for a in menu.actions() if a.text()]
    assert "Zoom to tile" in texts and "Retry tile" in texts
    menu.close()
