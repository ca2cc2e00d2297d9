"""The polling policy at scale: the real Scheduler, on simulated clocks, against simulated backends.

10,000 tiles on 4 remote backends (``parallel_jobs`` 25 each), queue times of 0.5–3 minutes and
run times of 10–40 minutes (uniform), once with the backends reporting ``progress`` and once
without. The engine is the real one (:class:`core.scheduler.Scheduler`, its job database,
its polling policy); only the backends (``benchmarks/sim_backend.py``) and the clock are
simulated, and the clock jumps straight to the next check any backend's policy asked for.
Figures per run:

* tracking requests per tile (``GET /jobs`` pages and ``GET /jobs/{id}``) and their bytes;
* mean idle gap of a slot: from a job's end on its backend to the next start there;
* wall time ÷ ideal (the same jobs, each started the moment a slot is free).

Targets (issue 15): at most 3 tracking requests per tile and a mean idle gap of at most 3 % of
the mean job time. Run: ``.venv/bin/python benchmarks/bench_polling_sim.py [--tiles 10000]``.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO.parent) not in sys.path:
    sys.path.insert(0, str(REPO.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_backend import SimBackend, SimClock  # noqa: E402

from openeo_tile_jobs.core.backends import Backend, BackendProfile  # noqa: E402
from openeo_tile_jobs.core.grid import make_grid  # noqa: E402
from openeo_tile_jobs.core.jobdb import JobDB  # noqa: E402
from openeo_tile_jobs.core.jobspec import JobSpec  # noqa: E402
from openeo_tile_jobs.core.scheduler import EngineConfig, Scheduler  # noqa: E402

TILE = 1000.0


def make_db(path: Path, tiles: int) -> JobDB:
    cols = min(100, tiles)
    rows = -(-tiles // cols)
    aoi = {"west": 500_000.0, "south": 5_600_000.0, "crs": "EPSG:32631"}
    aoi.update(east=aoi["west"] + cols * TILE, north=aoi["south"] + rows * TILE)
    db = JobDB.create(path, make_grid(aoi, tile_size=TILE, crs="EPSG:32631", max_tiles=200_000))
    extra = [r["fid"] for r in db.all_rows(columns=["fid"])][tiles:]
    if extra:
        db.update_many({fid: {"status": "skipped"} for fid in extra})
    return db


def ideal_makespan(durations: list[float], slots: int) -> float:
    """Jobs in their start order, each on the first free slot the moment it is free."""
    free = [0.0] * slots
    end = 0.0
    for d in durations:
        t = heapq.heappop(free) + d
        end = max(end, t)
        heapq.heappush(free, t)
    return end


def idle_gaps(jobs: list, slots: int) -> list[float]:
    """From each job's end to the next start on its backend that filled the slot it freed."""
    starts = sorted(j.started for j in jobs if j.started is not None)[slots:]  # the first wave needs no free slot
    ends = sorted(j.end for j in jobs if j.end is not None)
    gaps, i = [], 0
    for s in starts:
        if i < len(ends) and ends[i] <= s:
            gaps.append(s - ends[i])
            i += 1
    return gaps


#: name -> (queue time, run time, remote?): "scale" is issue 15's simulation, "bench" mirrors bench_polling.py.
PROFILES = {
    "scale": (lambda r: r.uniform(30, 180), lambda r: r.uniform(600, 2400), True),
    "bench": (lambda r: r.uniform(1, 3), lambda r: r.lognormvariate(math.log(60), 0.3), False),
}


