"""1,000 result GeoTIFFs on the map: one VRT mosaic layer vs 1,000 raster layers.

Per approach: main-thread time to put the results on the map, work done off the main thread
(building the VRT), and the render time of the whole area (QgsMapRendererParallelJob,
1000 x 1000 px, render threads); for the mosaic also the cost of one more tile finishing
(incremental rebuild + reload). Tiles: 3-band int16 (B04, B03, B02), 100 x 100 px of 10 m,
on a 32 x 32 km grid, styled with the fixed Sentinel-2 rendering in both cases.

Run: ``.venv/bin/python benchmarks/bench_gis_results.py`` (about a minute).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from qgis.core import QgsApplication

COUNT = 1000
SIDE = 32  # tiles per row
TILE_M = 1000
PIXELS = 100


def write_tiles(folder: Path) -> list[Path]:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    paths = []
    for index in range(COUNT + 1):
        col, row = index % SIDE, index // SIDE
        path = folder / f"job_{index:04d}" / "openEO.tif"
        path.parent.mkdir()
        data = rng.integers(0, 5000, size=(3, PIXELS, PIXELS), dtype="int16")
        x, y = 500000 + col * TILE_M, 5600000 + (row + 1) * TILE_M
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=PIXELS,
            height=PIXELS,
            count=3,
            dtype="int16",
            crs="EPSG:32631",
            transform=from_origin(x, y, TILE_M / PIXELS, TILE_M / PIXELS),
            nodata=-32768,
        ) as dst:
            dst.write(data)
            dst.descriptions = ("B04", "B03", "B02")
        paths.append(path)
    return paths


def main() -> None:
    app = QgsApplication([], False)
    app.initQgis()
    from qgis.core import QgsProject, QgsRectangle

    from openeo_tile_jobs.gis.mosaic import MosaicBuilder
    from openeo_tile_jobs.gis.result_layers import ResultLayers
    from openeo_tile_jobs.tests.test_gis_support import is_blank, region, render

    project = QgsProject.instance()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = write_tiles(tmp)
        print(f"wrote {len(paths)} GeoTIFFs in {time.perf_counter() - t0:.1f} s")
        extent = QgsRectangle(500000, 5600000, 500000 + SIDE * TILE_M, 5600000 + (COUNT // SIDE + 1) * TILE_M)
        col, row = COUNT % SIDE, COUNT // SIDE  # where the extra tile goes
        last_tile = (
            500000 + col * TILE_M,
            5600000 + row * TILE_M,
            500000 + (col + 1) * TILE_M,
            5600000 + (row + 1) * TILE_M,
        )

        results = ResultLayers(tmp / "run.gpkg", project)
        # one VRT
        builder = MosaicBuilder(tmp / "mosaic")
        t0 = time.perf_counter()
        builder.add(paths[:COUNT])
        vrts = builder.build()
        vrt_worker = time.perf_counter() - t0
        t0 = time.perf_counter()
        (mosaic,) = results.show_mosaic(vrts)
        vrt_main = time.perf_counter() - t0
        t0 = time.perf_counter()
        image = render([mosaic], extent, size=1000)
        vrt_render = time.perf_counter() - t0
        assert not is_blank(region(image, extent, (500000, 5600000, 501000, 5601000)))
        assert is_blank(region(image, extent, last_tile))
        t0 = time.perf_counter()
        builder.add(paths[COUNT:])
        vrts = builder.build()
        rebuild_worker = time.perf_counter() - t0
        t0 = time.perf_counter()
        results.show_mosaic(vrts)
        reload_main = time.perf_counter() - t0
        image = render([mosaic], extent, size=1000)
        assert not is_blank(region(image, extent, last_tile)), "the new tile is not in the mosaic"
        print(
            f"1 VRT layer: build {vrt_worker:.2f} s (worker thread), main thread {vrt_main * 1000:.1f} ms to add, "
            f"render {vrt_render:.2f} s; tile {COUNT + 1} finishing: rebuild {rebuild_worker:.2f} s (worker), "
            f"main thread {reload_main * 1000:.1f} ms"
        )
        del mosaic
        results.remove_all()

        # 1,000 layers
        t0 = time.perf_counter()
        for index, path in enumerate(paths[:COUNT]):
            results.add_tile_results(f"t{index}", [path])
        layers_main = time.perf_counter() - t0
        layers = results.layers()
        t0 = time.perf_counter()
        image = render(layers, extent, size=1000)
        layers_render = time.perf_counter() - t0
        assert not is_blank(region(image, extent, (500000, 5600000, 501000, 5601000)))
        print(f"{len(layers)} layers: main thread {layers_main:.2f} s to add, render {layers_render:.2f} s")
        results.remove_all()
        del layers

        project.removeAllMapLayers()
        project.clear()
    app.exitQgis()
    print(
        f"results_1000: VRT {vrt_main * 1000:.1f} ms main thread vs {layers_main:.2f} s for 1,000 layers "
        f"({layers_main / vrt_main:.0f}x less); render {vrt_render:.2f} s vs {layers_render:.2f} s "
        f"({layers_render / vrt_render:.1f}x faster)"
    )


if __name__ == "__main__":
    main()
