"""Crash safety: the engine process is killed with SIGKILL at varied points of a 50-tile run, then restarted."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from engine_crash_worker import listing, make_db

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.core.jobspec import find_client_token

LocalBackend = pytest.importorskip("openeo_tile_jobs.local_backend").LocalBackend

WORKER = Path(__file__).parent / "engine_crash_worker.py"
KILL_POINTS = [
    "after_intent:2",  # intents written, no POST /jobs sent yet
    "after_create:3",  # POST /jobs answered, job id not yet in the database
    "after_create:1",
    "after_start:4",  # started on the backend, status not yet written
    "dl_before_rename:2",  # a verified .part file not yet renamed
    "dl_chunk:3",  # in the middle of a download
    "time:1.5",  # wherever the engine is
]


def run_worker(db_path: Path, out: Path, server, kill_at: str | None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(WORKER), "--db", str(db_path), "--out", str(out), "--url", server.url]
    cmd += ["--namespace", server.demo_process_url, "--parallel", "4", "--poll", "0.1", "--max-seconds", "90"]
    if kill_at:
        cmd += ["--kill-at", kill_at]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)


def test_sigkill_at_varied_points_never_duplicates_or_loses_work(tmp_path):
    server = LocalBackend(data_dir=tmp_path / "backend", port=0, workers=2, pixel_size=200).start()
    try:
        db_path = tmp_path / "run.gpkg"
        make_db(db_path, cols=10, rows=5, tile_size=2000).close()
        out = tmp_path / "out"
        saw_orphan_job = False
        for point in KILL_POINTS:
            proc = run_worker(db_path, out, server, point)
            assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stdout, proc.stderr[-2000:])
            if point.startswith("after_create"):
                # The crash left a job on the backend whose id the database does not know yet.
                with JobDB.open(db_path) as db:
                    orphans = [r for r in db.get_by_status([statuses.CREATED]) if not r["id"] and r["client_token"]]
                tokens = {find_client_token(j.get("title"), j.get("description")) for j in listing(server.url)}
                saw_orphan_job |= any(r["client_token"] in tokens for r in orphans)
        assert saw_orphan_job
        proc = run_worker(db_path, out, server, None)
        assert proc.returncode == 0, (proc.stdout, proc.stderr[-3000:])

        with JobDB.open(db_path) as db:
            rows = db.all_rows(
                columns=["tile_id", "status", "id", "client_token", "result_status", "result_files", "attempts"]
            )
        assert len(rows) == 50
        assert {r["status"] for r in rows} == {statuses.FINISHED}
        assert {r["result_status"] for r in rows} == {"downloaded"}
        # no duplicate job on the backend: exactly one job per tile, and it is the tile's job
        jobs = listing(server.url)
        per_tile = collections.Counter(find_client_token(j["title"]) for j in jobs)
        assert len(jobs) == 50 and set(per_tile.values()) == {1}
        assert {j["id"] for j in jobs} == {r["id"] for r in rows}
        assert {find_client_token(j["title"]) for j in jobs} == {r["client_token"] for r in rows}
        # no partial file counted as a result: every result is complete, verified and readable
        for r in rows:
            assert r["result_files"]
            job_dir = out / f"job_{r['id']}"
            meta = json.loads((job_dir / "job-results.json").read_text())
            for f in r["result_files"]:
                path = Path(f)
                assert not path.name.endswith(".part") and path.parent == job_dir
                assert path.stat().st_size == meta["assets"][path.name]["file:size"]
                with rasterio.open(path) as src:
                    assert src.count == 3
        assert not list(out.rglob("*.part"))
    finally:
        server.stop()
