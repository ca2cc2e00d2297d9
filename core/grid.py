"""Split an area of interest (AOI) into tiles.

Public API
----------
``make_grid(aoi, *, tile_size, crs=None, aoi_crs=None, anchor="aoi", fit=True, clip=False,
max_tiles=10_000, confirm_many=False) -> Grid``
    Regular tiles of at most ``tile_size`` metres in a metric tiling CRS (given, or the UTM zone
    of the AOI's centroid when ``crs`` is None). ``anchor="aoi"`` starts the grid at the AOI's
    lower-left corner: with ``fit`` (the default) the AOI's bounding box is cut into
    ``n = ceil(width / tile_size)`` equal columns and as many equal rows as its height needs, so no
    tile is a sliver and none is larger than ``tile_size``; without ``fit`` the tiles are
    ``tile_size`` squares with the remainder in the last column and row, exactly openeo's
    ``split_area``. ``anchor="global"`` aligns square tiles to multiples of ``tile_size`` so tile
    ids are stable from one run to the next (``fit`` does not apply).
``grid_from_polygons(polygons, *, crs, aoi=None, aoi_crs=None, tile_ids=None, clip=False,
max_tiles=10_000, confirm_many=False) -> Grid``
    A predefined grid: the polygons of an existing layer used as tiles.
``utm_crs_for(lon, lat) -> str``
    ``"EPSG:326xx"`` / ``"EPSG:327xx"`` of the UTM zone of a point.
``Grid``
    The tiles: ``tile_ids``, ``rows``, ``cols``, ``geometries`` (tiling CRS), ``bounds``,
    ``geometries_4326`` (computed on first use), ``aoi`` (tiling CRS), ``messages`` (what was
    repaired), ``size_range()`` (the smallest and largest tile; ``size_range_text(grid)`` says it),
    ``parameters()`` (a JSON-able record of how the grid was made).
``GridError`` (a ``ValueError``), ``TooManyTilesError(GridError)``.

Conventions
-----------
* ``col`` counts tiles eastwards, ``row`` northwards (row 0 is the southernmost row), like
  x/y. With ``anchor="aoi"`` they start at 0 at the AOI's lower-left corner and tile ids are
  ``x{col}_y{row}``; with ``anchor="global"`` they are ``floor(x / tile_size)`` and
  ``floor(y / tile_size)`` and ids are ``{epsg}_{size}m_x{col}_y{row}``.
* Tiles are ordered like openeo's ``split_area``: column by column, south to north.
* A tile is kept when its interior meets the AOI's (a tile that only touches the AOI's border
  would be a job over no area; for a regular grid, "meets" means by more than
  :data:`TOUCH_TOLERANCE`, 1 µm). For a rectangular AOI this is the same set as openeo's.
* An AOI without a CRS is taken to be in the tiling CRS when ``crs`` is given (openeo's rule),
  else in EPSG:4326.
* The AOI is transformed vertex by vertex (like geopandas ``to_crs``, so tiles match openeo's).

AOI parsing, repair, projection, the antimeridian and the poles: see :mod:`core.aoi` (its
``GridError``, ``utm_crs_for``, ``crs_string`` and ``transform_geometries`` are also reachable
here). Nothing here writes files; see ``core.jobdb`` for the GeoPackage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Optional

import numpy as np
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from .aoi import (  # noqa: F401 (utm_crs_for, crs_string, transform_geometries, to_4326: this module's API too)
    AoiInput,
    GridError,
    check_geographic_extent,
    choose_tiling_crs,
    crs_string,
    parse_aoi,
    parse_crs,
    polygonal,
    to_4326,
    to_tiling,
    transform_geometries,
    utm_crs_for,
)

DEFAULT_MAX_TILES = 10_000
#: Fit the tiles to the area (no slivers) unless asked for openeo's ``split_area`` tiles.
DEFAULT_FIT = True
#: Never build more candidate tiles than this, even when the caller confirms (memory).
HARD_MAX_TILES = 2_000_000

Anchor = Literal["aoi", "global"]


class TooManyTilesError(GridError):
    """The grid has more tiles than allowed; pass ``confirm_many=True`` to accept."""

    def __init__(self, count: int, limit: int, *, at_least: bool = False):
        self.count = count
        self.limit = limit
        more = "at least " if at_least else ""
        super().__init__(
            f"The grid would have {more}{count:,} tiles, more than the limit of {limit:,}. "
            "Use a larger tile size or a smaller area, or confirm that you want this many jobs."
        )


@dataclass
class Grid:
    """Tiles in a metric tiling CRS (see module docstring for conventions).

    ``geometries``: shapely Polygons (or MultiPolygons when clipped/predefined) in the tiling
    CRS; built on first use for a regular grid (writing the GeoPackage does not need them).
    """

    crs: str  #: tiling CRS, e.g. "EPSG:32631"
    tile_ids: list[str]
    tile_geometries: Optional[np.ndarray] = field(repr=False)  #: None: built from the nodes on demand
    rows: Optional[np.ndarray]  #: int64, None for a predefined grid
    cols: Optional[np.ndarray]
    aoi: Optional[BaseGeometry]  #: the AOI in the tiling CRS (after repair)
    tile_size: Optional[float] = None
    anchor: str = "aoi"  #: "aoi", "global" or "predefined"
    clip: bool = False
    fit: bool = False  #: tiles fitted to the AOI (equal, at most ``tile_size``), see :func:`make_grid`
    aoi_input_wkt: Optional[str] = None  #: the AOI as given (after repair), in ``aoi_input_crs``
    aoi_input_crs: Optional[str] = None
    messages: list[str] = field(default_factory=list)  #: repairs the caller should tell the user
    #: Regular, unclipped grid: node coordinates for fast vectorised work (tile i spans
    #: node_x[node_ci[i]]..node_x[node_ci[i]+1], node_y[node_ri[i]]..node_y[node_ri[i]+1]).
    node_x: Optional[np.ndarray] = field(default=None, repr=False)
    node_y: Optional[np.ndarray] = field(default=None, repr=False)
    node_ci: Optional[np.ndarray] = field(default=None, repr=False)
    node_ri: Optional[np.ndarray] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.tile_ids)

    @cached_property
    def geometries(self) -> np.ndarray:
        if self.tile_geometries is not None:
            return self.tile_geometries
        b = self.bounds
        return shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])

    @property
    def epsg(self) -> Optional[int]:
        return pyproj.CRS.from_user_input(self.crs).to_epsg()

    @property
    def is_regular(self) -> bool:
        """True when every tile is an unclipped axis-aligned box built from the node arrays."""
        return self.node_x is not None

    @cached_property
    def bounds(self) -> np.ndarray:
        """(n, 4) array of minx, miny, maxx, maxy in the tiling CRS."""
        if self.is_regular:
            return np.column_stack(
                [
                    self.node_x[self.node_ci],
                    self.node_y[self.node_ri],
                    self.node_x[self.node_ci + 1],
                    self.node_y[self.node_ri + 1],
                ]
            )
        return shapely.bounds(self.geometries)

    @cached_property
    def geometries_4326(self) -> np.ndarray:
        """The tiles in EPSG:4326 (lon/lat), vertex by vertex like geopandas ``to_crs``."""
        return to_4326(self.geometries, self.crs)

    def size_range(self) -> Optional[tuple[tuple[float, float], tuple[float, float]]]:
        """((width, height) of the smallest tile, (width, height) of the largest), by area, in the
        tiling CRS's metres; a clipped tile counts with its own area and the size of its bounding
        box. None for a predefined grid (its CRS may not be in metres)."""
        if self.tile_size is None or len(self) == 0:
            return None
        b = self.bounds
        widths, heights = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        areas = widths * heights if self.is_regular else shapely.area(self.geometries)
        small, large = int(np.argmin(areas)), int(np.argmax(areas))
        return (float(widths[small]), float(heights[small])), (float(widths[large]), float(heights[large]))

    def parameters(self) -> dict[str, Any]:
        """JSON-able description of how the grid was made (stored in the run record)."""
        return {
            "crs": self.crs,
            "tile_size": self.tile_size,
            "anchor": self.anchor,
            "fit": self.fit,
            "clip": self.clip,
            "tile_count": len(self),
        }


def size_range_text(grid: Grid) -> str:
    """The smallest and largest tile in whole metres: "each 5000 × 5000 m" when they read the same,
    else "358 × 5000 m to 5000 × 5000 m"; "" for a predefined grid."""
    sizes = grid.size_range()
    if sizes is None:
        return ""
    small, large = (f"{w:.0f} × {h:.0f} m" for w, h in sizes)
    return f"each {small}" if small == large else f"{small} to {large}"


# ---------------------------------------------------------------------------------------------
# Grids


def _check_limits(count: int, max_tiles: int, confirm_many: bool, *, at_least: bool = False) -> None:
    if count > HARD_MAX_TILES:
        raise TooManyTilesError(count, HARD_MAX_TILES, at_least=at_least)
    if count > max_tiles and not confirm_many:
        raise TooManyTilesError(count, max_tiles, at_least=at_least)


#: A grid tile is kept when the AOI reaches more than this many metres into it: a corner lying on
#: an AOI edge up to rounding (fitted nodes often lie on a diagonal edge) is touching, not meeting.
TOUCH_TOLERANCE = 1e-6


def _interior_hits(geoms: np.ndarray, aoi: BaseGeometry) -> np.ndarray:
    """Boolean mask: the geometry's interior meets the AOI's (intersects and not only touches)."""
    shapely.prepare(aoi)
    hits = shapely.intersects(aoi, geoms)
    if hits.any():
        idx = np.flatnonzero(hits)
        hits[idx] = ~shapely.touches(aoi, geoms[idx])
    return hits


def _boxes_meeting(aoi: BaseGeometry, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Boolean mask of the boxes the AOI reaches into by more than :data:`TOUCH_TOLERANCE` (one
    prepared predicate on slightly shrunken boxes, which also ignores rounding at shared corners)."""
    shrink = np.minimum(TOUCH_TOLERANCE, (x1 - x0) / 4, (y1 - y0) / 4)
    shapely.prepare(aoi)
    return shapely.intersects(aoi, shapely.box(x0 + shrink, y0 + shrink, x1 - shrink, y1 - shrink))


