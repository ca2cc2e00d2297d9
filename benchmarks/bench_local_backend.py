"""Local demo backend: 16 cloud-free composite jobs of 5 km x 5 km tiles over three months
(through real HTTP and the unchanged openeo client) one after another (one worker), with 2
worker processes and with 2 threads, side by side, at the default 10 m pixels and at the 200 m
the tests use; the estimate of a tile's job next to what it was billed; the cost of GET /jobs
with thousands of jobs. Run from the repository root: ``.venv/bin/python benchmarks/bench_local_backend.py``.
The speed-up depends on what else the machine runs: the three set-ups run interleaved, ROUNDS times,
and each keeps its best time (other work on the machine only ever adds time); the load average is printed."""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openeo
import pyproj
import requests
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from local_backend import LocalBackend

SUMMER = ["2024-06-01", "2024-09-01"]
ROUNDS = 3
#: How often the client lists the jobs while waiting: a client polling faster takes CPU from the workers.
POLL_SECONDS = 0.5
TO_LONLAT = pyproj.Transformer.from_crs(32631, 4326, always_xy=True)


def tile(i: int) -> dict:
    """Tile ``i`` of the seed notebook's 5 km grid near Antwerp, as a GeoJSON polygon in EPSG:4326."""
    col, row = i % 4, i // 4
    box = shapely.box(590_000 + col * 5000, 5_660_000 + row * 5000, 595_000 + col * 5000, 5_665_000 + row * 5000)
    return shapely.geometry.mapping(shapely.transform(box, TO_LONLAT.transform, interleaved=False))


def run_jobs(backend: LocalBackend, tiles: list[int]) -> tuple[float, list[float]]:
    """Create and start one composite job per tile, wait for all; (seconds from the first job's start
    to the last one's end on the backend, job durations). Timed by the backend's own records: how
    often this client looks is not the backend's speed."""
    con = openeo.connect(backend.url)
    jobs = []
    for i in tiles:
        cube = con.datacube_from_process(
            "cloud_free_composite", namespace=backend.demo_process_url, spatial_extent=tile(i), temporal_extent=SUMMER
        )
        job = con.create_job(cube, title=f"tile {i}")
        job.start()
        jobs.append(job)
    pending = {job.job_id for job in jobs}
    while pending:
        for job in con.list_jobs():
            if job["id"] in pending and job["status"] in ("finished", "error"):
                if job["status"] == "error":
                    raise RuntimeError(f"job {job['id']} failed: {con.job(job['id']).logs(level='error')}")
                pending.discard(job["id"])
        time.sleep(POLL_SECONDS)
    durations = [con.job(j.job_id).describe()["usage"]["duration"]["value"] for j in jobs]
    ids = [job.job_id for job in jobs]
    with sqlite3.connect(str(backend.data_dir / "jobs.sqlite")) as db:
        marks = ",".join("?" * len(ids))
        query = f"SELECT MIN(queued_at), MAX(finished_at) FROM jobs WHERE id IN ({marks})"
        first, last = db.execute(query, ids).fetchone()
    return last - first, durations


def sixteen_jobs(pixel_size: float, compute: str, workers: int) -> tuple[float, float]:
    """(wall seconds, median job duration) of 16 tile jobs on a fresh backend, after a warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(tmp, port=0, workers=workers, pixel_size=pixel_size, compute=compute).start()
        try:
            run_jobs(backend, [15, 14])  # warm-up: worker start, engine import, first connection
            wall, durations = run_jobs(backend, list(range(16)))
        finally:
            backend.stop()
    return wall, statistics.median(durations)


def bench_resolution(pixel_size: float) -> tuple[float, float, float]:
    """16 jobs one after another (1 worker process) vs 2 worker processes vs 2 threads, interleaved."""
    setups = {"serial": ("processes", 1), "processes": ("processes", 2), "threads": ("threads", 2)}
    best: dict[str, tuple[float, float]] = {}
    for _ in range(ROUNDS):
        for name, (compute, workers) in setups.items():
            wall, median = sixteen_jobs(pixel_size, compute, workers)
            if name not in best or wall < best[name][0]:
                best[name] = (wall, median)
    (serial, one), (processes, _), (threads, _) = best["serial"], best["processes"], best["threads"]
    print(
        f"{pixel_size:5g} m, best of {ROUNDS}: 16 jobs one after another {serial:6.2f} s (median job {one:.3f} s)"
        f" | 2 worker processes {processes:6.2f} s ({serial / processes:.2f}x) | 2 threads {threads:6.2f} s "
        f"({serial / threads:.2f}x)"
    )
    return serial, processes, threads


def bench_estimate(pixel_size: float = 10.0) -> None:
    """GET /jobs/{id}/estimate of tile 0's job next to what the finished job was billed."""
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(tmp, port=0, workers=2, pixel_size=pixel_size).start()
        try:
            con = openeo.connect(backend.url)
            namespace = backend.demo_process_url
            cube = con.datacube_from_process(
                "cloud_free_composite", namespace=namespace, spatial_extent=tile(0), temporal_extent=SUMMER
            )
            job = con.create_job(cube)
            estimate = job.estimate()
            job.start()
            while job.status() not in ("finished", "error"):
                time.sleep(0.05)
            billed = job.describe()
            size = job.get_results().get_assets()[0].metadata["file:size"]
        finally:
            backend.stop()
    print(
        f"tile 0 at {pixel_size:g} m: estimate {estimate['costs']} credits, {estimate['duration']}, "
        f"{estimate['size']} bytes | billed {billed['costs']} credits, {billed['usage']['duration']['value']} s, "
        f"file {size} bytes (DEFLATE)"
    )


