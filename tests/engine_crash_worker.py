"""Helpers for the engine's end-to-end tests, and a script that runs the engine and dies on cue.

As a script (the SIGKILL crash test runs it as a child process)::

    python tests/engine_crash_worker.py --db run.gpkg --out OUT --url URL [--url URL2] \
        --namespace DEMO_URL [--kill-at after_create:5] [--poll 0.2]

``--kill-at POINT:N`` sends SIGKILL to itself the N-th time the engine passes POINT:
``after_intent`` (intents written, before POST /jobs), ``after_create`` (POST /jobs answered,
before the job id is in the database), ``after_start``, ``dl_chunk`` / ``dl_before_rename``
(inside a download), or ``time:SECONDS`` (wherever the engine is then).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional

TEMPORAL_EXTENT = ["2024-06-01", "2024-06-20"]
SEED_AOI = {"west": 590_000.0, "south": 5_660_000.0, "east": 610_000.0, "north": 5_680_000.0, "crs": "EPSG:32631"}


def make_db(path: Path, cols: int = 4, rows: int = 4, tile_size: float = 5000.0) -> Any:
    """A run database with ``cols`` x ``rows`` tiles (the seed's 16 tiles by default)."""
    from openeo_tile_jobs.core.grid import make_grid
    from openeo_tile_jobs.core.jobdb import JobDB

    aoi = {
        "west": SEED_AOI["west"],
        "south": SEED_AOI["south"],
        "east": SEED_AOI["west"] + cols * tile_size,
        "north": SEED_AOI["south"] + rows * tile_size,
        "crs": "EPSG:32631",
    }
    grid = make_grid(aoi, tile_size=tile_size, crs="EPSG:32631")
    return JobDB.create(path, grid)


def make_scheduler(
    db: Any,
    urls: list[str],
    namespace: str,
    out: Path,
    *,
    parallel_jobs: int = 2,
    profiles: Optional[list[Any]] = None,
    credentials: Any = None,
    listeners: tuple = (),
    spec: Any = None,
    **config: Any,
) -> Any:
    from openeo_tile_jobs.core.backends import Backend, BackendProfile
    from openeo_tile_jobs.core.jobspec import JobSpec
    from openeo_tile_jobs.core.scheduler import EngineConfig, Scheduler

    if profiles is None:
        profiles = [
            BackendProfile(name=f"local{i + 1}", url=u, parallel_jobs=parallel_jobs, request_timeout=10)
            for i, u in enumerate(urls)
        ]
    backends = [Backend(p, credentials) for p in profiles]
    spec = spec or JobSpec(namespace=namespace, parameters={"temporal_extent": TEMPORAL_EXTENT})
    # Tests check behaviour, not cadence: the backends may be asked every 0.2 s.
    cfg = EngineConfig(output_dir=out, **{"download_retry_base": 0.2, "poll_min": 0.2, **config})
    return Scheduler(db, spec, backends, cfg, listeners=listeners)


def run_engine(
    sched: Any, poll_interval: float = 0.2, max_seconds: float = 60, on_round: Any = None, until_done: bool = True
) -> Any:
    """Drive ``sched`` with the one run loop (as the panel, Processing and the demo do) until it is done,
    stopped, stalled or ``max_seconds`` passed; the last round's report. The scheduler is stopped after."""
    import time

    from openeo_tile_jobs.core.engine_config import StepReport
    from openeo_tile_jobs.core.run_loop import drive

    deadline = time.monotonic() + max_seconds
    result = drive(
        sched,
        lambda: sched.stopped or time.monotonic() > deadline,
        interval=poll_interval,
        on_round=on_round,
        include_existing_results=False,
        until_done=until_done,
    )
    return result.last_report or StepReport(skipped=True)


def listing(url: str, basic: Optional[tuple[str, str]] = None) -> list[dict]:
    """Every job of the demo user on a backend (signing in with ``basic`` if given), following ``next`` links."""
    import requests

    headers = {}
    if basic:
        token = requests.get(url.rstrip("/") + "/credentials/basic", auth=basic, timeout=10).json()["access_token"]
        headers["Authorization"] = f"Bearer basic//{token}"
    jobs, next_url = [], url.rstrip("/") + "/jobs?limit=100"
    while next_url:
        data = requests.get(next_url, headers=headers, timeout=10).json()
        jobs += data["jobs"]
        links = [link["href"] for link in data.get("links", []) if link.get("rel") == "next"]
        next_url = links[0] if links else None
    return jobs


def _kill() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--url", action="append", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--kill-at", default=None)
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--poll", type=float, default=0.2)
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args(argv)

    from openeo_tile_jobs.core.jobdb import JobDB

    db = JobDB.open(args.db)
    sched = make_scheduler(db, args.url, args.namespace, Path(args.out), parallel_jobs=args.parallel)
    if args.kill_at:
        point, _, n = args.kill_at.partition(":")
        if point == "time":
            threading.Timer(float(n), _kill).start()
        else:
            remaining = [int(n or 1)]

            def hit(name: str, *_: Any) -> None:
                if name == point:
                    remaining[0] -= 1
                    if remaining[0] <= 0:
                        _kill()

            sched.checkpoint = hit
            sched.downloader.checkpoint = lambda name, task: hit("dl_" + name)
    report = run_engine(sched, poll_interval=args.poll, max_seconds=args.max_seconds)
    print("DONE" if report.done else "NOT DONE", flush=True)
    return 0 if report.done else 3


if __name__ == "__main__":
    sys.exit(main())
