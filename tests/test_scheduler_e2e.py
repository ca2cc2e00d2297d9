"""The job engine end to end against the Local demo backend (real HTTP, unchanged openeo client)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import rasterio
from engine_crash_worker import TEMPORAL_EXTENT, listing, make_db, make_scheduler, run_engine

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.events import RecordingListener
from openeo_tile_jobs.core.jobspec import JobSpec

LocalBackend = pytest.importorskip("openeo_tile_jobs.local_backend").LocalBackend

PIXEL = 200.0  # metres: a 5 km tile is 25 x 25 pixels, computed for real in milliseconds


@pytest.fixture()
def servers(tmp_path):
    started = []

    def start(n=1, **kw):
        out = []
        for _ in range(n):
            kw.setdefault("pixel_size", PIXEL)
            kw.setdefault("workers", 2)
            b = LocalBackend(data_dir=tmp_path / f"backend{len(started)}", port=0, **kw).start()
            started.append(b)
            out.append(b)
        return out

    yield start
    for b in started:
        b.stop()


def final_rows(db):
    cols = ["tile_id", "status", "id", "backend_name", "result_status", "result_files", "last_error"]
    return db.all_rows(columns=cols)


def test_seed_scenario_two_backends_completes_with_valid_geotiffs(servers, tmp_path):
    """16 tiles (the seed's grid), two backends, parallel_jobs=2 each: every tile finished and downloaded."""
    b1, b2 = servers(2)
    db = make_db(tmp_path / "run.gpkg")
    rec = RecordingListener()
    sched = make_scheduler(
        db, [b1.url, b2.url], b1.demo_process_url, tmp_path / "out", parallel_jobs=2, listeners=(rec,)
    )
    max_active = {"local1": 0, "local2": 0}
    per_round_listing = []

    def on_round(report):
        for name, n in (report.progress.active_per_backend if report.progress else {}).items():
            max_active[name] = max(max_active.get(name, 0), n)
        per_round_listing.append(dict(report.listing_requests))

    report = run_engine(sched, poll_interval=0.2, max_seconds=120, on_round=on_round)
    sched.stop()
    assert report.done
    rows = final_rows(db)
    assert len(rows) == 16
    assert {r["status"] for r in rows} == {statuses.FINISHED}
    assert {r["result_status"] for r in rows} == {"downloaded"}
    assert {r["backend_name"] for r in rows} == {"local1", "local2"}  # both backends used
    assert max(max_active.values()) <= 2  # parallel_jobs respected
    for r in rows:
        (tif,) = r["result_files"]
        assert Path(tif).parent.name == f"job_{r['id']}"
        assert (Path(tif).parent / "job-results.json").is_file()
        with rasterio.open(tif) as src:
            assert src.count == 3 and src.crs.to_epsg() == 32631
            assert src.read().any()
    assert not list((tmp_path / "out").rglob("*.part"))
    # events: every tile reported finished and downloaded; progress counts add up
    finished = {t for c in rec.status_changes if c.status == statuses.FINISHED for t in c.tile_ids}
    assert len(finished) == 16
    assert rec.progress[-1].counts == {statuses.FINISHED: 16} and rec.progress[-1].total == 16
    assert rec.progress[-1].downloads == {"downloaded": 16}
    assert rec.costs and rec.costs[-1] > 0  # the demo backend charges per cpu-second
    # at most one listing request per backend per round (fewer than 100 jobs: one page)
    assert all(n <= 1 for r in per_round_listing for n in r.values())


def test_tracking_costs_one_request_per_backend_per_listing_page(servers, tmp_path):
    """Read from the backend's own counters: GET /jobs once per round and page, never GET /jobs/{id}."""
    (b,) = servers(1, min_run_time=1.0)
    db = make_db(tmp_path / "run.gpkg", cols=3, rows=2)
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=6, listing_page_size=2)
    sched.step()  # connects and starts all 6 jobs
    assert db.count_by_status() == {statuses.QUEUED_FOR_START: 6}
    b.reset_counts()
    rounds = checks = 0
    while not sched.is_done() and rounds < 400:
        before = b.request_counts().get("GET /jobs", 0)
        report = sched.step()
        listing_requests = b.request_counts().get("GET /jobs", 0) - before
        if listing_requests:
            checks += 1
            pages = -(-len(listing(b.url)) // 2)
            assert listing_requests <= pages, (listing_requests, pages)
        assert listing_requests == report.listing_requests.get("local1", 0)
        rounds += 1
        time.sleep(0.05)
    assert sched.is_done()
    assert 0 < checks < rounds  # the polling policy asks only when something may have changed
    counts = b.request_counts()
    assert counts.get("GET /jobs/{job_id}", 0) == 0  # no per-job polling
    sched.stop()


def test_bad_request_on_create_fails_only_that_tile(servers, tmp_path):
    """A 4xx on POST /jobs makes that tile start_failed with the backend's message; the run goes on."""
    (b,) = servers(1)
    db = make_db(tmp_path / "run.gpkg", cols=3, rows=2)
    db.add_column("collection", "TEXT")
    db.update_many({fid: {"collection": "NOPE" if fid in (2, 5) else "SENTINEL2_L2A"} for fid in range(1, 7)})
    graph = {
        "load": {
            "process_id": "load_collection",
            "arguments": {
                "id": {"from_parameter": "collection"},
                "spatial_extent": {"from_parameter": "spatial_extent"},
                "temporal_extent": TEMPORAL_EXTENT,
                "bands": ["B04", "B03", "B02"],
            },
        },
        "median": {
            "process_id": "reduce_dimension",
            "arguments": {
                "data": {"from_node": "load"},
                "dimension": "t",
                "reducer": {
                    "process_graph": {
                        "m": {"process_id": "median", "arguments": {"data": {"from_parameter": "data"}}, "result": True}
                    }
                },
            },
        },
        "save": {
            "process_id": "save_result",
            "arguments": {"data": {"from_node": "median"}, "format": "GTiff"},
            "result": True,
        },
    }
    pg = tmp_path / "graph.json"
    pg.write_text(
        json.dumps(
            {
                "process_graph": graph,
                "parameters": [
                    {"name": "spatial_extent", "schema": {"type": "object", "subtype": "geojson"}},
                    {"name": "collection", "schema": {"type": "string"}},
                ],
            }
        )
    )
    spec = JobSpec(process_graph_file=str(pg))
    sched = make_scheduler(db, [b.url], "", tmp_path / "out", parallel_jobs=6, spec=spec)
    report = run_engine(sched, poll_interval=0.2, max_seconds=60)
    assert report.done
    rows = {r["tile_id"]: r for r in final_rows(db)}
    bad = [r for r in rows.values() if r["status"] == statuses.START_FAILED]
    assert len(bad) == 2
    for r in bad:
        assert "CollectionNotFound" in r["last_error"] and "NOPE" in r["last_error"]
        assert r["id"] is None
    assert sum(r["status"] == statuses.FINISHED for r in rows.values()) == 4
    assert len(listing(b.url)) == 4  # no job was created for the bad tiles


def test_job_error_logs_and_automatic_retry(servers, tmp_path):
    """A job in error: its error logs in last_error and job_<id>/errors.json, retried up to max_attempts."""
    (b,) = servers(1, faults={"job_error": 1.0})
    db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=2, max_attempts=3)
    report = run_engine(sched, poll_interval=0.2, max_seconds=60)
    assert report.done
    rows = db.all_rows(columns=["status", "id", "attempts", "last_error"])
    assert all(r["status"] == statuses.ERROR and r["attempts"] == 3 for r in rows)
    jobs = listing(b.url)
    assert len(jobs) == 6 and {j["status"] for j in jobs} == {"error"}  # 2 tiles x 3 attempts
    for j in jobs:
        errors = json.loads((tmp_path / "out" / f"job_{j['id']}" / "errors.json").read_text())
        assert errors and all(e["level"] == "error" for e in errors)
    for r in rows:
        assert r["last_error"]
        logged = json.loads((tmp_path / "out" / f"job_{r['id']}" / "errors.json").read_text())
        assert logged[0]["message"] in r["last_error"]


