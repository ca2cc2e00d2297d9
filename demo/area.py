"""The demo's grid: the AOI (a bbox or a vector file) split into tiles, optionally a block of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import shapely

from ..core.grid import DEFAULT_FIT, Grid, make_grid


def aoi_from_file(path: Path) -> tuple[str, str]:
    """(WKT of the union of every polygon, CRS) of a vector file, read by QGIS (any OGR format)."""
    from qgis.core import QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer(str(path), "aoi", "ogr")
    if not layer.isValid():
        raise ValueError(f"QGIS cannot read {path} as a vector layer.")
    geometries = [f.geometry() for f in layer.getFeatures() if f.hasGeometry()]
    if not geometries:
        raise ValueError(f"{path} has no geometry.")
    union = QgsGeometry.unaryUnion(geometries)
    if union.isNull() or union.isEmpty():
        raise ValueError(f"{path}: the union of its geometries is empty.")
    return union.asWkt(), layer.crs().authid() or layer.crs().toWkt()


def central_block(grid: Grid, count: int) -> Optional[shapely.Geometry]:
    """The union of the ``count`` tiles nearest the AOI's centre (None when the grid is not larger)."""
    if count >= len(grid):
        return None
    bounds = grid.bounds
    centres = np.column_stack([(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2])
    target = np.array(grid.aoi.centroid.coords[0]) if grid.aoi is not None else centres.mean(axis=0)
    order = np.argsort(np.hypot(*(centres - target).T), kind="stable")[:count]
    return shapely.union_all(grid.geometries[order])


def demo_grid(aoi: Any, tile_size: float, tiles: Optional[int] = None, fit: bool = DEFAULT_FIT) -> Grid:
    """Tiles of ``tile_size`` metres over ``aoi`` (bbox dict or vector file); ``tiles``: keep a central block;
    ``fit``: equal tiles fitted to the area (see :func:`core.grid.make_grid`)."""
    if isinstance(aoi, Path):
        wkt, crs = aoi_from_file(aoi)
        grid = make_grid(wkt, aoi_crs=crs, tile_size=tile_size, fit=fit)
    else:
        grid = make_grid(aoi, tile_size=tile_size, fit=fit)
    if tiles:
        block = central_block(grid, tiles)
        if block is not None:
            # The block's lower-left corner is a tile corner and it spans k whole tiles of width w <= size
            # with k * w > (k - 1) * size (w is width / n for n >= k): fitted again, it has exactly those tiles.
            grid = make_grid(block.wkt, aoi_crs=grid.crs, crs=grid.crs, tile_size=tile_size, fit=fit)
    return grid
