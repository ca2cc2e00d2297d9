"""Adaptive re-tiling in the engine, against the Local demo backend over real HTTP: jobs that load
more pixels than its ``max_pixels_per_job`` fail out of memory (the fault is the backend's own),
their tiles are split, the children run; the level limit; SIGKILL around the split."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

import rasterio
from engine_crash_worker import listing, make_db, make_scheduler, run_engine

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.events import EngineListener
from openeo_tile_jobs.core.grid import make_grid
from openeo_tile_jobs.core.jobdb import PARENT_COLUMN, JobDB
from openeo_tile_jobs.core.jobspec import find_client_token

WORKER = Path(__file__).parent / "engine_crash_worker.py"
COLUMNS = ["tile_id", "status", "id", "last_error", "result_files", PARENT_COLUMN, "client_token"]


class Changes(EngineListener):
    def __init__(self) -> None:
        self.changes = []

    def on_status_changed(self, change) -> None:
        self.changes.append(change)


def test_a_tile_too_big_is_split_and_its_quarters_compute_it(tmp_path, local_backend_factory):
    # 200 m pixels: x0_y0 is 10 x 10 = 100 pixels (over the limit), x1_y0 5 x 10 = 50, quarters 25
    server = local_backend_factory(max_pixels_per_job=60)
    aoi = {"west": 590000, "south": 5660000, "east": 593000, "north": 5662000, "crs": "EPSG:32631"}
    listener = Changes()
    with JobDB.create(tmp_path / "run.gpkg", make_grid(aoi, tile_size=2000, crs="EPSG:32631", fit=False)) as db:
        sched = make_scheduler(db, [server.url], server.demo_process_url, tmp_path / "out", listeners=(listener,))
        report = run_engine(sched, max_seconds=90)
        rows = {r["tile_id"]: r for r in db.all_rows(COLUMNS)}
        geoms = {r["tile_id"]: db.geometry(r["fid"]) for r in db.all_rows(["tile_id"])}
    assert report.done
    assert rows["x0_y0"]["status"] == statuses.SPLIT and rows["x1_y0"]["status"] == statuses.FINISHED
    assert "OutOfMemory" in rows["x0_y0"]["last_error"] or "out of memory" in rows["x0_y0"]["last_error"]
    assert "split into its quarters x0_y0.0 to x0_y0.3" in rows["x0_y0"]["last_error"]
    children = [f"x0_y0.{q}" for q in range(4)]
    assert sorted(t for t, r in rows.items() if r[PARENT_COLUMN] == "x0_y0") == children
    assert {rows[c]["status"] for c in children} == {statuses.FINISHED}
    assert report.progress.counts == {statuses.FINISHED: 5, statuses.SPLIT: 1} and report.progress.failed == 0
    # the engine told its listeners: the parent moved to split, and the children appeared in that
    # same round's events (as not_started, or further on when the round already started them)
    index = next(i for i, c in enumerate(listener.changes) if c.status == statuses.SPLIT)
    assert listener.changes[index].tile_ids == ("x0_y0",)
    assert [c for c in listener.changes if c.status == statuses.SPLIT] == [listener.changes[index]]
    same_round = listener.changes[index : index + len(statuses.ALL_STATUSES)]
    assert set(children) <= {t for c in same_round for t in c.tile_ids}
    # each child's result is its own quarter of the parent
    for child in children:
        (path,) = [p for p in rows[child]["result_files"] if p.endswith(".tif")]
        with rasterio.open(path) as raster:
            assert tuple(round(v) for v in raster.bounds) == tuple(round(v) for v in geoms[child].bounds)
            assert raster.read(1, masked=True).count() == raster.width * raster.height == 25


def test_splits_stop_after_two_levels_with_a_message(tmp_path, local_backend_factory):
    server = local_backend_factory(max_pixels_per_job=1)  # every job is too big, however small
    path = tmp_path / "run.gpkg"
    make_db(path, cols=1, rows=1, tile_size=2000).close()
    with JobDB.open(path) as db:
        sched = make_scheduler(db, [server.url], server.demo_process_url, tmp_path / "out", parallel_jobs=4)
        report = run_engine(sched, max_seconds=120)
        rows = {r["tile_id"]: r for r in db.all_rows(COLUMNS)}
    assert report.done
    assert len(rows) == 1 + 4 + 16
    split = sorted(t for t, r in rows.items() if r["status"] == statuses.SPLIT)
    assert split == ["x0_y0", "x0_y0.0", "x0_y0.1", "x0_y0.2", "x0_y0.3"]
    grandchildren = [t for t in rows if t.count(".") == 2]
    assert len(grandchildren) == 16 and {rows[t]["status"] for t in grandchildren} == {statuses.ERROR}
    for t in grandchildren:
        assert f"not split again: tile {t} is already 2 splits deep, the limit" in rows[t]["last_error"]
    assert report.progress.failed == 16
    assert len(listing(server.url)) == 21  # one job per tile, none for a split parent after its own


def test_split_levels_zero_keeps_the_error(tmp_path, local_backend_factory):
    server = local_backend_factory(max_pixels_per_job=1)
    path = tmp_path / "run.gpkg"
    make_db(path, cols=1, rows=1, tile_size=2000).close()
    with JobDB.open(path) as db:
        sched = make_scheduler(db, [server.url], server.demo_process_url, tmp_path / "out", split_levels=0)
        assert run_engine(sched, max_seconds=60).done
        (row,) = db.all_rows(COLUMNS)
    assert row["status"] == statuses.ERROR and "out of memory" in row["last_error"]


def run_worker(db_path: Path, out: Path, server, kill_at: str | None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(WORKER), "--db", str(db_path), "--out", str(out), "--url", server.url]
    cmd += ["--namespace", server.demo_process_url, "--parallel", "3", "--poll", "0.1", "--max-seconds", "90"]
    cmd += ["--kill-at", kill_at] if kill_at else []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)


def test_sigkill_around_the_split_never_duplicates_or_loses_a_tile(tmp_path, local_backend_factory):
    server = local_backend_factory(max_pixels_per_job=60)  # 2 km tiles: 100 pixels; quarters 25
    db_path, out = tmp_path / "run.gpkg", tmp_path / "out"
    make_db(db_path, cols=3, rows=1, tile_size=2000).close()

    def state() -> collections.Counter:
        with JobDB.open(db_path) as db:
            return collections.Counter(r["status"] for r in db.all_rows(["status"]))

    for point, expected_rows in (("before_split:1", 3), ("split_commit:1", 3), ("after_split:2", 3 + 8)):
        proc = run_worker(db_path, out, server, point)
        assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stdout, proc.stderr[-2000:])
        counts = state()
        assert sum(counts.values()) == expected_rows, (point, counts)  # inside the transaction: nothing
        assert counts[statuses.SPLIT] == (expected_rows - 3) // 4, (point, counts)
    proc = run_worker(db_path, out, server, None)
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-3000:])

    with JobDB.open(db_path) as db:
        rows = db.all_rows(COLUMNS)
    assert len(rows) == 3 + 12
    assert collections.Counter(r["status"] for r in rows) == {statuses.SPLIT: 3, statuses.FINISHED: 12}
    assert len({r["tile_id"] for r in rows}) == 15
    jobs = listing(server.url)
    per_tile = collections.Counter(find_client_token(j["title"]) for j in jobs)
    assert len(jobs) == 15 and set(per_tile.values()) == {1}  # the parents' failed jobs and one per child
    assert {j["id"] for j in jobs} == {r["id"] for r in rows}
