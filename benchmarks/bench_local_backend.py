"""Local demo backend: one cloud-free composite job for a 5 km x 5 km tile over three months,
then 16 such jobs with 2 workers (through real HTTP and the unchanged openeo client), at the
default 10 m pixels with worker processes and with threads side by side, and at the 200 m the
tests use; the estimate of a tile's job next to what it was billed; the cost of GET /jobs with
thousands of jobs. Run from the repository root: ``.venv/bin/python benchmarks/bench_local_backend.py``.
The speed-up depends on what else the machine runs: the load average is printed."""

from __future__ import annotations

import os
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
TO_LONLAT = pyproj.Transformer.from_crs(32631, 4326, always_xy=True)


def tile(i: int) -> dict:
    """Tile ``i`` of the seed notebook's 5 km grid near Antwerp, as a GeoJSON polygon in EPSG:4326."""
    col, row = i % 4, i // 4
    box = shapely.box(590_000 + col * 5000, 5_660_000 + row * 5000, 595_000 + col * 5000, 5_665_000 + row * 5000)
    return shapely.geometry.mapping(shapely.transform(box, TO_LONLAT.transform, interleaved=False))


def run_jobs(backend: LocalBackend, tiles: list[int]) -> tuple[float, list[float]]:
    """Create and start one composite job per tile, wait for all; (wall seconds, job durations)."""
    con = openeo.connect(backend.url)
    start = time.perf_counter()
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
        time.sleep(0.02)
    wall = time.perf_counter() - start
    durations = [con.job(j.job_id).describe()["usage"]["duration"]["value"] for j in jobs]
    return wall, durations


def bench_resolution(pixel_size: float, compute: str = "processes") -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(tmp, port=0, workers=2, pixel_size=pixel_size, compute=compute).start()
        try:
            run_jobs(backend, [15, 14])  # warm-up: worker start, engine import, first connection
            one = min(run_jobs(backend, [0])[0] for _ in range(3))
            wall16, durations = run_jobs(backend, list(range(16)))
        finally:
            backend.stop()
    serial = 16 * one
    print(
        f"{pixel_size:5g} m pixels, {compute:9s}: 1 job {one:6.3f} s | 16 jobs, 2 workers {wall16:6.3f} s "
        f"(median job {statistics.median(durations):.3f} s; {serial / wall16:.2f}x faster than 16 x one job)"
    )
    return one, wall16


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
    one_10, wall_10 = bench_resolution(10.0, "processes")
    one_10t, wall_10t = bench_resolution(10.0, "threads")
    one_200, _wall_200 = bench_resolution(200.0)
    bench_estimate(10.0)
    _, page_ms, _ = bench_listing()
    print(
        f"local_backend: 16 tiles with 2 worker processes {wall_10:.2f} s, {16 * one_10 / wall_10:.2f}x faster than "
        f"one after another (threads {16 * one_10t / wall_10t:.2f}x; machine ceiling {ceiling:.2f}x processes, "
        f"{ceiling_threads:.2f}x threads; load {os.getloadavg()[0]:.1f}); 1 tile job {one_10:.2f} s at 10 m "
        f"({one_200 * 1000:.0f} ms at 200 m); GET /jobs?limit=100 over 3000 jobs {page_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