def test_retry_after_error_then_success(servers, tmp_path):
    """With automatic retry, a tile whose first job failed ends finished with 2 attempts."""
    (b,) = servers(1, faults={"job_error": 1.0})
    db = make_db(tmp_path / "run.gpkg", cols=1, rows=1)

    class Recover(RecordingListener):
        def on_log(self, line):
            super().on_log(line)
            if "retrying" in line.message:
                b.set_faults()  # the backend recovers before the second attempt starts

    rec = Recover()
    sched = make_scheduler(
        db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=1, max_attempts=2, listeners=(rec,)
    )
    report = run_engine(sched, poll_interval=0.2, max_seconds=60)
    assert report.done
    row = db.get(1)
    assert row["status"] == statuses.FINISHED and row["attempts"] == 2 and row["result_status"] == "downloaded"
    assert "fails on purpose" in row["last_error"]  # the first attempt's error stays visible
    assert [j["status"] for j in listing(b.url)] == ["finished", "error"]


def test_long_running_jobs_are_canceled(servers, tmp_path):
    (b,) = servers(1, min_run_time=30.0)
    db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=2, cancel_running_after=1.0)
    report = run_engine(sched, poll_interval=0.2, max_seconds=30)
    assert report.done
    rows = db.all_rows(columns=["status", "last_error", "running_start_time"])
    assert all(r["status"] == statuses.CANCELED for r in rows)
    assert all("longer than 1 s" in r["last_error"] and r["running_start_time"] for r in rows)
    assert {j["status"] for j in listing(b.url)} == {"canceled"}