def simulate(
    folder: Path, tiles: int, backends: int, parallel: int, progress: bool, seed: int, profile: str = "scale"
) -> dict:
    clock = SimClock()
    queue_time, run_time, remote = PROFILES[profile]
    sims = [
        SimBackend(f"sim{i}", clock, queue_time, run_time, progress=progress, seed=seed + i) for i in range(backends)
    ]
    db = make_db(folder / f"sim_{progress}_{seed}_{profile}.gpkg", tiles)
    pool = [
        Backend(
            BackendProfile(
                name=s.name,
                url=f"https://{s.name}.example.org" if remote else f"http://127.0.0.1:{8000 + i}",
                parallel_jobs=parallel,
            ),
            connection_factory=s.connection_factory,
            clock=clock,
        )
        for i, s in enumerate(sims)
    ]
    config = EngineConfig(output_dir=folder / "out", download=False, max_starts_per_round=parallel)
    sched = Scheduler(db, JobSpec(process_id="sim_process"), pool, config, wall_clock=clock, clock=clock)
    rounds = 0
    cpu0 = time.process_time()
    while True:
        report = sched.step()
        rounds += 1
        if report.done or rounds > 50 * tiles:
            break
        waits = list(sched.next_check_in().values())
        clock.advance_to(clock() + max(0.05, min(waits) if waits else 1.0))
    cpu = time.process_time() - cpu0
    wall = clock() - clock.start
    sched.stop()
    finished = db.count_by_status().get("finished", 0)
    db.close()
    jobs = [j for s in sims for j in s.jobs.values()]
    durations = [j.queue_time + j.run_time for j in jobs if j.started is not None]
    ideal = max(
        ideal_makespan(
            [j.queue_time + j.run_time for j in sorted(s.jobs.values(), key=lambda j: j.started or 0)], parallel
        )
        for s in sims
    )
    gaps = [g for s in sims for g in idle_gaps(list(s.jobs.values()), parallel)]
    return {
        "finished": finished,
        "rounds": rounds,
        "cpu": cpu,
        "requests_per_tile": sum(s.tracking_requests() for s in sims) / tiles,
        "bytes_per_tile": sum(s.tracking_bytes() for s in sims) / tiles,
        "idle_gap": sum(gaps) / max(1, len(gaps)),
        "mean_job": sum(durations) / max(1, len(durations)),
        "wall_ratio": wall / ideal,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiles", type=int, default=10_000)
    ap.add_argument("--backends", type=int, default=4)
    ap.add_argument("--parallel", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="scale")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results = {}
    shm = Path("/dev/shm")  # the job database's commits are the engine's own cost, not the simulation's
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        for progress in (True, False):
            results[progress] = simulate(
                Path(tmp), args.tiles, args.backends, args.parallel, progress, args.seed, args.profile
            )
    what = "queue 0.5-3 min, run 10-40 min" if args.profile == "scale" else "queue 1-3 s, run lognormal 60 s"
    print(f"{args.tiles} tiles, {args.backends} simulated backends x {args.parallel} parallel, {what}")
    print(f"{'':34}{'with progress':>16}{'without':>16}")
    rows = (
        ("finished", "jobs finished", "{:>16}"),
        ("rounds", "engine rounds", "{:>16}"),
        ("cpu", "engine CPU time (s)", "{:>16.1f}"),
        ("requests_per_tile", "tracking requests per tile", "{:>16.2f}"),
        ("bytes_per_tile", "tracking bytes per tile", "{:>16.0f}"),
        ("idle_gap", "mean idle gap of a slot (s)", "{:>16.1f}"),
        ("mean_job", "mean job time (s)", "{:>16.1f}"),
        ("wall_ratio", "wall time / ideal", "{:>16.3f}"),
    )
    for key, label, fmt in rows:
        print(f"{label:34}" + fmt.format(results[True][key]) + fmt.format(results[False][key]))
    w, wo = results[True], results[False]
    print(
        f"simulation: {w['requests_per_tile']:.2f} tracking requests/tile, idle gap "
        f"{100 * w['idle_gap'] / w['mean_job']:.1f} % of job time, wall {w['wall_ratio']:.3f}x ideal with progress; "
        f"{wo['requests_per_tile']:.2f}/tile, {100 * wo['idle_gap'] / wo['mean_job']:.1f} %, "
        f"{wo['wall_ratio']:.3f}x without ({args.tiles} tiles, {args.backends} backends, {what})"
    )


if __name__ == "__main__":
    main()
