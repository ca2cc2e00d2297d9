"""core.estimate_job against the Local demo backend (real HTTP, unchanged openeo client):
the backend's estimate for the typical tile, whose job becomes that tile's job; a backend
without estimates (501, not listed); the pilot tile and its extrapolation."""

from __future__ import annotations

import pytest
import requests
from engine_crash_worker import listing, make_db, make_scheduler, run_engine

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.estimate import SOURCE_BACKEND, SOURCE_PILOT
from openeo_tile_jobs.core.estimate_job import ESTIMATE_ENDPOINT, pilot_estimate, request_estimate, tile_areas


def test_estimate_job_is_the_tiles_job_and_matches_what_the_run_is_billed(local_backend_factory, tmp_path):
    local_backend = local_backend_factory(run_time=1.0)
    db = make_db(tmp_path / "run.gpkg", cols=3, rows=2)  # 6 tiles of 5 km
    sched = make_scheduler(db, [local_backend.url], local_backend.demo_process_url, tmp_path / "out", parallel_jobs=2)
    outcome = request_estimate(sched)
    est = outcome.estimate
    assert est is not None and est.source == SOURCE_BACKEND and (est.tiles, est.parallel) == (6, 2)
    assert est.credits.value > 0 and est.seconds.value == pytest.approx(6 * 1.0 / 2, abs=0.3)  # 1 s jobs, 2 at once
    row = db.get(outcome.fid, columns=["tile_id", "status", "id", "client_token"])
    assert row["status"] == statuses.CREATED and row["id"] == est.job_id and row["client_token"]
    assert [(j["id"], j["status"]) for j in listing(local_backend.url)] == [(est.job_id, "created")]
    counts = local_backend.request_counts()
    assert counts.get("GET /jobs/{job_id}/estimate") == 1 and counts.get("POST /jobs/{job_id}/results", 0) == 0

    assert run_engine(sched, max_seconds=120).done
    jobs = listing(local_backend.url)
    assert len(jobs) == 6 and {j["status"] for j in jobs} == {"finished"}  # one job per tile, none twice
    assert db.get(outcome.fid, columns=["id"])["id"] == est.job_id  # the estimate's job ran for its tile
    billed = db.sum_costs()[0]
    assert est.credits.value == pytest.approx(billed, rel=0.01)  # equal tiles: the same formula bills them


def test_backend_without_estimates_makes_no_job_and_says_why(local_backend_factory, tmp_path):
    backend = local_backend_factory(offer_estimate=False)
    paths = [e["path"] for e in requests.get(backend.url + "/", timeout=10).json()["endpoints"]]
    assert ESTIMATE_ENDPOINT not in paths and "/jobs/{job_id}" in paths
    db = make_db(tmp_path / "run.gpkg", cols=2, rows=2)
    sched = make_scheduler(db, [backend.url], backend.demo_process_url, tmp_path / "out", parallel_jobs=2)
    outcome = request_estimate(sched)
    assert outcome.estimate is None and "offers no estimate" in outcome.reason
    assert listing(backend.url) == [] and db.count_by_status() == {statuses.NOT_STARTED: 4}
    answer = requests.get(f"{backend.url}/jobs/j-any/estimate", timeout=10)
    assert (answer.status_code, answer.json()["code"]) == (501, "FeatureUnsupported")


def test_pilot_runs_the_typical_tile_alone_and_extrapolates(local_backend_factory, tmp_path):
    backend = local_backend_factory(offer_estimate=False)
    db = make_db(tmp_path / "run.gpkg", cols=2, rows=2)
    sched = make_scheduler(db, [backend.url], backend.demo_process_url, tmp_path / "out", parallel_jobs=2)
    fid = request_estimate(sched).fid
    sched.only_fids = {fid}
    assert run_engine(sched, max_seconds=60).done
    assert db.count_by_status() == {statuses.FINISHED: 1, statuses.NOT_STARTED: 3}
    assert len(listing(backend.url)) == 1
    est = pilot_estimate(db, fid, seconds=4.0, parallel=2)
    assert est.source == SOURCE_PILOT and est.tiles == 4
    assert est.credits.value == pytest.approx(4 * db.get(fid, columns=["costs"])["costs"])
    assert est.seconds.value == pytest.approx(8.0)  # 4 equal tiles of 4 s, two at a time
    assert len(tile_areas(db)) == 3

    sched = make_scheduler(db, [backend.url], backend.demo_process_url, tmp_path / "out", parallel_jobs=2)
    assert run_engine(sched, max_seconds=60).done  # Start: the rest, the pilot not again
    assert len(listing(backend.url)) == 4 and db.count_by_status() == {statuses.FINISHED: 4}
