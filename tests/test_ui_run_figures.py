"""Honest run figures: each run shows its own costs, its active time across sessions and a time
left from its own measured pace ("estimating…" until there is evidence)."""

from __future__ import annotations

import pytest
from ui_helpers import panel

from openeo_tile_jobs.core import grid as core_grid
from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.ui.run_figures import ACTIVE_TIME_KEY, MIN_EVIDENCE, RunClock

AOI = "POLYGON((500000 5000000, 520000 5000000, 520000 5020000, 500000 5020000, 500000 5000000))"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- RunClock, with a fake clock ----------------------------------------------------------------
def test_elapsed_is_active_time_across_sessions() -> None:
    clock = FakeClock()
    run = RunClock(recorded_s=100.0, clock=clock)  # earlier sessions ran it for 100 s
    assert run.elapsed() == 100.0
    clock.advance(50)  # the panel shows the run, nothing runs: no time passes for it
    assert run.elapsed() == 100.0
    run.start()
    clock.advance(2)
    assert run.elapsed() == pytest.approx(102.0)  # two seconds after Start: 2 s more, not more
    run.stop()
    clock.advance(600)  # stopped: the clock stands still
    run.start()
    clock.advance(3)
    assert run.elapsed() == pytest.approx(105.0)


def test_time_left_waits_for_evidence_then_follows_the_pace() -> None:
    clock = FakeClock()
    run = RunClock(clock=clock)
    run.start()
    run.observe(0)
    assert run.remaining(121) is None  # estimating…
    clock.advance(30)
    run.observe(1)
    assert MIN_EVIDENCE > 1 and run.remaining(121) is None  # one tile is not a pace yet
    clock.advance(30)
    run.observe(2)  # 2 tiles in 60 s: 119 tiles left take 3570 s
    assert run.remaining(121) == pytest.approx(119 * 30)
    clock.advance(30)  # no tile for a while: the pace drops, the estimate grows
    assert run.remaining(121) == pytest.approx(119 * 45)
    run.observe(121)
    assert run.remaining(121) == 0.0


def test_time_left_of_a_resume_ignores_tiles_found_finished_at_the_start() -> None:
    """On a resume the first round finds every job that finished meanwhile: that is no pace."""
    clock = FakeClock()
    run = RunClock(recorded_s=600.0, clock=clock)
    run.start()
    clock.advance(1)
    run.observe(60)  # 60 tiles found done in the first round after 1 s
    assert run.remaining(100) is None
    clock.advance(20)
    run.observe(62)  # then 2 tiles in 20 s: 38 left take 380 s
    assert run.remaining(100) == pytest.approx(380.0)


def test_pace_carries_over_a_stop_in_the_same_session() -> None:
    clock = FakeClock()
    run = RunClock(clock=clock)
    run.start()
    run.observe(0)
    clock.advance(10)
    run.observe(2)
    run.stop()
    clock.advance(1000)  # stopped
    run.start()
    run.observe(2)
    clock.advance(10)
    run.observe(4)  # 4 tiles in 20 active seconds
    assert run.remaining(10) == pytest.approx(6 * 5)


# -- the Run step in QGIS -----------------------------------------------------------------------------
@pytest.fixture()
def dock(qgis_iface):
    with panel(qgis_iface) as dock:
        yield dock


def _run_file(path, costs=None, active_s=None, output_dir=None) -> str:
    grid = core_grid.make_grid(AOI, tile_size=10_000, aoi_crs="EPSG:32631")
    db = JobDB.create(path, grid)
    try:
        if costs is not None:
            fid = int(db.all_rows(columns=["tile_id"])[0]["fid"])
            db.update_many({fid: {"status": statuses.FINISHED, "backend_name": "demo", "costs": costs}})
        record = {}
        if active_s is not None:
            record[ACTIVE_TIME_KEY] = active_s
        if output_dir is not None:
            record["engine"] = {"output_dir": str(output_dir)}
        if record:
            db.update_run_record(record)
    finally:
        db.close()
    return str(path)


def test_each_run_shows_its_own_costs_and_elapsed(dock, tmp_path) -> None:
    page, controller = dock.run_page, dock.run_controller
    clock = FakeClock()
    page.time_source = clock
    controller.open_database(_run_file(tmp_path / "antwerp.gpkg", costs=0.03, active_s=108))
    assert page.costs_label.text() == "0.03"
    assert page.elapsed_label.text() == "1:48"
    assert page.eta_label.text() == "–"

    controller.open_database(_run_file(tmp_path / "antwerp3.gpkg"))  # a brand-new run
    assert page.costs_label.text() == "–"
    assert page.elapsed_label.text() == "–"
    page.set_running(True)  # what Start does to the page
    clock.advance(2)
    page._tick()
    assert page.elapsed_label.text() == "0:02"  # not the previous run's time
    assert page.eta_label.text() == "estimating…"
    page.set_running(False)


def test_output_folder_is_the_runs_own(dock, tmp_path) -> None:
    page, controller = dock.run_page, dock.run_controller
    controller.open_database(_run_file(tmp_path / "antwerp.gpkg"))
    assert page.output.filePath() == str(tmp_path / "antwerp_results")
    page.output.setFilePath(str(tmp_path / "elsewhere"))  # the user picks another for this run
    controller.open_database(_run_file(tmp_path / "antwerp3.gpkg"))  # a new job database
    assert page.output.filePath() == str(tmp_path / "antwerp3_results")
    chosen = tmp_path / "chosen"
    controller.open_database(_run_file(tmp_path / "ghent.gpkg", output_dir=chosen))  # recorded with its run
    assert page.output.filePath() == str(chosen)


def test_time_left_gets_the_range_of_the_finished_tiles_spread() -> None:
    clock = FakeClock()
    run = RunClock(clock=clock)
    run.start()
    run.observe(0)
    assert run.remaining_span(10) is None  # no pace yet
    clock.advance(20)
    run.observe(4)  # 4 tiles in 20 s: 6 left take 30 s
    assert run.remaining_span(10) == (30.0, 30.0, 30.0)
    run.spread = (0.8, 1.5)  # the refinement found job times from 0.8 to 1.5 times their mean
    assert run.remaining_span(10) == pytest.approx((24.0, 30.0, 45.0))
