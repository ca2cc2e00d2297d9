"""16 tiles through the QgsTask against the Local demo backend, in real headless QGIS.

Statuses recolour the tile layer in life-cycle order, the main thread never stalls, results
arrive as styled raster layers, a render shows result pixels and tile colours; cancel
through the task manager, resume, save the project, reopen it, resume again.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from qgis.core import (
    QgsApplication,
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProject,
)
from qgis.PyQt.QtCore import QCoreApplication, QElapsedTimer, QTimer
from qgis.PyQt.QtTest import QTest

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.backends import BackendProfile
from openeo_tile_jobs.core.grid import make_grid
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.core.jobspec import JobSpec
from openeo_tile_jobs.core.run_setup import make_scheduler
from openeo_tile_jobs.gis import project as project_runs
from openeo_tile_jobs.gis.run_session import RunSession
from openeo_tile_jobs.gis.run_task import RUNNING
from openeo_tile_jobs.tests.test_gis_support import (
    SubprocessBackend,
    clear_project,
    close_to,
    is_blank,
    over_white,
    region,
    render,
)

SEED_AOI = {"west": 590000, "south": 5660000, "east": 610000, "north": 5680000, "crs": "EPSG:32631"}
LIFE_CYCLE = [
    statuses.NOT_STARTED,
    statuses.QUEUED_FOR_START,
    statuses.CREATED,
    statuses.QUEUED,
    statuses.RUNNING,
    statuses.FINISHED,
]


@pytest.fixture()
def backend_process(tmp_path):
    """``start(**options)``: the Local demo backend in its own process; stopped after the test."""
    started = []

    def start(**options) -> SubprocessBackend:
        backend = SubprocessBackend(tmp_path / f"backend-{len(started)}", **options)
        started.append(backend)
        return backend.start()

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture()
def project(qgis_app):
    yield QgsProject.instance()
    QgsApplication.taskManager().cancelAll()
    wait_until(lambda: not RUNNING, 5)
    clear_project()


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        QTest.qWait(10)
    return True


def new_run(tmp_path, backend) -> tuple[str, JobSpec, list[BackendProfile]]:
    path = tmp_path / "antwerp.gpkg"
    JobDB.create(path, make_grid(SEED_AOI, tile_size=5000, crs="EPSG:32631")).close()
    spec = JobSpec(
        process_id="cloud_free_composite",
        namespace=backend.demo_process_url,
        parameters={"temporal_extent": ["2024-06-01", "2024-09-01"]},
    )
    return str(path), spec, [BackendProfile(name="local", url=backend.url, parallel_jobs=4)]


class Heartbeat:
    """A 20 ms QTimer on the main thread; records how late each tick is."""

    def __init__(self, period_ms: int = 20) -> None:
        self.period = period_ms
        self.late: list[float] = []
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(period_ms)
        self.timer.timeout.connect(self._tick)
        self._last = None

    def start(self) -> None:
        self.clock.start()
        self._last = self.clock.elapsed()
        self.timer.start()

    def pause(self) -> None:
        self._last = None

    def _tick(self) -> None:
        now = self.clock.elapsed()
        if self._last is not None:
            self.late.append(now - self._last - self.period)
        self._last = now

    def stop(self) -> None:
        self.timer.stop()


def tile_statuses(layer) -> dict[str, str]:
    return {f["tile_id"]: f["status"] for f in layer.getFeatures()}


def test_sixteen_tiles_through_the_task(tmp_path, project, backend_process) -> None:
    backend = backend_process(workers=4, min_queue_time=0.3, min_run_time=6.0)
    path, spec, profiles = new_run(tmp_path, backend)
    scheduler = make_scheduler(path, spec=spec, profiles=profiles, output_dir=tmp_path / "out")
    session = RunSession(path, project)
    layer = session.layer

    # the renderer's categories and colours
    categories = layer.renderer().categories()
    assert [c.value() for c in categories][: len(statuses.ALL_STATUSES)] == list(statuses.ALL_STATUSES)
    for category in categories[: len(statuses.ALL_STATUSES)]:
        fill = category.symbol().symbolLayer(0).fillColor()
        assert fill.name() == statuses.CSS_HEX[statuses.color_of(category.value())]
    del categories, category

    seen_in_layer: dict[str, list[str]] = {tile: [s] for tile, s in tile_statuses(layer).items()}
    events: dict[str, list[str]] = {}
    ended = []
    mid_run = {}

    def on_change(change) -> None:
        for tile in change.tile_ids:
            events.setdefault(tile, []).append(change.status)

    def on_repaint(_count: int) -> None:  # what the map shows after each repaint
        for tile, status in tile_statuses(layer).items():
            if seen_in_layer[tile][-1] != status:
                seen_in_layer[tile].append(status)

    def on_results(layers) -> None:
        if mid_run:
            return
        heartbeat.pause()  # a blocking test render is not part of the measurement
        before = tile_statuses(layer)
        extent = layer.extent()
        image = render([layer, *session.results.layers()], extent, size=160)
        after = tile_statuses(layer)
        mid_run.update(image=image, extent=extent, before=before, after=after, shown=[lyr.name() for lyr in layers])
        heartbeat.pause()

    session.statusChanged.connect(on_change)
    session.updater.repainted.connect(on_repaint)
    session.resultsShown.connect(on_results)
    session.runEnded.connect(lambda outcome, result: ended.append((outcome, result)))

    heartbeat = Heartbeat()
    heartbeat.start()
    task = session.start(scheduler, interval=0.2)
    assert task in RUNNING
    assert wait_until(lambda: ended, 90), "the run did not end"
    heartbeat.stop()
    QCoreApplication.processEvents()

    outcome, result = ended[0]
    assert outcome == "done" and task not in RUNNING and session.task is None
    assert len(heartbeat.late) > 100
    # A freeze (a request or a download on the main thread) shows as seconds; scheduling noise on a loaded
    # 2-core machine reached 190 ms. The 100 ms goal is a figure the desktop suite prints, not a test.
    print(f"main-thread lateness during the run: max {max(heartbeat.late)} ms")
    assert max(heartbeat.late) <= 500, f"main thread stalled {max(heartbeat.late)} ms"

    # every tile went through the statuses in life-cycle order, in events and on the map
    with JobDB.open(path) as db:
        assert db.count_by_status() == {statuses.FINISHED: 16}
    for tile, sequence in {**events}.items():
        indices = [LIFE_CYCLE.index(s) for s in sequence]
        assert indices == sorted(indices) and len(set(indices)) == len(indices), (tile, sequence)
        assert sequence[-1] == statuses.FINISHED
    assert len(events) == 16
    # 6 s running: after a start the polling policy asks within 4 s (its merge window on loopback)
    assert sum(statuses.RUNNING in seq for seq in events.values()) >= 12
    for tile, sequence in seen_in_layer.items():
        indices = [LIFE_CYCLE.index(s) for s in sequence]
        assert indices == sorted(indices), (tile, sequence)
        assert sequence[0] == statuses.NOT_STARTED and sequence[-1] == statuses.FINISHED
    assert sum(len(seq) >= 4 for seq in seen_in_layer.values()) >= 12  # the map showed intermediate colours

    # result layers with the seed's fixed rendering
    results = session.results.layers()
    assert len(results) == 16 and sorted(r.name() for r in results) == sorted(events)
    for raster in results:
        renderer = raster.renderer()
        assert isinstance(renderer, QgsMultiBandColorRenderer)
        red = renderer.redContrastEnhancement()
        blue = renderer.blueContrastEnhancement()
        assert (
            red.contrastEnhancementAlgorithm()
            == QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum
        )
        assert (red.minimumValue(), red.maximumValue(), blue.maximumValue()) == (200, 4000, 4500)
        assert raster.brightnessFilter().gamma() == pytest.approx(2.2)
    assert [child.name() for child in session.group.children()] == ["Tiles", "Results"]
    del renderer, red, blue, raster

    # mid-run render: result pixels in a finished tile, tile colours elsewhere
    assert mid_run, "no result arrived during the run"
    image, extent = mid_run["image"], mid_run["extent"]
    with JobDB.open(path) as db:
        bounds = {row["tile_id"]: db.geometry(row["fid"]).bounds for row in db.all_rows(["tile_id"])}
    first = mid_run["shown"][0]
    pixels = region(image, extent, bounds[first])
    assert not is_blank(pixels) and len(np.unique(pixels.reshape(-1, 4), axis=0)) > 20  # a picture, not a fill
    checked = 0
    for tile, status in mid_run["before"].items():
        if status != mid_run["after"][tile] or status == statuses.FINISHED:
            continue
        expected = over_white(statuses.CSS_HEX[statuses.color_of(status)], statuses.FILL_OPACITY)
        centre = region(image, extent, bounds[tile], margin=0.45)
        assert close_to(centre[0, 0], expected, 4), (tile, status, centre[0, 0])
        checked += 1
    assert checked >= 4

    # the final map: every tile unfilled over its result
    final = render([layer, *results], extent, size=160)
    for tile in bounds:
        assert not is_blank(region(final, extent, bounds[tile]))
    del results, task, scheduler


def test_cancel_resume_save_reopen_resume(tmp_path, project, backend_process) -> None:
    backend = backend_process(workers=2, min_run_time=1.0)
    path, spec, profiles = new_run(tmp_path, backend)
    profiles = [BackendProfile(name="local", url=backend.url, parallel_jobs=2)]

    def run_until_some_finished(session: RunSession, scheduler, finished_at_least: int) -> float:
        ended = []
        session.runEnded.connect(lambda outcome, result: ended.append(outcome))
        session.start(scheduler, interval=0.2)
        assert wait_until(lambda: session.updater.statuses and _finished(path) >= finished_at_least, 60)
        assert wait_until(lambda: _remote_active(path) > 0, 10)
        QgsApplication.taskManager().cancelAll()  # what the task manager's cancel button does
        clock = time.monotonic()
        assert wait_until(lambda: ended, 5)
        assert ended == ["stopped"]
        return time.monotonic() - clock

    # run, cancel through the task manager
    session = RunSession(path, project)
    stop_time = run_until_some_finished(
        session, make_scheduler(path, spec=spec, profiles=profiles, output_dir=tmp_path / "out"), 2
    )
    assert stop_time < 1.0
    remote = {job.get("status") for job in backend.jobs()}
    assert remote & {"queued", "running"}, "remote jobs keep running after a cancel"

    # resume from the file alone (job spec, backends and output folder from the run record)
    stop_time = run_until_some_finished(session, make_scheduler(path), 6)
    assert stop_time < 1.0

    # save the project, reopen it: the layer, its style and the latest statuses; offer to resume
    project_file = str(tmp_path / "run.qgz")
    assert project.write(project_file)
    layer_id = session.layer.id()
    del session
    clear_project()
    with JobDB.open(path) as db:  # statuses move on while the project is closed (jobs on the backend)
        db_statuses = {row["tile_id"]: row["status"] for row in db.all_rows(["tile_id", "status"])}
    assert project.read(project_file)
    reopened = project.mapLayer(layer_id)
    assert reopened is not None and reopened.renderer().classAttribute() == "status"
    assert tile_statuses(reopened) == db_statuses
    runs = project_runs.unfinished_runs(project)
    assert [run.path for run in runs] == [path] and runs[0].active > 0
    del reopened

    session = RunSession(path, project)  # finds the saved layer and group again
    assert session.layer.id() == layer_id and len(project.mapLayers()) == 1 + len(session.results.layers())
    ended = []
    session.runEnded.connect(lambda outcome, result: ended.append(outcome))
    session.start(make_scheduler(path), interval=0.2)
    assert wait_until(lambda: ended, 90)
    assert ended == ["done"]
    with JobDB.open(path) as db:
        assert db.count_by_status() == {statuses.FINISHED: 16}
    assert project_runs.unfinished_runs(project) == []
    jobs = backend.jobs()
    assert len(jobs) == 16, "a job was created twice"
    assert len(session.results.layers()) == 16
    del session


def _finished(path: str) -> int:
    with JobDB.open(path) as db:
        return db.count_by_status().get(statuses.FINISHED, 0)


def _remote_active(path: str) -> int:
    with JobDB.open(path) as db:
        return sum(db.count_by_status(sorted(statuses.REMOTE_ACTIVE_STATUSES)).values())