def test_stop_returns_within_one_second_with_jobs_active_and_downloads_in_flight(servers, tmp_path):
    (b,) = servers(1, faults={"latency": 2.0, "endpoints": ["GET /download/*"]})
    db = make_db(tmp_path / "run.gpkg", cols=4, rows=2)
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=3)
    runner = threading.Thread(target=run_engine, args=(sched,), kwargs={"poll_interval": 0.1, "max_seconds": 60})
    runner.start()
    deadline = time.time() + 30
    while sched.downloader.in_flight() == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert sched.downloader.in_flight() > 0
    assert sum(db.count_by_status(statuses.ACTIVE_STATUSES).values()) > 0
    t0 = time.perf_counter()
    sched.stop(timeout=1.0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0
    runner.join(1.0)
    assert not runner.is_alive()
    # nothing counted as downloaded that was not; the next engine finishes the work
    snapshot = db.all_rows(columns=["status", "result_status", "result_files"])
    assert all(not r["result_files"] for r in snapshot if r["result_status"] != "downloaded")
    b.set_faults()
    sched2 = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=3)
    assert run_engine(sched2, poll_interval=0.1, max_seconds=60).done
    rows = db.all_rows(columns=["status", "result_status"])
    assert all(r["status"] == statuses.FINISHED and r["result_status"] == "downloaded" for r in rows)
    assert len(listing(b.url)) == 8  # no job created twice across the restart


def test_cancel_tiles_stops_jobs_and_unstarted_tiles(servers, tmp_path):
    (b,) = servers(1, min_run_time=30.0)
    db = make_db(tmp_path / "run.gpkg", cols=3, rows=1)
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=1)
    for _ in range(50):
        sched.step()
        if db.get(1)["status"] == statuses.RUNNING:
            break
        time.sleep(0.1)
    assert db.get(1)["status"] == statuses.RUNNING and db.get(2)["status"] == statuses.NOT_STARTED
    sched.cancel_tiles([1, 2])
    for _ in range(100):
        sched.step()
        if db.get(1)["status"] == statuses.CANCELED:
            break
        time.sleep(0.1)
    rows = {r["fid"]: r for r in db.all_rows(columns=["status", "last_error", "id"])}
    assert rows[1]["status"] == statuses.CANCELED and rows[1]["last_error"] == "canceled by the user"
    assert rows[2]["status"] == statuses.CANCELED and rows[2]["id"] is None
    assert rows[3]["status"] != statuses.CANCELED  # only what was asked
    assert listing(b.url)[-1]["status"] == "canceled"  # the oldest job: tile 1's
    sched.stop()


