"""Engine time per round with 100,000 tiles in the database, ours vs openeo's MultiBackendJobManager.

The database holds 99,856 one-kilometre tiles (a 316 km x 316 km AOI), half of them finished
and downloaded (a run half-way). Two Local demo backends, each in its own process like a remote
backend, ``parallel_jobs=10`` each.

* Quiet rounds: jobs stay running, so every round tracks 20 active jobs and has no free slot.
* Busy rounds: jobs finish at once, so every round tracks, queues 20 downloads and creates and
  starts 20 new jobs.

Ours: ``Scheduler.step()`` on the GeoPackage job database. "Engine time" is the round's wall
time minus the time its thread waits on the network (its own requests, and the job-creating
threads, one per backend, that only do HTTP); "CPU" is the round thread's CPU time.
MultiBackendJobManager: one ``_job_update_loop`` (what ``run_jobs`` does between its sleeps) on
openeo's ParquetJobDatabase with the same rows, quiet rounds; its HTTP wait (20 sequential
``GET /jobs/{id}``) is estimated as its request count x our median time per request.

Run: .venv/bin/python benchmarks/bench_engine_round.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO.parent) not in sys.path:
    sys.path.insert(0, str(REPO.parent))

from openeo_tile_jobs.core.backends import Backend, BackendProfile  # noqa: E402
from openeo_tile_jobs.core.grid import make_grid  # noqa: E402
from openeo_tile_jobs.core.jobdb import JobDB  # noqa: E402
from openeo_tile_jobs.core.jobspec import JobSpec  # noqa: E402
from openeo_tile_jobs.core.scheduler import EngineConfig, Scheduler  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import ServerProcess  # noqa: E402

AOI = {"west": 400_000, "south": 5_000_000, "east": 716_000, "north": 5_316_000, "crs": "EPSG:32631"}
TEMPORAL_EXTENT = ["2024-06-01", "2024-06-11"]
PARALLEL = 10


def servers(folder: Path, min_run_time: float = 3600) -> list[ServerProcess]:
    return [ServerProcess(folder / f"b{i}", workers=2, pixel_size=1000, min_run_time=min_run_time) for i in (1, 2)]


def ours(folder: Path, grid, rounds: int, busy: bool = False) -> dict:
    """Quiet rounds (jobs kept running) or busy rounds (jobs finish at once: tracked, downloaded, replaced)."""
    folder = folder / ("busy" if busy else "quiet")
    folder.mkdir()
    t0 = time.perf_counter()
    db = JobDB.create(folder / "ours.gpkg", grid)
    half = len(grid) // 2
    db.update_many(
        {fid: {"status": "finished", "result_status": "downloaded", "id": f"old-{fid}"} for fid in range(1, half + 1)}
    )
    setup = time.perf_counter() - t0
    srv = servers(folder / "ours", min_run_time=0 if busy else 3600)
    try:
        backends = [Backend(BackendProfile(name=f"b{i}", url=s.url, parallel_jobs=PARALLEL)) for i, s in enumerate(srv)]
        spec = JobSpec(namespace=srv[0].demo_process_url, parameters={"temporal_extent": TEMPORAL_EXTENT})
        sched = Scheduler(db, spec, backends, EngineConfig(output_dir=folder / "out"))
        t0 = time.perf_counter()
        first = sched.step()  # start-up: counts, connections, 20 jobs created and started
        first_s = time.perf_counter() - t0
        assert first.started == 2 * PARALLEL, first
        totals, engine, requests, changed, cpu = [], [], [], [], []
        for _ in range(rounds):
            time.sleep(0.5 if busy else 0.2)
            r = sched.step()
            totals.append(r.duration)
            engine.append(r.duration - r.io_seconds)
            requests.append(r.requests)
            cpu.append(r.cpu_seconds)
            changed.append(sum(len(v) for v in r.changes.values()) + sum(len(v) for v in r.result_changes.values()))
        sched.stop()
        active = sum(db.count_by_status(["queued", "running", "queued_for_start"]).values())
    finally:
        for s in srv:
            s.stop()
        db.close()
    return {
        "setup": setup,
        "first": first_s,
        "total": statistics.median(totals),
        "engine": statistics.median(engine),
        "engine_max": max(engine),
        "requests": statistics.mean(requests),
        "active": active,
        "http_per_request": statistics.median([(t - e) / max(1, n) for t, e, n in zip(totals, engine, requests)]),
        "changed": statistics.mean(changed),
        "cpu": statistics.median(cpu),
    }


def theirs(folder: Path, grid, rounds: int) -> dict:
    import geopandas as gpd
    import openeo
    from openeo.extra.job_management import MultiBackendJobManager, create_job_db
    from openeo.extra.job_management.process_based import ProcessBasedJobCreator

    gdf = gpd.GeoDataFrame({"geometry": list(grid.geometries)}, crs="EPSG:32631").to_crs("EPSG:4326")
    job_db = create_job_db(folder / "jobs.parquet", df=gdf, on_exists="error")
    df = job_db.df
    half = len(grid) // 2
    df.loc[df.index[:half], "status"] = "finished"
    df.loc[df.index[:half], "id"] = [f"old-{i}" for i in range(half)]
    job_db.persist(df)
    srv = servers(folder / "theirs")
    try:
        manager = MultiBackendJobManager(poll_sleep=0, root_dir=folder / "mbjm_out")
        for i, s in enumerate(srv):
            manager.add_backend(f"b{i}", connection=openeo.connect(s.url), parallel_jobs=PARALLEL)
        start_job = ProcessBasedJobCreator(
            namespace=srv[0].demo_process_url, parameter_defaults={"temporal_extent": TEMPORAL_EXTENT}
        )
        from openeo.extra.job_management._thread_worker import _JobManagerWorkerThreadPool

        manager._worker_pool = _JobManagerWorkerThreadPool()
        t0 = time.perf_counter()
        manager._job_update_loop(job_db=job_db, start_job=start_job)
        first_s = time.perf_counter() - t0
        totals, requests = [], []
        for _ in range(rounds):
            time.sleep(0.2)
            before = sum(sum(s.request_counts().values()) for s in srv)
            t0 = time.perf_counter()
            manager._job_update_loop(job_db=job_db, start_job=start_job)
            totals.append(time.perf_counter() - t0)
            requests.append(sum(sum(s.request_counts().values()) for s in srv) - before)
        manager._worker_pool.shutdown()
        active = int(job_db.df["status"].isin(["queued", "running", "queued_for_start"]).sum())
    finally:
        for s in srv:
            s.stop()
    return {
        "first": first_s,
        "total": statistics.median(totals),
        "requests": statistics.mean(requests),
        "active": active,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    grid = make_grid(AOI, tile_size=1000, crs="EPSG:32631", confirm_many=True, max_tiles=200_000)
    with tempfile.TemporaryDirectory() as tmp:
        a = ours(Path(tmp), grid, args.rounds)
        busy = ours(Path(tmp), grid, max(5, args.rounds // 2), busy=True)
        b = theirs(Path(tmp), grid, max(3, args.rounds // 4))
    n = len(grid)
    their_engine = b["total"] - b["requests"] * a["http_per_request"]
    print(f"{n:,} tiles (half finished), 2 backends x parallel_jobs={PARALLEL}, jobs kept running")
    print(f"{'':44}{'ours':>10}{'MultiBackendJobManager':>26}")
    print(f"{'active jobs tracked per round':44}{a['active']:>10}{b['active']:>26}")
    print(f"{'HTTP requests per round':44}{a['requests']:>10.1f}{b['requests']:>26.1f}")
    print(f"{'first round (start-up + 20 jobs created) ms':44}{a['first'] * 1000:>10.0f}{b['first'] * 1000:>26.0f}")
    print(f"{'round, wall time, median ms':44}{a['total'] * 1000:>10.1f}{b['total'] * 1000:>26.1f}")
    print(f"{'round, engine time (minus HTTP wait), ms':44}{a['engine'] * 1000:>10.1f}{their_engine * 1000:>26.1f}")
    print(f"{'round, engine time, worst ms':44}{a['engine_max'] * 1000:>10.1f}")
    print(
        f"busy rounds (jobs finish at once; {busy['changed']:.0f} tile changes and {busy['requests']:.0f} requests "
        f"per round): engine time median {busy['engine'] * 1000:.1f} ms (CPU {busy['cpu'] * 1000:.1f} ms), "
        f"worst {busy['engine_max'] * 1000:.1f} ms"
    )
    print(
        f"engine_round_100k: {a['engine'] * 1000:.1f} ms engine time per round, {busy['engine'] * 1000:.1f} ms "
        "when jobs finish and start (goal < 50 ms), "
        f"{b['total'] / a['total']:.0f}x faster rounds than openeo MultiBackendJobManager"
    )


if __name__ == "__main__":
    main()