def bench_listing(n_jobs: int = 3000) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(tmp, port=0, workers=1, pixel_size=200).start()
        try:
            session = requests.Session()
            body = {
                "process": {
                    "process_graph": {
                        "c": {
                            "process_id": "cloud_free_composite",
                            "namespace": backend.demo_process_url,
                            "arguments": {"spatial_extent": tile(0), "temporal_extent": SUMMER},
                            "result": True,
                        }
                    }
                }
            }
            start = time.perf_counter()
            for _ in range(n_jobs):
                session.post(f"{backend.url}/jobs", json=body, timeout=10).raise_for_status()
            create = (time.perf_counter() - start) / n_jobs
            times_page, times_all = [], []
            for _ in range(20):
                t = time.perf_counter()
                page = session.get(f"{backend.url}/jobs", params={"limit": 100}, timeout=10).json()
                times_page.append(time.perf_counter() - t)
                t = time.perf_counter()
                everything = session.get(f"{backend.url}/jobs", timeout=10).json()
                times_all.append(time.perf_counter() - t)
            assert len(page["jobs"]) == 100 and len(everything["jobs"]) == n_jobs
        finally:
            backend.stop()
    page_ms, all_ms = statistics.median(times_page) * 1000, statistics.median(times_all) * 1000
    print(
        f"listing with {n_jobs} jobs: POST /jobs {create * 1000:.2f} ms each | GET /jobs?limit=100 {page_ms:.1f} ms | "
        f"GET /jobs (all {n_jobs}) {all_ms:.1f} ms"
    )
    return create, page_ms, all_ms


def _numpy_work() -> None:
    import numpy as np

    data = np.random.default_rng(0).random((2000, 2000))
    for _ in range(4):
        np.sort(data, axis=0)


def machine_parallelism() -> tuple[float, float]:
    """Control: the same numpy work twice, at once in 2 threads / 2 processes vs one after another
    (the ceiling for 2 workers on this machine right now, which other processes may share)."""
    import threading
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    _numpy_work()
    _numpy_work()
    serial = time.perf_counter() - start
    threads = [threading.Thread(target=_numpy_work) for _ in range(2)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    in_threads = serial / (time.perf_counter() - start)
    with ProcessPoolExecutor(2) as executor:
        list(executor.map(time.sleep, [0.1, 0.1]))  # processes started before timing
        start = time.perf_counter()
        list(executor.map(_call, [_numpy_work, _numpy_work]))
        in_processes = serial / (time.perf_counter() - start)
    print(
        f"control: plain numpy work runs {in_processes:.2f}x faster in 2 processes, {in_threads:.2f}x in 2 threads, "
        f"than serially on this machine now (load average {os.getloadavg()[0]:.1f})"
    )
    return in_processes, in_threads


def _call(func) -> None:
    func()


def main() -> None:
    print("Local demo backend: cloud-free composite of a 5 km x 5 km tile, 2024-06-01..2024-09-01 (19 dates)")
    ceiling, ceiling_threads = machine_parallelism()
    serial, processes, threads = bench_resolution(10.0)
    serial_200, processes_200, _ = bench_resolution(200.0)
    bench_estimate(10.0)
    _, page_ms, _ = bench_listing()
    print(
        f"local_backend: 16 tiles at 10 m with 2 worker processes {processes:.2f} s, {serial / processes:.2f}x faster "
        f"than one after another (threads {serial / threads:.2f}x; machine ceiling {ceiling:.2f}x processes, "
        f"{ceiling_threads:.2f}x threads; load {os.getloadavg()[0]:.1f}); at 200 m {serial_200 / processes_200:.2f}x; "
        f"GET /jobs?limit=100 over 3000 jobs {page_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
