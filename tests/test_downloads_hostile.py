"""A hostile backend names its assets ``../x.tif`` and ``/tmp/x.tif``: refused, reported, nothing written outside.

The hostile backend is the Local demo backend behind a small rewriting HTTP proxy (real HTTP both ways).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from engine_crash_worker import make_db, make_scheduler, run_engine

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.events import RecordingListener

LocalBackend = pytest.importorskip("openeo_tile_jobs.local_backend").LocalBackend


class HostileProxy:
    """Forwards every request to ``upstream``; renames the assets of every job's results."""

    def __init__(self, upstream: str, asset_names: list[str]):
        self.upstream = upstream.rstrip("/")
        self.asset_names = asset_names
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                resp = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=30
                )
                content = resp.content.replace(proxy.upstream.encode(), proxy.url.encode())
                if self.command == "GET" and re.fullmatch(r"/jobs/[^/]+/results", self.path):
                    data = json.loads(content)
                    (asset,) = data["assets"].values()
                    data["assets"] = {name: dict(asset) for name in proxy.asset_names}
                    content = json.dumps(data).encode()
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() in ("content-type", "openeo-identifier", "retry-after"):
                        self.send_header(k, v)
                    elif k.lower() == "location":
                        self.send_header(k, v.replace(proxy.upstream, proxy.url))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_hostile_asset_names_are_refused_and_reported(tmp_path):
    outside_abs = Path("/tmp") / f"otj-hostile-{uuid.uuid4().hex}.tif"
    server = LocalBackend(data_dir=tmp_path / "backend", port=0, pixel_size=200).start()
    try:
        with HostileProxy(server.url, ["../x.tif", str(outside_abs), "sub/../../y.tif"]) as proxy:
            work = tmp_path / "work"
            out = work / "out"
            out.mkdir(parents=True)
            db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
            rec = RecordingListener()
            sched = make_scheduler(db, [proxy.url], server.demo_process_url, out, listeners=(rec,))
            report = run_engine(sched, poll_interval=0.1, max_seconds=60)
            sched.stop()
        assert report.done
        rows = db.all_rows(columns=["status", "id", "result_status", "result_files", "last_error"])
        for r in rows:
            assert r["status"] == statuses.FINISHED  # the job itself did finish
            assert r["result_status"] == "failed"
            assert not r["result_files"]
            assert (
                "refused" in r["last_error"] and "../x.tif" in r["last_error"] and str(outside_abs) in r["last_error"]
            )
            job_dir = out / f"job_{r['id']}"
            assert sorted(p.name for p in job_dir.iterdir()) == ["job-results.json"]
        # nothing written outside the job folders, let alone outside the output folder
        assert sorted(p.name for p in out.iterdir()) == sorted(f"job_{r['id']}" for r in rows)
        assert not outside_abs.exists()
        assert not (work / "x.tif").exists() and not (work / "y.tif").exists()
        assert sorted(p.relative_to(work).parts[0] for p in work.rglob("*")) == ["out"] * len(list(work.rglob("*")))
        # reported to the user
        assert any("refused" in line.message for line in rec.logs)
    finally:
        server.stop()
