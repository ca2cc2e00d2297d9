"""Which journal keeps QGIS's tile layer true while the engine writes: measured, side by side.

QGIS opens a GeoPackage layer read-only with GDAL's ``NOLOCK`` (lock-free) mode whenever no
``-wal`` file exists. Three set-ups, each: a worker thread commits 20 changed tiles every 5 ms
(``JobDB.update_many``, as the engine does) while the main thread reads the whole 10,000-tile
layer again and again (what a render does), for :data:`SECONDS`:

* ``wal, layer first``: the layer opened while no ``-wal`` existed (grid just written), no hold;
* ``rollback journal``: ``journal_mode=DELETE`` (no ``-wal`` ever; QGIS always reads lock-free);
* ``wal + hold`` (ours): the layer added to a project the plugin watches (:func:`gis.tile_layer.watch_project`).

Counted: full reads that did not return every tile, GDAL errors, and whether the layer finally
equals the database. Run: ``.venv/bin/python benchmarks/bench_gis_live_layer.py`` (about 30 s).
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from qgis.core import QgsApplication

SECONDS = 6.0
AOI = {"west": 500000, "south": 5600000, "east": 600000, "north": 5700000, "crs": "EPSG:32631"}


def trial(mode: str, folder: Path, errors: list[str]) -> dict:
    from qgis.core import QgsFeatureRequest, QgsProject, QgsVectorLayer

    from openeo_tile_jobs.core.grid import make_grid
    from openeo_tile_jobs.core.jobdb import JobDB
    from openeo_tile_jobs.gis.tile_layer import open_tile_layer, tile_layer_uri

    path = folder / f"{mode.replace(' ', '_').replace('+', '')}.gpkg"
    grid = make_grid(AOI, tile_size=1000, crs="EPSG:32631")
    JobDB.create(path, grid).close()
    if mode == "rollback journal":
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode = DELETE")
    if mode == "wal + hold":
        layer = open_tile_layer(path)
        QgsProject.instance().addMapLayer(layer)  # watched: the plugin holds the WAL, then reopens the layer
    else:
        layer = QgsVectorLayer(tile_layer_uri(path), "tiles", "ogr")
    request = QgsFeatureRequest().setSubsetOfAttributes(["status"], layer.fields())
    sum(1 for _ in layer.getFeatures(request))  # the first render, before the engine starts
    db = JobDB.open(path)
    if mode == "rollback journal":
        db.conn.execute("PRAGMA journal_mode = DELETE")
    stop, commits, rng = threading.Event(), [], random.Random(1)

    def writer() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            fids = rng.sample(range(1, len(grid) + 1), 20)
            db.update_many({f: {"status": "running" if k % 2 else "queued", "last_error": f"round {k}"} for f in fids})
            commits.append(k)
            time.sleep(0.005)

    del errors[:]
    thread = threading.Thread(target=writer)
    thread.start()
    reads = incomplete = 0
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        got = sum(1 for _ in layer.getFeatures(request))
        reads += 1
        incomplete += got != len(grid)
    stop.set()
    thread.join()
    final = {f.id(): f["status"] for f in layer.getFeatures(request)}
    truth = {r["fid"]: r["status"] for r in db.all_rows(["status"])}
    db.close()
    kinds = sorted({e.split(":")[-1].strip()[:40] for e in errors})
    return dict(
        reads=reads, incomplete=incomplete, errors=len(errors), kinds=kinds, commits=len(commits), true=final == truth
    )


def main() -> None:
    app = QgsApplication([], False)
    app.initQgis()
    from osgeo import gdal

    errors: list[str] = []
    gdal.PushErrorHandler(lambda cls, _no, msg: errors.append(msg) if cls >= gdal.CE_Failure else None)
    results = {}
    from openeo_tile_jobs.gis.tile_layer import watch_project

    watch_project()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("wal, layer first", "rollback journal", "wal + hold"):
            results[mode] = trial(mode, Path(tmp), errors)
            r = results[mode]
            print(
                f"{mode:18} {r['reads']:4} full reads during {r['commits']:4} commits: {r['incomplete']:3} incomplete, "
                f"{r['errors']:3} GDAL errors {r['kinds']}; final layer == database: {r['true']}"
            )
    gdal.PopErrorHandler()
    ours, wal, rollback = results["wal + hold"], results["wal, layer first"], results["rollback journal"]
    print(
        f"live_layer: wal + hold {ours['incomplete']}/{ours['reads']} bad reads, "
        f"vs rollback journal {rollback['incomplete']}/{rollback['reads']}, "
        f"vs wal without hold {wal['incomplete']}/{wal['reads']}"
    )
    app.exitQgis()


if __name__ == "__main__":
    main()
