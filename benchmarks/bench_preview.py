"""One tile's preview, time from "Preview this tile" to its layer on the map: POST /result vs the
batch-job fallback, side by side, on the Local demo backend as the plugin's preset runs it (10 m
pixels, worker processes).

Through the panel's own :class:`ui.tile_preview.TilePreviewer` in headless QGIS: the background
task (connect, read the tile, compute, download, atomic write), then the layer opened, styled
and added to the "Preview" group on the main thread. Each route previews the same tiles:

* ``3 km June``: a 3 km tile over June (90,000 pixels x 6 dates), within the synchronous limit;
* ``seed 5 km summer``: the seed's 5 km tile over June-August (250,000 pixels x 19 dates) — over the
  limit, so the panel sends it to a batch job; here also forced through POST /result with a client
  limit raised to match a backend started with a higher one.

A warm-up preview (the backend's worker processes start with its first computation) is not counted;
then :data:`REPEATS` per case, median. Run: ``.venv/bin/python benchmarks/bench_preview.py`` (~1 min).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from qgis.core import QgsApplication

REPEATS = 3
SEED_WEST, SEED_SOUTH = 590_000.0, 5_660_000.0
CASES = {  # name: (tile size in metres, temporal extent)
    "3 km June": (3_000.0, ["2024-06-01", "2024-07-01"]),
    "seed 5 km summer": (5_000.0, ["2024-06-01", "2024-09-01"]),
}


def make_run(folder: Path, size: float):
    from openeo_tile_jobs.core.grid import make_grid
    from openeo_tile_jobs.core.jobdb import JobDB

    aoi = {"west": SEED_WEST, "south": SEED_SOUTH, "east": SEED_WEST + size, "north": SEED_SOUTH + size}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run_{int(size)}.gpkg"
    JobDB.create(path, make_grid({**aoi, "crs": "EPSG:32631"}, tile_size=size, crs="EPSG:32631")).close()
    return path


def time_to_layer(previewer, row: dict) -> tuple[float, str]:
    before = previewer.last
    failures: list[str] = []
    previewer.previewFailed.connect(lambda _tile, message: failures.append(message))
    previewer.preview(row)
    while previewer.last is before and not failures:
        QgsApplication.processEvents()
        time.sleep(0.002)
    previewer.previewFailed.disconnect()
    if failures:
        raise RuntimeError(failures[0])
    return previewer.last.seconds_to_layer, previewer.last.result.mode


def measure(backend, folder: Path, size: float, extent: list[str], limit) -> tuple[list[float], str]:
    from openeo_tile_jobs.core.backends import BackendProfile
    from openeo_tile_jobs.core.jobspec import JobSpec
    from openeo_tile_jobs.ui.tile_preview import TilePreviewer

    path = make_run(folder, size)
    run = {
        "spec": JobSpec(namespace=backend.demo_process_url, parameters={"temporal_extent": extent}),
        "profiles": [BackendProfile(name="Local demo", url=backend.url)],
        "output": str(folder / "out"),
    }
    previewer = TilePreviewer(lambda: run, lambda: str(path), lambda *_: None)
    previewer.limit = limit
    row = {"fid": 1, "tile_id": "x0_y0"}
    times, modes = [], set()
    for _ in range(REPEATS):
        seconds, mode = time_to_layer(previewer, row)
        times.append(seconds)
        modes.add(mode)
    return times, "/".join(sorted(modes))


def main() -> None:
    app = QgsApplication([], False)
    app.initQgis()
    from qgis.core import QgsProject

    from openeo_tile_jobs.core.preview import SyncLimit
    from openeo_tile_jobs.local_backend import LocalBackend

    big = 20_000_000
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(data_dir=Path(tmp) / "backend", port=0, sync_max_pixel_dates=big).start()
        try:
            measure(backend, Path(tmp) / "warm", 1_000.0, CASES["3 km June"][1], SyncLimit())  # starts the workers
            results = {}
            for name, (size, extent) in CASES.items():
                for route, limit in (("sync", SyncLimit(max_pixel_dates=big)), ("batch", SyncLimit(max_pixel_dates=0))):
                    folder = Path(tmp) / f"{name}-{route}".replace(" ", "_")
                    times, mode = measure(backend, folder, size, extent, limit)
                    assert mode == route, (name, route, mode)
                    results[(name, route)] = statistics.median(times)
                    print(f"{name:17} {route:5}: {', '.join(f'{t:.2f}' for t in times)} s to the layer")
                default_route = "sync" if name == "3 km June" else "batch"
                print(f"{name:17} the panel's default route: {default_route}")
            QgsProject.instance().removeAllMapLayers()
        finally:
            backend.stop()
    small, seed = "3 km June", "seed 5 km summer"
    ratio = results[(small, "batch")] / results[(small, "sync")]
    print(
        f"preview: time to layer {small} {results[(small, 'sync')]:.2f} s by POST /result vs "
        f"{results[(small, 'batch')]:.2f} s by batch job ({ratio:.1f}x); "
        f"{seed} {results[(seed, 'sync')]:.2f} s vs {results[(seed, 'batch')]:.2f} s (default: batch) "
        f"— Local demo backend, 10 m, median of {REPEATS}"
    )
    app.exitQgis()


if __name__ == "__main__":
    main()
