"""The Run step's estimate through the panel's widgets against a real Local demo backend: the
backend's estimate before Start with its source, its job run for its tile (one job per tile on
the backend), the refinement during the run, the pilot tile when the backend offers no
estimate, and an estimate made for other parameters never started."""

from __future__ import annotations

import re

import pytest
from engine_crash_worker import listing
from qgis.core import QgsRectangle
from qgis.PyQt.QtCore import Qt
from ui_helpers import panel, ready_to_run

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.estimate import SOURCE_BACKEND, SOURCE_PILOT


@pytest.fixture()
def dock(qgis_iface, qgis_canvas, qtbot):
    with panel(qgis_iface, qgis_canvas, qtbot, QgsRectangle(495_000, 4_995_000, 525_000, 5_025_000)) as dock:
        dock.run_controller.notify = lambda *_: None
        yield dock


def click(qtbot, button) -> None:
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def rows(dock) -> list[dict]:
    model = dock.run_page.model
    return [model.row_data(i) for i in range(model.rowCount())]


def test_estimate_before_start_then_its_job_runs_for_its_tile(dock, qtbot, tmp_path, local_backend_factory):
    backend = local_backend_factory(run_time=2.0)
    ready_to_run(dock, qtbot, backend, tmp_path, parallel_jobs=2)
    controller, run = dock.run_controller, dock.run_page
    view, estimates = run.estimate, controller.estimates
    click(qtbot, view.estimate_button)
    qtbot.waitUntil(lambda: estimates.before is not None, timeout=30_000)
    est = estimates.before
    text = view.label.plain_text()
    assert est.source == SOURCE_BACKEND and est.credits.value > 0 and est.seconds.value > 0
    assert f"{est.credits.value:,.2f} credits" in text and "with 2 job(s) at a time" in text
    assert f"the backend's estimate for tile {est.basis} (its job {est.job_id} starts with the run)" in text
    (tile,) = [r for r in rows(dock) if r["id"] == est.job_id]  # the table shows the tile's job already
    assert tile["status"] == statuses.CREATED and tile["tile_id"] == est.basis
    assert [(j["id"], j["status"]) for j in listing(backend.url)] == [(est.job_id, "created")]

    click(qtbot, run.start_button)
    qtbot.waitUntil(lambda: estimates.refined is not None, timeout=60_000)
    assert controller.running  # refined during the run, from the first finished tiles
    assert re.search(r"Now: [\d.,]+ (\([^)]*\) )?credits, .* left \(from \d finished tiles?\)", view.label.plain_text())
    assert "Before Start: " in view.label.plain_text()
    qtbot.waitUntil(lambda: controller.last_outcome is not None, timeout=60_000)
    assert controller.last_outcome == "done"
    billed = controller.db.sum_costs()[0]
    qtbot.waitUntil(lambda: view.label.plain_text().startswith("Final: "), timeout=10_000)
    assert view.label.plain_text().startswith(f"Final: {billed:,.2f} credits in ")
    jobs = listing(backend.url)
    assert len(jobs) == 4 and {j["status"] for j in jobs} == {"finished"}  # one job per tile
    assert controller.db.get_by_tile_id(est.basis, columns=["id"])["id"] == est.job_id
    assert est.credits.value == pytest.approx(controller.db.sum_costs()[0], rel=0.01)


def test_without_an_estimate_endpoint_the_pilot_tile_runs_first(dock, qtbot, tmp_path, local_backend_factory):
    backend = local_backend_factory(offer_estimate=False)
    ready_to_run(dock, qtbot, backend, tmp_path, parallel_jobs=2)
    controller, run = dock.run_controller, dock.run_page
    view, estimates = run.estimate, controller.estimates
    click(qtbot, view.estimate_button)
    qtbot.waitUntil(lambda: "offers no estimate" in view.label.plain_text(), timeout=30_000)
    assert "Start with one tile runs tile" in view.label.plain_text() and listing(backend.url) == []

    click(qtbot, view.pilot_button)
    qtbot.waitUntil(lambda: estimates.before is not None, timeout=60_000)
    est = estimates.before
    assert est.source == SOURCE_PILOT and est.tiles == 4 and est.seconds.value > 0
    assert f"Source: tile {est.basis} run alone first (job {est.job_id})" in view.label.plain_text()
    counts = controller.db.count_by_status()
    assert counts == {statuses.FINISHED: 1, statuses.NOT_STARTED: 3}
    assert [j["id"] for j in listing(backend.url)] == [est.job_id]
    pilot_costs = controller.db.get_by_tile_id(est.basis, columns=["costs"])["costs"]
    assert est.credits.value == pytest.approx(4 * pilot_costs)  # four equal tiles

    controller.last_outcome = None
    click(qtbot, run.start_button)  # the rest; the pilot tile is not run again
    qtbot.waitUntil(lambda: controller.last_outcome is not None, timeout=60_000)
    assert len(listing(backend.url)) == 4 and controller.db.count_by_status() == {statuses.FINISHED: 4}


def test_an_estimate_for_other_parameters_is_not_started(dock, qtbot, tmp_path, local_backend):
    ready_to_run(dock, qtbot, local_backend, tmp_path, parallel_jobs=2)
    controller, run = dock.run_controller, dock.run_page
    click(qtbot, run.estimate.estimate_button)
    qtbot.waitUntil(lambda: controller.estimates.before is not None, timeout=30_000)
    est = controller.estimates.before
    dock.process_page.form.editors["temporal_extent"].set_value(["2024-07-01", "2024-08-01"])
    click(qtbot, run.start_button)
    qtbot.waitUntil(lambda: controller.last_outcome is not None, timeout=60_000)
    jobs = {j["id"]: j["status"] for j in listing(local_backend.url)}
    assert jobs.pop(est.job_id) == "created"  # made for June, never started
    assert len(jobs) == 4 and set(jobs.values()) == {"finished"}
    assert controller.db.get_by_tile_id(est.basis, columns=["id"])["id"] in jobs
