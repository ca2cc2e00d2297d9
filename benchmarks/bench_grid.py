"""Grid + GeoPackage job database vs openeo's split_area + to_crs(4326) + create_job_db(parquet).

100,000 one-kilometre tiles (a 316 km x 316 km AOI in EPSG:32631), both measured side by side in
this run, best of N repetitions each. Our side includes everything openeo's does: the tiles, their
EPSG:4326 geometry (openeo transforms all of them up front; we compute a tile's on demand when
its job starts, so that cost is printed too: one tile, and a batch of 200 as openeo's manager
starts at most), and a persistent job database on disk. Last line: one-line summary.

Run: .venv/bin/python benchmarks/bench_grid.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO.parent) not in sys.path:  # run from a checkout: import the package by folder name
    sys.path.insert(0, str(REPO.parent))

from openeo_tile_jobs.core.grid import make_grid  # noqa: E402
from openeo_tile_jobs.core.jobdb import JobDB  # noqa: E402

AOI = {"west": 400_000, "south": 5_000_000, "east": 716_000, "north": 5_316_000, "crs": "EPSG:32631"}
TILE = 1000


def ours(folder: Path, k: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    grid = make_grid(AOI, tile_size=TILE, crs="EPSG:32631", confirm_many=True, max_tiles=200_000)
    db = JobDB.create(folder / f"ours_{k}.gpkg", grid, {"job_spec": {"process_id": "bench"}})
    elapsed = time.perf_counter() - t0
    n = len(db)
    db.close()
    return elapsed, n


def theirs(folder: Path, k: int) -> tuple[float, int]:
    from openeo.extra.job_management import create_job_db, split_area

    t0 = time.perf_counter()
    df = split_area(AOI, projection="EPSG:32631", tile_size=TILE)
    df = df.to_crs("EPSG:4326")
    db = create_job_db(folder / f"theirs_{k}.parquet", df=df)
    elapsed = time.perf_counter() - t0
    return elapsed, len(db.df)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours(folder, -1)  # warm-up (imports, PROJ database)
        theirs(folder, -1)
        ours_t, theirs_t = [], []
        for k in range(args.repeat):  # interleaved so both see the same machine load
            t, n_ours = ours(folder, k)
            ours_t.append(t)
            t, n_theirs = theirs(folder, k)
            theirs_t.append(t)
        db = JobDB.open(folder / "ours_0.gpkg")
        t0 = time.perf_counter()
        db.geometries_4326(range(1, 201))
        batch_4326 = time.perf_counter() - t0
        t0 = time.perf_counter()
        for fid in range(1, 101):
            db.geometry_4326(fid)
        one_4326 = (time.perf_counter() - t0) / 100
        db.close()
    best_ours, best_theirs = min(ours_t), min(theirs_t)
    print(f"tiles: ours {n_ours:,}, openeo {n_theirs:,}")
    print(f"ours   make_grid + JobDB.create (GeoPackage, WAL, R-tree): best {best_ours:.3f} s  all {ours_t}")
    print(f"openeo split_area + to_crs(4326) + create_job_db(parquet): best {best_theirs:.3f} s  all {theirs_t}")
    print(
        f"ours   EPSG:4326 GeoJSON on demand (not stored): one tile {one_4326 * 1e3:.3f} ms, "
        f"a batch of 200 tiles {batch_4326 * 1e3:.1f} ms"
    )
    ratio = best_theirs / best_ours
    print(
        f"grid_100k: {ratio:.1f}x faster than openeo split_area+to_crs+create_job_db "
        f"({best_ours:.2f} s vs {best_theirs:.2f} s)"
    )


if __name__ == "__main__":
    main()