def _clip(geoms: np.ndarray, aoi: BaseGeometry) -> np.ndarray:
    clipped = shapely.intersection(geoms, aoi)
    out = np.empty(len(clipped), dtype=object)
    for i, g in enumerate(clipped):
        if g.geom_type == "GeometryCollection":
            parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
            g = shapely.union_all(parts)
        out[i] = g
    return out


def make_grid(
    aoi: AoiInput,
    *,
    tile_size: float,
    crs: Any = None,
    aoi_crs: Any = None,
    anchor: Anchor = "aoi",
    fit: bool = DEFAULT_FIT,
    clip: bool = False,
    max_tiles: int = DEFAULT_MAX_TILES,
    confirm_many: bool = False,
) -> Grid:
    """Split ``aoi`` into tiles of ``tile_size`` metres (see module docstring).

    ``aoi``: shapely geometry, WKT, or an openeo-style bbox dict (``west``, ``south``, ``east``,
    ``north``, optional ``crs``). ``aoi_crs``: CRS of a geometry/WKT AOI. ``crs``: tiling CRS
    (metric), None for the UTM zone of the AOI's centroid. ``fit``: with ``anchor="aoi"``, equal
    tiles fitted to the AOI's bounding box instead of ``tile_size`` squares and slivers.
    ``clip``: cut tiles to the AOI.
    Raises :class:`GridError` (or :class:`TooManyTilesError`) with a message for the user.
    """
    try:
        size = float(tile_size)
    except (TypeError, ValueError) as exc:
        raise GridError(f"The tile size must be a number of metres, not {tile_size!r}.") from exc
    if not math.isfinite(size) or size <= 0:
        raise GridError(f"The tile size must be more than 0 metres, got {tile_size!r}.")
    if anchor not in ("aoi", "global"):
        raise GridError(f"anchor must be 'aoi' or 'global', not {anchor!r}.")
    default_crs = crs_string(parse_crs(crs, "tiling CRS")) if crs is not None else None
    geom, src, messages = parse_aoi(aoi, aoi_crs, default_crs)
    geom = polygonal(geom, "AOI", messages)
    check_geographic_extent(geom, src)
    tiling = choose_tiling_crs(crs, geom, src)
    aoi_t = to_tiling(geom, src, tiling, "AOI")
    aoi_t = polygonal(aoi_t, "AOI (in the tiling CRS)", messages)

    west, south, east, north = aoi_t.bounds
    fit = bool(fit) and anchor == "aoi"
    if anchor == "aoi":
        # The count is openeo's (_SizeBasedTileGrid._split_bounding_box); so are the floats when not fitted.
        n_cols = math.ceil(round((east - west) / size, 10))
        n_rows = math.ceil(round((north - south) / size, 10))
        col0 = row0 = 0
        if fit:  # n equal tiles across (and down), each (width / n) <= size: no sliver
            node_x = np.linspace(west, east, n_cols + 1)
            node_y = np.linspace(south, north, n_rows + 1)
        else:
            node_x = np.minimum(west + np.arange(n_cols + 1) * size, east)
            node_y = np.minimum(south + np.arange(n_rows + 1) * size, north)
            node_x[0], node_y[0] = west, south
    else:
        col0 = math.floor(round(west / size, 10))
        row0 = math.floor(round(south / size, 10))
        n_cols = max(math.ceil(round(east / size, 10)) - col0, 1)
        n_rows = max(math.ceil(round(north / size, 10)) - row0, 1)
        node_x = (col0 + np.arange(n_cols + 1)) * size
        node_y = (row0 + np.arange(n_rows + 1)) * size
    candidates = n_cols * n_rows
    if candidates > max(50 * max_tiles, HARD_MAX_TILES) or candidates > HARD_MAX_TILES:
        _check_limits(candidates, max_tiles, confirm_many)  # refuse before building millions of boxes

    ci, ri = np.meshgrid(np.arange(n_cols), np.arange(n_rows), indexing="ij")
    ci, ri = ci.ravel(), ri.ravel()
    rectangular = shapely.equals(aoi_t, shapely.box(west, south, east, north))
    if not rectangular:
        keep = _boxes_meeting(aoi_t, node_x[ci], node_y[ri], node_x[ci + 1], node_y[ri + 1])
        ci, ri = ci[keep], ri[keep]
    boxes = shapely.box(node_x[ci], node_y[ri], node_x[ci + 1], node_y[ri + 1]) if clip else None
    # Edge tiles of zero width (AOI extent a multiple of the size, rounding) never occur: the
    # round(..., 10) above mirrors openeo's count.
    _check_limits(len(ci), max_tiles, confirm_many)
    if len(ci) == 0:
        raise GridError("No tile meets the AOI.")

    cols = ci + col0
    rows = ri + row0
    if anchor == "aoi":
        ids = [f"x{c}_y{r}" for c, r in zip(cols.tolist(), rows.tolist())]
    else:
        epsg = pyproj.CRS.from_user_input(tiling).to_epsg() or "crs"
        prefix = f"{epsg}_{size:g}m_"
        ids = [f"{prefix}x{c}_y{r}" for c, r in zip(cols.tolist(), rows.tolist())]
    regular = not clip
    return Grid(
        crs=tiling,
        tile_ids=ids,
        tile_geometries=_clip(boxes, aoi_t) if clip else None,
        rows=rows.astype(np.int64),
        cols=cols.astype(np.int64),
        aoi=aoi_t,
        tile_size=size,
        anchor=anchor,
        clip=bool(clip),
        fit=fit,
        aoi_input_wkt=geom.wkt,
        aoi_input_crs=src,
        messages=messages,
        node_x=node_x if regular else None,
        node_y=node_y if regular else None,
        node_ci=ci if regular else None,
        node_ri=ri if regular else None,
    )


