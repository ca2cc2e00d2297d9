"""Cheap and prompt tracking: our engine vs MultiBackendJobManager on jobs that take a minute.

20 tiles on 2 Local demo backends (each in its own process, as remote backends would be) x 2
parallel jobs, queue times uniform 1-3 s and run times log-normal with a mean of 60 s (sigma 0.3),
each backend drawing its own. Four runs, side by side and at the same time (each on its own
pair of backends): this engine with the backends reporting ``progress``, this engine with
``--no-progress``, and openeo's MultiBackendJobManager with ``poll_sleep`` 60 (its default) and
10. Every run downloads every result. Per run, read from the backends themselves:

* tracking requests per tile (``GET /jobs`` and ``GET /jobs/{id}``) and their bytes;
* mean idle gap of a slot: from a job's end on its backend to the next start there;
* wall time (from the first job's start to the run's end, results downloaded) ÷ ideal, the
  ideal being the same jobs each started the moment a slot is free.

Targets (issue 15): with progress at most 2 tracking requests per tile at 1.05x ideal; without
at most 4 at 1.10x. The whole benchmark takes about 10 minutes (MultiBackendJobManager with
``poll_sleep`` 60 is the slowest); ``--tiles 8 --run-time lognormal:20,0.3`` is a quick check.

Run: .venv/bin/python benchmarks/bench_polling.py [--tiles 20] [--run-time lognormal:60,0.3]
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
if str(REPO.parent) not in sys.path:
    sys.path.insert(0, str(REPO.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import TEMPORAL_EXTENT, ServerProcess, grid_for  # noqa: E402

RUNS = ("ours", "ours_no_progress", "mjm60", "mjm10")
PARALLEL = 2
PIXEL = 500.0


def start_servers(folder: Path, args: argparse.Namespace, progress: bool) -> list[ServerProcess]:
    out = []
    for i in (1, 2):
        options = {
            "workers": 2,
            "pixel_size": PIXEL,
            "queue_time": args.queue_time,
            "run_time": args.run_time,
            "duration_seed": args.seed + i,
        }
        server = ServerProcess(folder / f"backend{i}", **options, **({} if progress else {"no_progress": True}))
        out.append(server)
    return out


def backend_figures(server: ServerProcess) -> dict:
    """Tracking requests and bytes (the backend's counters), and its jobs' start and end times (its store)."""
    data = requests.get(server.url + "/_admin/counts", params={"bytes": "true"}, timeout=10).json()
    keys = ("GET /jobs", "GET /jobs/{job_id}")
    with sqlite3.connect(str(server.data_dir / "jobs.sqlite")) as db:
        jobs = db.execute("SELECT queued_at, finished_at FROM jobs WHERE finished_at IS NOT NULL").fetchall()
    return {
        "tracking": sum(data["requests"].get(k, 0) for k in keys),
        "bytes": sum(data["bytes"].get(k, 0) for k in keys),
        "jobs": sorted(jobs),
    }


def run_ours(folder: Path, servers: list[ServerProcess], tiles: int) -> float:
    from openeo_tile_jobs.core.backends import Backend, BackendProfile
    from openeo_tile_jobs.core.jobdb import JobDB
    from openeo_tile_jobs.core.jobspec import JobSpec
    from openeo_tile_jobs.core.run_loop import drive
    from openeo_tile_jobs.core.scheduler import EngineConfig, Scheduler

    db = JobDB.create(folder / "run.gpkg", grid_for(tiles))
    extra = [r["fid"] for r in db.all_rows(columns=["fid"])][tiles:]
    if extra:
        db.update_many({fid: {"status": "skipped"} for fid in extra})
    backends = [Backend(BackendProfile(name=f"b{i}", url=s.url, parallel_jobs=PARALLEL)) for i, s in enumerate(servers)]
    spec = JobSpec(namespace=servers[0].demo_process_url, parameters={"temporal_extent": TEMPORAL_EXTENT})
    sched = Scheduler(db, spec, backends, EngineConfig(output_dir=folder / "out"))
    result = drive(sched, lambda: False, include_existing_results=False)
    if result.outcome != "done":
        raise RuntimeError(f"our run ended {result.outcome}: {result.error}")
    db.close()
    return time.time()


def run_mjm(folder: Path, servers: list[ServerProcess], tiles: int, poll: float) -> float:
    import geopandas as gpd
    import openeo
    from openeo.extra.job_management import MultiBackendJobManager, create_job_db
    from openeo.extra.job_management.process_based import ProcessBasedJobCreator

    grid = grid_for(tiles)
    gdf = gpd.GeoDataFrame({"geometry": list(grid.geometries)[:tiles]}, crs="EPSG:32631").to_crs("EPSG:4326")
    start_job = ProcessBasedJobCreator(
        namespace=servers[0].demo_process_url, parameter_defaults={"temporal_extent": TEMPORAL_EXTENT}
    )
    manager = MultiBackendJobManager(poll_sleep=poll, root_dir=folder / "out")
    for i, s in enumerate(servers):
        manager.add_backend(f"b{i}", connection=openeo.connect(s.url), parallel_jobs=PARALLEL)
    job_db = create_job_db(folder / "jobs.csv", df=gdf, on_exists="error")
    manager.run_jobs(start_job=start_job, job_db=job_db)
    return time.time()


def one_run(name: str, folder: Path, args: argparse.Namespace) -> dict:
    servers = start_servers(folder, args, progress=name != "ours_no_progress")
    try:
        for s in servers:
            s.reset_counts()
        if name.startswith("ours"):
            ended = run_ours(folder, servers, args.tiles)
        else:
            ended = run_mjm(folder, servers, args.tiles, float(name[3:]))
        figures = [backend_figures(s) for s in servers]
    finally:
        for s in servers:
            s.stop()
    # From the first job's start on a backend to the run's end (results downloaded): what tracking decides.
    first = min(start for b in figures for start, _ in b["jobs"])
    return {"wall": ended - first, "backends": figures}


def ideal_and_gaps(backends: list[dict]) -> tuple[float, list[float]]:
    """The makespan with every job started the moment a slot is free, and the real idle gaps."""
    ideal, gaps = 0.0, []
    for b in backends:
        jobs = b["jobs"]
        free = [0.0] * PARALLEL
        for start, end in jobs:
            t = heapq.heappop(free) + (end - start)
            ideal = max(ideal, t)
            heapq.heappush(free, t)
        starts = sorted(s for s, _ in jobs)[PARALLEL:]
        ends = sorted(e for _, e in jobs)
        i = 0
        for s in starts:
            if i < len(ends) and ends[i] <= s:
                gaps.append(s - ends[i])
                i += 1
    return ideal, gaps


def summarize(run: dict, tiles: int) -> dict:
    ideal, gaps = ideal_and_gaps(run["backends"])
    durations = [e - s for b in run["backends"] for s, e in b["jobs"]]
    return {
        "requests": sum(b["tracking"] for b in run["backends"]) / tiles,
        "bytes": sum(b["bytes"] for b in run["backends"]) / tiles,
        "gap": sum(gaps) / max(1, len(gaps)),
        "job": sum(durations) / max(1, len(durations)),
        "wall": run["wall"],
        "ratio": run["wall"] / ideal if ideal else float("nan"),
        "finished": sum(len(b["jobs"]) for b in run["backends"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiles", type=int, default=20)
    ap.add_argument("--run-time", default="lognormal:60,0.3")
    ap.add_argument("--queue-time", default="uniform:1,3")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", nargs="+", choices=RUNS, default=list(RUNS), help="these runs only")
    ap.add_argument("--run", choices=RUNS, help=argparse.SUPPRESS)  # one run, in a child process
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.run:
        with tempfile.TemporaryDirectory() as tmp:
            Path(args.json).write_text(json.dumps(one_run(args.run, Path(tmp), args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        children = {}
        for name in args.only:  # all at once: they mostly wait for the backends' clocks
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, __file__, "--run", name, "--json", str(out), "--tiles", str(args.tiles)]
            cmd += ["--run-time", args.run_time, "--queue-time", args.queue_time, "--seed", str(args.seed)]
            children[name] = (subprocess.Popen(cmd), out)
        results = {}
        for name, (child, out) in children.items():
            if child.wait() != 0:
                raise SystemExit(f"the {name} run failed")
            results[name] = summarize(json.loads(out.read_text()), args.tiles)
    print(
        f"{args.tiles} tiles, 2 backends x {PARALLEL} parallel, queue {args.queue_time} s, run {args.run_time} s "
        "(Local demo backends in their own processes)"
    )
    heads = {"ours": "ours", "ours_no_progress": "ours, no progress", "mjm60": "MJM poll 60", "mjm10": "MJM poll 10"}
    runs = [n for n in RUNS if n in results]
    print(f"{'':32}" + "".join(f"{heads[n]:>19}" for n in runs))
    for key, label, fmt in (
        ("finished", "jobs finished", "{:>19}"),
        ("requests", "tracking requests per tile", "{:>19.2f}"),
        ("bytes", "tracking bytes per tile", "{:>19.0f}"),
        ("gap", "mean idle gap of a slot (s)", "{:>19.1f}"),
        ("job", "mean job time (s)", "{:>19.1f}"),
        ("wall", "wall time (s)", "{:>19.1f}"),
        ("ratio", "wall time / ideal", "{:>19.3f}"),
    ):
        print(f"{label:32}" + "".join(fmt.format(results[n][key]) for n in runs))
    if runs != list(RUNS):
        return
    w, wo, m60, m10 = (results[n] for n in RUNS)
    print(
        f"polling: {w['requests']:.1f} tracking requests/tile, wall {w['ratio']:.2f}x ideal with progress; "
        f"{wo['requests']:.1f}/tile, {wo['ratio']:.2f}x without (MJM60 {m60['requests']:.1f}/tile "
        f"{m60['ratio']:.1f}x, MJM10 {m10['requests']:.0f}/tile {m10['ratio']:.1f}x)"
    )


if __name__ == "__main__":
    main()
