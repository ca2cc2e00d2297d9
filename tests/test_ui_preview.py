"""The tile menu's "Preview this tile" through the panel, as the user does it (the table's and the map's tile menu),
against a real Local demo backend: the layer in the "Preview" group with the tile's extent and real
pixels, POST /result or one batch job (deleted), the run's rows untouched, the backend's own words
when it fails."""

from __future__ import annotations

import openeo
import pytest
import rasterio
from qgis.core import QgsMultiBandColorRenderer, QgsRectangle
from qgis.PyQt.QtCore import QPoint, Qt
from ui_helpers import panel, ready_to_run

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.preview import BATCH, SYNC, SyncLimit
from openeo_tile_jobs.gis.preview_layers import PREVIEW_GROUP_NAME, find_preview_group


@pytest.fixture()
def dock(qgis_iface, qgis_canvas, qtbot):
    with panel(qgis_iface, qgis_canvas, qtbot, QgsRectangle(495_000, 4_995_000, 525_000, 5_025_000)) as dock:
        messages: list[str] = []
        dock.run_controller.notify = dock.run_controller.previewer.notify = lambda text, *_: messages.append(text)
        dock.messages = messages
        yield dock


def table_row(run, tile_id: str) -> dict:
    return next(
        run.model.row_data(i) for i in range(run.model.rowCount()) if run.model.row_data(i)["tile_id"] == tile_id
    )


def backend_sent(backend) -> list[str]:
    """The computing requests the backend received (POST /result, POST /jobs)."""
    return [key for key in backend.request_counts() if key in ("POST /result", "POST /jobs")]


def preview_action(menu):
    return next(a for a in menu.actions() if a.text() == "Preview this tile")


def preview_layers(controller) -> list:
    """The layers of the shown run's "Preview" group (none when it has no such group)."""
    group = find_preview_group(controller.db_path)
    if group is None:
        return []
    assert group.name() == PREVIEW_GROUP_NAME and group.parent().name() == controller.session.group.name()
    return [node.layer() for node in group.findLayers()]


def assert_shows_tile(layer, west: float, south: float, size: float = 10_000) -> None:
    """The layer covers the tile (within a 200 m pixel) and holds real, varying reflectances."""
    extent = layer.extent()
    assert layer.crs().authid() == "EPSG:32631"
    got = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
    assert got == pytest.approx((west, south, west + size, south + size), abs=200)
    with rasterio.open(layer.source()) as src:
        red = src.read(1, masked=True)
    assert red.count() > 0.9 * red.size  # hardly any nodata
    assert 100 < float(red.mean()) < 5000 and float(red.std()) > 10  # reflectance x 10000, not a constant
    assert isinstance(layer.renderer(), QgsMultiBandColorRenderer)  # styled like the run's result layers
    assert layer.brightnessFilter().gamma() == pytest.approx(2.2)


def test_preview_from_the_table_is_computed_by_post_result_and_leaves_the_run_alone(
    dock, qtbot, tmp_path, local_backend
):
    ready_to_run(dock, qtbot, local_backend, tmp_path)
    controller, run = dock.run_controller, dock.run_page
    before = controller.db.all_rows()
    local_backend.reset_counts()

    action = preview_action(run.tile_menu([table_row(run, "x0_y0")]))
    action.trigger()
    action.trigger()  # again while it computes: refused, not sent twice
    assert "The preview of tile x0_y0 is already being computed." in dock.messages
    qtbot.waitUntil(lambda: controller.previewer.last is not None, timeout=30_000)

    shown = controller.previewer.last
    assert shown.result.mode == SYNC
    assert preview_layers(controller) == [shown.layer] and shown.layer.name() == "Preview x0_y0"
    assert_shows_tile(shown.layer, 500_000, 5_000_000)
    assert shown.result.path.startswith(str(tmp_path / "run_results" / "preview"))
    assert any(m.startswith("Preview of tile x0_y0 shown in") for m in dock.messages)
    counts = local_backend.request_counts()
    assert counts.get("POST /result") == 1 and not counts.get("POST /jobs")
    assert controller.db.all_rows() == before  # no status, no row of the run changed
    assert run.model.counts() == {statuses.NOT_STARTED: 4}


