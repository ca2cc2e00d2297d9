"""Cancel stops within a second even while a round waits on a slow backend; remote jobs are
canceled only when asked; a run in mosaic mode keeps one VRT layer up to date."""

from __future__ import annotations

import json
import time

import pytest
from qgis.core import QgsApplication, QgsProject

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.core.run_setup import make_scheduler
from openeo_tile_jobs.gis.project import ProjectRunsWatcher
from openeo_tile_jobs.gis.result_layers import KIND_MOSAIC
from openeo_tile_jobs.gis.run_session import RESULTS_MOSAIC, RunSession
from openeo_tile_jobs.gis.run_task import RUNNING
from openeo_tile_jobs.tests.test_gis_run import backend_process, new_run, wait_until  # noqa: F401 (fixture)
from openeo_tile_jobs.tests.test_gis_support import clear_project, is_blank, region, render


@pytest.fixture()
def project(qgis_app):
    yield QgsProject.instance()
    QgsApplication.taskManager().cancelAll()
    wait_until(lambda: not RUNNING, 5)
    clear_project()


def test_cancel_during_a_slow_round(tmp_path, project, backend_process) -> None:  # noqa: F811
    backend = backend_process(faults=json.dumps({"latency": 3.0, "endpoints": ["GET /jobs"]}))
    path, spec, profiles = new_run(tmp_path, backend)
    session = RunSession(path, project)
    ended = []
    session.runEnded.connect(lambda outcome, result: ended.append(outcome))
    session.start(make_scheduler(path, spec=spec, profiles=profiles, output_dir=tmp_path / "out"), interval=0.2)
    assert wait_until(lambda: session.updater.statuses, 20)  # jobs created; tracking now waits 3 s per listing
    time.sleep(0.5)
    clock = time.monotonic()
    session.cancel()
    assert wait_until(lambda: ended, 5)
    assert time.monotonic() - clock < 1.0
    assert ended == ["stopped"] and not RUNNING


def test_cancel_remote_jobs_when_asked(tmp_path, project, backend_process) -> None:  # noqa: F811
    backend = backend_process(min_run_time=5.0)
    path, spec, profiles = new_run(tmp_path, backend)
    session = RunSession(path, project)
    ended = []
    session.runEnded.connect(lambda outcome, result: ended.append((outcome, result)))
    session.start(make_scheduler(path, spec=spec, profiles=profiles, output_dir=tmp_path / "out"), interval=0.2)
    assert wait_until(lambda: session.updater.statuses.get(1) in (statuses.QUEUED, statuses.RUNNING), 20)
    session.cancel(cancel_remote_jobs=True)
    assert wait_until(lambda: ended, 15)
    outcome, result = ended[0]
    assert outcome == "stopped" and result.remote_canceled >= 1
    remote = [job["status"] for job in backend.jobs()]
    assert "canceled" in remote and not {"queued", "running"} & set(remote)


def test_mosaic_mode_and_reopen_watcher(tmp_path, project, backend_process) -> None:  # noqa: F811
    backend = backend_process(workers=2)
    path, spec, profiles = new_run(tmp_path, backend)
    session = RunSession(path, project, results_mode=RESULTS_MOSAIC)
    mosaics, ended = [], []
    session.resultsShown.connect(lambda layers: mosaics.append([layer.source() for layer in layers]))
    session.runEnded.connect(lambda outcome, result: ended.append(outcome))
    session.start(make_scheduler(path, spec=spec, profiles=profiles, output_dir=tmp_path / "out"), interval=0.2)
    assert wait_until(lambda: ended, 90) and ended == ["done"]
    layers = session.results.layers()
    assert len(layers) == 1 and layers[0].customProperty("openeo_tile_jobs/kind") == KIND_MOSAIC
    assert mosaics and mosaics[-1] == [layers[0].source()]
    extent = session.layer.extent()
    image = render([session.layer, layers[0]], extent, size=160)
    with JobDB.open(path) as db:
        for row in db.all_rows(["tile_id"]):
            assert not is_blank(region(image, extent, db.geometry(row["fid"]).bounds)), row["tile_id"]

    project_file = str(tmp_path / "mosaic.qgz")
    assert project.write(project_file)
    del layers, session
    clear_project()
    watcher = ProjectRunsWatcher(project)
    found = []
    watcher.unfinishedRunsFound.connect(found.append)
    assert project.read(project_file)
    assert found == []  # the run is complete: nothing to offer
    reopened = RunSession(path, project)
    assert reopened.results_mode == RESULTS_MOSAIC  # saved with the layer
    assert len(reopened.results.layers(KIND_MOSAIC)) == 1
    watcher.disconnect_project()
    del reopened