def grid_from_polygons(
    polygons: Sequence[BaseGeometry],
    *,
    crs: Any,
    aoi: Optional[AoiInput] = None,
    aoi_crs: Any = None,
    tile_ids: Optional[Sequence[Any]] = None,
    clip: bool = False,
    max_tiles: int = DEFAULT_MAX_TILES,
    confirm_many: bool = False,
) -> Grid:
    """A predefined grid: ``polygons`` (in ``crs``) used as tiles, those meeting ``aoi`` if given.

    ``tile_ids`` (e.g. an attribute of the source layer) must be unique; default ``t{index}``.
    The tiling CRS is ``crs`` (it may be any CRS here, the polygons define the tiles).
    """
    tiling = crs_string(parse_crs(crs, "tile layer CRS"))
    geoms = np.asarray(list(polygons), dtype=object)
    if len(geoms) == 0:
        raise GridError("The tile layer has no polygons.")
    if tile_ids is None:
        ids = [f"t{i}" for i in range(len(geoms))]
    else:
        ids = [str(t) for t in tile_ids]
        if len(ids) != len(geoms):
            raise GridError(f"{len(ids)} tile ids for {len(geoms)} polygons.")
        if len(set(ids)) != len(ids):
            dup = sorted({t for t in ids if ids.count(t) > 1})[:5]
            raise GridError(f"Tile ids must be unique; repeated: {', '.join(dup)}.")
    messages: list[str] = []
    fixed = np.empty(len(geoms), dtype=object)
    for i, g in enumerate(geoms):
        if not isinstance(g, BaseGeometry):
            raise GridError(f"Tile {ids[i]} is not a geometry.")
        sub: list[str] = []
        fixed[i] = polygonal(g, f"tile {ids[i]}", sub)
        messages.extend(sub)
    aoi_t = None
    aoi_wkt = aoi_src = None
    if aoi is not None:
        geom, aoi_src, msgs = parse_aoi(aoi, aoi_crs, tiling)
        messages.extend(msgs)
        geom = polygonal(geom, "AOI", messages)
        check_geographic_extent(geom, aoi_src)
        aoi_wkt = geom.wkt
        aoi_t = polygonal(to_tiling(geom, aoi_src, tiling, "AOI"), "AOI (in the tile layer's CRS)", messages)
        keep = _interior_hits(fixed, aoi_t)
        fixed = fixed[keep]
        ids = [t for t, k in zip(ids, keep.tolist()) if k]
        if len(fixed) == 0:
            raise GridError("No tile of the tile layer meets the AOI.")
        if clip:
            fixed = _clip(fixed, aoi_t)
    _check_limits(len(fixed), max_tiles, confirm_many)
    return Grid(
        crs=tiling,
        tile_ids=ids,
        tile_geometries=fixed,
        rows=None,
        cols=None,
        aoi=aoi_t,
        tile_size=None,
        anchor="predefined",
        clip=bool(clip and aoi is not None),
        aoi_input_wkt=aoi_wkt,
        aoi_input_crs=aoi_src,
        messages=messages,
    )
