"""Tile layer at 10,000 and 100,000 tiles: main-thread time of a status update (1 % of the tiles
changed), against a full provider reload per event; and the render time of the layer.

What is measured, per size (median of 5 updates):
* engine write: ``JobDB.update_many`` of the changed rows (the engine's worker thread, shown for scale);
* ours: the main thread's share of an update -- the event handed to ``TileLayerUpdater`` and its
  batch flushed (``triggerRepaint``); the render itself runs in QGIS's render threads;
* reloadData: the usual alternative, ``dataProvider().reloadData()`` + ``triggerRepaint()``;
* notebook: what the seed's loop does on each refresh, re-reading every row of the job database;
* render: ``QgsMapRendererParallelJob`` of the whole layer into 1000 x 1000 px after the update
  (checked: a changed tile shows its new colour).

Run: ``.venv/bin/python benchmarks/bench_gis_tile_layer.py`` (about a minute).
"""

from __future__ import annotations

import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from qgis.core import QgsApplication

SIZES = (10_000, 100_000)
ROUNDS = 5
STATUS_CYCLE = ("queued_for_start", "created", "queued", "running", "finished")


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    app = QgsApplication([], False)
    app.initQgis()
    from qgis.core import QgsProject

    from openeo_tile_jobs.core import statuses
    from openeo_tile_jobs.core.events import StatusChange
    from openeo_tile_jobs.core.grid import make_grid
    from openeo_tile_jobs.core.jobdb import JobDB
    from openeo_tile_jobs.gis.tile_layer import BATCH_MS, TileLayerUpdater, add_tile_layer
    from openeo_tile_jobs.tests.test_gis_support import close_to, over_white, pixel_at, render

    project = QgsProject.instance()
    summary = {}
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            side = int(math.sqrt(size)) * 1000
            bbox = {"west": 500000, "south": 5600000, "east": 500000 + side, "north": 5600000 + side}
            grid = make_grid(
                {**bbox, "crs": "EPSG:32631"}, tile_size=1000, crs="EPSG:32631", max_tiles=size + 1, confirm_many=True
            )
            db = JobDB.create(Path(tmp) / f"tiles_{size}.gpkg", grid)
            n = len(db)
            layer, _group = add_tile_layer(db.path, project=project)
            updater = TileLayerUpdater(layer)
            changed = max(1, n // 100)
            writes, ours, reloads, notebook, renders = [], [], [], [], []
            extent = layer.extent()
            render([layer], extent, size=200)  # warm up the provider and its connection pool
            for index in range(ROUNDS):
                status = STATUS_CYCLE[index % len(STATUS_CYCLE)]
                fids = rng.sample(range(1, n + 1), changed)
                t0 = time.perf_counter()
                db.update_many({fid: {"status": status} for fid in fids})
                writes.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                updater.on_status_changed(StatusChange(status, tuple(fids), tuple(fids)))
                updater.flush()
                ours.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                layer.dataProvider().reloadData()
                layer.triggerRepaint()
                reloads.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                db.get_by_status(list(statuses.ALL_STATUSES))
                notebook.append(time.perf_counter() - t0)

                if index < 3:
                    t0 = time.perf_counter()
                    image = render([layer], extent, size=1000)
                    renders.append(time.perf_counter() - t0)
                    if status != statuses.FINISHED:
                        x0, y0, x1, y1 = db.geometry(fids[0]).bounds
                        expected = over_white(statuses.CSS_HEX[statuses.color_of(status)], statuses.FILL_OPACITY)
                        got = pixel_at(image, extent, (x0 + x1) / 2, (y0 + y1) / 2)
                        if not close_to(got, expected, 40):
                            print(f"  warning: tile {fids[0]} shows {got}, expected about {expected}")
            label = f"{size // 1000}k"
            summary[label] = (median_ms(ours), median_ms(reloads), median_ms(renders))
            print(
                f"{label} ({n:,}) tiles, {changed} changed: engine write {median_ms(writes):.1f} ms (worker thread); "
                f"main thread: ours {median_ms(ours):.3f} ms, reloadData {median_ms(reloads):.2f} ms, "
                f"notebook re-read {median_ms(notebook):.0f} ms; render 1000x1000 px {median_ms(renders):.0f} ms "
                f"(render threads)"
            )
            project.removeAllMapLayers()
            project.clear()
            del layer, updater
            db.close()
    label = f"{SIZES[-1] // 1000}k"
    ours, reload, render_ms = summary[label]
    app.exitQgis()
    print(
        f"recolour time at {label}: batch {BATCH_MS} ms + render {render_ms:.0f} ms = {BATCH_MS + render_ms:.0f} ms "
        "(goal: under 1 s)"
    )
    print(
        f"tile_layer_update_{label}: main thread {ours:.3f} ms per update vs {reload:.2f} ms with reloadData "
        f"({reload / ours:.0f}x less); render {render_ms:.0f} ms off the main thread"
    )


if __name__ == "__main__":
    main()