def test_run_reopened_from_the_file_alone(servers, tmp_path):
    from openeo_tile_jobs.core.backends import BackendProfile
    from openeo_tile_jobs.core.jobdb import JobDB
    from openeo_tile_jobs.core.run_setup import make_scheduler as open_run_scheduler
    from openeo_tile_jobs.core.run_setup import record_run_setup
    from openeo_tile_jobs.core.scheduler import EngineConfig

    (b,) = servers(1)
    db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
    spec = JobSpec(namespace=b.demo_process_url, parameters={"temporal_extent": TEMPORAL_EXTENT})
    record_run_setup(db, spec, [BackendProfile(name="local", url=b.url)], EngineConfig(output_dir=tmp_path / "out"))
    db.close()
    with JobDB.open(tmp_path / "run.gpkg") as db2:
        sched = open_run_scheduler(db2, config={"poll_interval": 0.1})
        assert run_engine(sched, max_seconds=60).done
        assert db2.count_by_status() == {statuses.FINISHED: 2}
        assert all(Path(r["result_files"][0]).is_file() for r in db2.all_rows(columns=["result_files"]))


def test_unreadable_process_definition_blocks_the_run_with_a_message(servers, tmp_path):
    (b,) = servers(1)
    db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
    rec = RecordingListener()
    sched = make_scheduler(db, [b.url], b.url + "/udp/no_such_process.json", tmp_path / "out", listeners=(rec,))
    t0 = time.time()
    report = run_engine(sched, poll_interval=0.1, max_seconds=30)
    assert time.time() - t0 < 10
    assert not report.done and "no_such_process" in report.blocked
    assert any("Cannot start jobs" in line.message for line in rec.logs)
    assert db.count_by_status() == {statuses.NOT_STARTED: 2}  # nothing failed, nothing created
    assert listing(b.url) == []


def test_retry_tiles_after_the_user_fixed_the_cause(servers, tmp_path):
    (b,) = servers(1, faults={"job_error": 1.0})
    db = make_db(tmp_path / "run.gpkg", cols=1, rows=1)
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=1)
    assert run_engine(sched, poll_interval=0.1, max_seconds=30).done
    assert db.get(1)["status"] == statuses.ERROR
    b.set_faults()
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=1)
    assert sched.retry_tiles([1, 1]) == 1  # what the tile menu tells the user: "1 tile(s) will be retried."
    assert run_engine(sched, poll_interval=0.1, max_seconds=30).done
    row = db.get(1)
    assert row["status"] == statuses.FINISHED and row["result_status"] == "downloaded" and row["attempts"] == 1
    assert [j["status"] for j in listing(b.url)] == ["finished", "error"]


def test_each_result_is_downloaded_once_when_a_download_ends_between_rounds(servers, tmp_path):
    """Slow downloads (latency injected on the backend's download endpoint) end while rounds go on back to
    back: each job's results are still fetched once (counted by the backend itself)."""
    (b,) = servers(1, faults={"latency": 0.4, "endpoints": ["GET /download/*"]})
    db = make_db(tmp_path / "run.gpkg", cols=3, rows=2)
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=6, download_workers=3)
    report = run_engine(sched, poll_interval=0.0, max_seconds=60)
    assert report.done
    rows = db.all_rows(columns=["status", "result_status"])
    assert all(r["status"] == statuses.FINISHED and r["result_status"] == "downloaded" for r in rows)
    counts = b.request_counts()
    assert counts.get("GET /jobs/{job_id}/results") == 6
    assert counts.get("GET /download/{job_id}/{signature}/{name}") == 6