def test_preview_from_the_map_too_big_for_post_result_is_one_batch_job(
    dock, qgis_canvas, qtbot, tmp_path, local_backend
):
    ready_to_run(dock, qtbot, local_backend, tmp_path)
    controller = dock.run_controller
    controller.previewer.limit = SyncLimit(max_pixel_dates=1_000)  # the tile (2,500 pixels x 6 dates) is too big
    local_backend.reset_counts()
    controller.tile_tool_action.trigger()

    def preview_on_the_map(x: float, y: float) -> None:
        point = qgis_canvas.getCoordinateTransform().transform(x, y).toQPointF().toPoint()
        qtbot.mouseClick(qgis_canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(point.x(), point.y()))
        menu = controller.tile_tool.last_menu
        preview_action(menu).trigger()
        menu.close()

    preview_on_the_map(515_000, 5_015_000)  # the north-east tile x1_y1
    qtbot.waitUntil(lambda: controller.previewer.last is not None, timeout=30_000)
    first = controller.previewer.last
    assert first.result.mode == BATCH and first.result.job_id
    assert "more than the 1,000 previewed synchronously" in first.result.note
    assert_shows_tile(first.layer, 510_000, 5_010_000)
    counts = local_backend.request_counts()
    assert not counts.get("POST /result")
    assert counts.get("POST /jobs") == 1 and counts.get("DELETE /jobs/{job_id}") == 1  # its own job, deleted
    assert {r["status"] for r in controller.db.all_rows()} == {statuses.NOT_STARTED}
    assert all(not r["id"] for r in controller.db.all_rows())  # the preview job is no tile's job

    # a second preview of the same tile replaces the first (layer and file)
    preview_on_the_map(515_000, 5_015_000)
    qtbot.waitUntil(lambda: controller.previewer.last is not first, timeout=30_000)
    second = controller.previewer.last
    assert preview_layers(controller) == [second.layer]
    assert [p.name for p in (tmp_path / "run_results" / "preview").iterdir()] == [second.result.path.rsplit("/", 1)[-1]]


def test_a_backend_error_is_shown_with_the_backends_message(dock, qtbot, tmp_path, local_backend):
    ready_to_run(dock, qtbot, local_backend, tmp_path)
    controller, run = dock.run_controller, dock.run_page
    output = run.output.filePath()
    run.output.setFilePath("")  # a step not ready: said, nothing sent
    preview_action(run.tile_menu([table_row(run, "x1_y0")])).trigger()
    assert dock.messages[-1] == "Preview needs the run's steps ready: fix the fields marked in red."
    assert controller.previewer.tasks == {} and not backend_sent(local_backend)
    run.output.setFilePath(output)

    dock.process_page.form.editors["temporal_extent"].set_value(["2024-06-01", None])  # open-ended
    failures: list[str] = []
    controller.previewer.previewFailed.connect(lambda _tile, message: failures.append(message))
    preview_action(run.tile_menu([table_row(run, "x1_y0")])).trigger()
    qtbot.waitUntil(lambda: bool(failures), timeout=30_000)
    (message,) = failures
    assert message.startswith(
        "Preview of tile x1_y0 failed: The backend could not preview tile x1_y0: ProcessParameterInvalid"
    )
    assert "'temporal_extent' in process 'cloud_free_composite' is invalid: open-ended intervals" in message
    assert message in dock.messages
    assert preview_layers(controller) == [] and controller.previewer.tasks == {}
    preview = tmp_path / "run_results" / "preview"
    assert not preview.exists() or not any(preview.iterdir())  # nothing half-written left


def test_a_batch_preview_during_the_run_is_no_tile_of_the_run(dock, qtbot, tmp_path, local_backend_factory):
    backend = local_backend_factory(run_time=1.0)
    ready_to_run(dock, qtbot, backend, tmp_path)
    controller, run = dock.run_controller, dock.run_page
    controller.previewer.limit = SyncLimit(max_pixel_dates=0)  # a batch job, listed beside the run's own
    assert controller.start(), run.start_message.text()
    preview_action(run.tile_menu([table_row(run, "x1_y1")])).trigger()  # the last tile to start (1 job at a time)
    qtbot.waitUntil(lambda: controller.previewer.last is not None, timeout=30_000)
    assert controller.running  # the preview came while the run went on
    preview_job = controller.previewer.last.result.job_id
    qtbot.waitUntil(lambda: controller.last_outcome is not None, timeout=60_000)

    rows = controller.db.all_rows()
    assert {r["status"] for r in rows} == {statuses.FINISHED}
    assert preview_job not in {r["id"] for r in rows}  # the run's tracking never adopted it
    jobs = openeo.connect(backend.url, auto_validate=False).list_jobs()
    assert sorted(j["id"] for j in jobs) == sorted(r["id"] for r in rows)  # the preview's job is deleted
