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
  would be a job over no area). For a rectangular AOI this is the same set as openeo's.
* An AOI without a CRS is taken to be in the tiling CRS when ``crs`` is given (openeo's rule),
  else in EPSG:4326.
* The AOI is transformed vertex by vertex (like geopandas ``to_crs``, so tiles match openeo's).

Antimeridian and poles: a bbox dict in a geographic CRS with ``west > east`` crosses the
antimeridian and is handled (longitudes east of it are unwrapped past 180°, which PROJ
projects correctly into the UTM zone of the centre). A lon/lat polygon spanning more than 180°
of longitude is refused (it cannot be told apart from one crossing the antimeridian), as is a
lon/lat AOI reaching a pole (its edges cannot be projected faithfully vertex by vertex) and an
automatic UTM CRS beyond UTM's limits (84°N, 80°S): the message asks for a polar CRS.

Nothing here writes files; see ``core.jobdb`` for the GeoPackage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Optional, Union

import numpy as np
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

DEFAULT_MAX_TILES = 10_000
#: Fit the tiles to the area (no slivers) unless asked for openeo's ``split_area`` tiles.
DEFAULT_FIT = True
#: Never build more candidate tiles than this, even when the caller confirms (memory).
HARD_MAX_TILES = 2_000_000

Anchor = Literal["aoi", "global"]
AoiInput = Union[BaseGeometry, Mapping[str, Any], str]


class GridError(ValueError):
    """A bad AOI or tiling parameter; the message says what to change."""


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
# CRS helpers


def utm_crs_for(lon: float, lat: float) -> str:
    """The UTM zone of a lon/lat point as an EPSG string (no Norway/Svalbard exceptions)."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise GridError(f"Not a longitude/latitude: ({lon}, {lat}).")
    zone = min(int(math.floor((lon + 180.0) / 6.0)) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _crs(value: Any, what: str) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(value)
    except (pyproj.exceptions.CRSError, TypeError, ValueError) as exc:
        raise GridError(f"Unknown {what}: {value!r}.") from exc


def crs_string(crs: pyproj.CRS) -> str:
    """``"EPSG:nnnn"`` when the CRS has an EPSG code, else its WKT."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


_TRANSFORMERS: dict[tuple[str, str], pyproj.Transformer] = {}


def transformer(src: str, dst: str) -> pyproj.Transformer:
    """A cached always-xy transformer (pyproj transformers are slow to build)."""
    key = (src, dst)
    tr = _TRANSFORMERS.get(key)
    if tr is None:
        tr = pyproj.Transformer.from_crs(src, dst, always_xy=True)
        _TRANSFORMERS[key] = tr
    return tr


def transform_geometries(geoms: Any, src: str, dst: str) -> Any:
    """Transform shapely geometries vertex by vertex (vectorised)."""
    if src == dst:
        return geoms
    tr = transformer(src, dst)

    def _tf(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _tf)


def to_4326(geoms: Any, src: str) -> Any:
    return transform_geometries(geoms, src, "EPSG:4326")


# ---------------------------------------------------------------------------------------------
# AOI parsing


def _parse_aoi(aoi: AoiInput, aoi_crs: Any, default_crs: Optional[str]) -> tuple[BaseGeometry, str, list[str]]:
    """Return (polygonal geometry, its CRS string, messages). Raises GridError."""
    messages: list[str] = []
    if isinstance(aoi, Mapping):
        missing = [k for k in ("west", "south", "east", "north") if k not in aoi]
        if missing:
            raise GridError(f"The bounding box lacks {', '.join(missing)}.")
        try:
            west, south, east, north = (float(aoi[k]) for k in ("west", "south", "east", "north"))
        except (TypeError, ValueError) as exc:
            raise GridError(f"The bounding box has a non-numeric coordinate: {dict(aoi)!r}.") from exc
        if not all(math.isfinite(v) for v in (west, south, east, north)):
            raise GridError("The bounding box has a non-finite coordinate.")
        crs_value = aoi.get("crs", aoi_crs)
        src = crs_string(_crs(crs_value, "AOI CRS")) if crs_value is not None else (default_crs or "EPSG:4326")
        if south >= north:
            raise GridError("Invalid bounding box: south must be less than north.")
        if west == east:
            raise GridError("Invalid bounding box: west must not equal east (zero width).")
        if west > east:
            if not pyproj.CRS.from_user_input(src).is_geographic:
                raise GridError("Invalid bounding box: west must be less than east.")
            east += 360.0  # crosses the antimeridian: unwrap
            messages.append("The bounding box crosses the antimeridian; it was unwrapped past 180° longitude.")
        return shapely.box(west, south, east, north), src, messages
    if isinstance(aoi, str):
        try:
            geom = shapely.from_wkt(aoi)
        except shapely.errors.GEOSException as exc:
            raise GridError(f"The AOI is not valid WKT: {exc}.") from exc
    elif isinstance(aoi, BaseGeometry):
        geom = aoi
    else:
        raise GridError(f"The AOI must be a shapely geometry, WKT or a bounding-box dict, not {type(aoi).__name__}.")
    src = crs_string(_crs(aoi_crs, "AOI CRS")) if aoi_crs is not None else (default_crs or "EPSG:4326")
    return geom, src, messages


def _polygonal(geom: BaseGeometry, what: str, messages: list[str]) -> BaseGeometry:
    """The polygonal part of a geometry, repaired with make_valid; raises on nothing left."""
    if geom is None or geom.is_empty:
        raise GridError(f"The {what} is empty.")
    if not shapely.is_valid(geom):
        reason = shapely.is_valid_reason(geom)
        geom = shapely.make_valid(geom)
        messages.append(f"The {what} was invalid ({reason}) and was repaired with make_valid.")
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
        geom = shapely.union_all(parts) if parts else shapely.Polygon()
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty or geom.area <= 0:
        raise GridError(f"The {what} has no area (it is a {geom.geom_type}); draw a polygon.")
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise GridError(f"The {what} has non-finite coordinates.")
    return geom


def _check_geographic_extent(geom: BaseGeometry, src: str) -> None:
    if not pyproj.CRS.from_user_input(src).is_geographic:
        return
    minx, miny, maxx, maxy = geom.bounds
    if miny < -90 or maxy > 90:
        raise GridError("The AOI has latitudes beyond ±90°; is its CRS right?")
    if maxx - minx > 180:
        raise GridError(
            "The AOI spans more than 180° of longitude. If it crosses the antimeridian, give it as a "
            "bounding box with west > east, or in a projected CRS; areas wider than half the globe are refused."
        )
    if maxy >= 89.999 or miny <= -89.999:
        raise GridError(
            "The AOI reaches a pole: a longitude/latitude polygon there cannot be projected faithfully. "
            "Draw it in a polar CRS (e.g. EPSG:3413 or EPSG:3031) and tile in that CRS."
        )


def _choose_tiling_crs(crs: Any, geom: BaseGeometry, src: str) -> str:
    if crs is not None:
        tiling = _crs(crs, "tiling CRS")
        if tiling.is_geographic:
            raise GridError(f"The tiling CRS {crs_string(tiling)} is geographic; tile sizes are in metres.")
        unit = tiling.axis_info[0].unit_name if tiling.axis_info else "metre"
        if unit not in ("metre", "meter"):
            raise GridError(f"The tiling CRS {crs_string(tiling)} is in {unit}, not metres.")
        return crs_string(tiling)
    lonlat = transform_geometries(geom, src, "EPSG:4326")
    minx, miny, maxx, maxy = lonlat.bounds
    if maxy > 84.0 or miny < -80.0:
        raise GridError(
            "The AOI reaches beyond 84°N or 80°S where UTM is not defined; choose a polar CRS "
            "(e.g. EPSG:3413 or EPSG:3031) as tiling CRS."
        )
    c = lonlat.centroid
    lon = ((c.x + 180.0) % 360.0) - 180.0
    return utm_crs_for(lon, c.y)


def _to_tiling(geom: BaseGeometry, src: str, tiling: str, what: str) -> BaseGeometry:
    out = transform_geometries(geom, src, tiling)
    if not np.isfinite(shapely.get_coordinates(out)).all():
        raise GridError(f"The {what} cannot be projected to {tiling} (it lies outside that CRS's area of use).")
    if not out.is_valid:
        out = shapely.make_valid(out)
    return out


# ---------------------------------------------------------------------------------------------
# Grids


def _check_limits(count: int, max_tiles: int, confirm_many: bool, *, at_least: bool = False) -> None:
    if count > HARD_MAX_TILES:
        raise TooManyTilesError(count, HARD_MAX_TILES, at_least=at_least)
    if count > max_tiles and not confirm_many:
        raise TooManyTilesError(count, max_tiles, at_least=at_least)


#: A tile sharing less than this fraction of its area with the AOI only touches it (rounding).
TOUCH_AREA_FRACTION = 1e-9


def _interior_hits(geoms: np.ndarray, aoi: BaseGeometry) -> np.ndarray:
    """Boolean mask: the geometry's interior meets the AOI's (intersects and not only touches).

    A tile whose corner lies on an AOI edge up to rounding (fitted nodes often lie on a diagonal
    edge) shares no area with it although ``touches`` is False: the shared area decides there.
    """
    shapely.prepare(aoi)
    hits = shapely.intersects(aoi, geoms)
    if hits.any():
        idx = np.flatnonzero(hits)
        hits[idx] = ~shapely.touches(aoi, geoms[idx])
        idx = np.flatnonzero(hits)
        edge = idx[~shapely.contains(aoi, geoms[idx])]
        if len(edge):
            shared = shapely.area(shapely.intersection(geoms[edge], aoi))
            hits[edge] = shared > TOUCH_AREA_FRACTION * shapely.area(geoms[edge])
    return hits


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
    default_crs = crs_string(_crs(crs, "tiling CRS")) if crs is not None else None
    geom, src, messages = _parse_aoi(aoi, aoi_crs, default_crs)
    geom = _polygonal(geom, "AOI", messages)
    _check_geographic_extent(geom, src)
    tiling = _choose_tiling_crs(crs, geom, src)
    aoi_t = _to_tiling(geom, src, tiling, "AOI")
    aoi_t = _polygonal(aoi_t, "AOI (in the tiling CRS)", messages)

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
    boxes = None
    if not rectangular or clip:
        boxes = shapely.box(node_x[ci], node_y[ri], node_x[ci + 1], node_y[ri + 1])
    if not rectangular:
        keep = _interior_hits(boxes, aoi_t)
        boxes, ci, ri = boxes[keep], ci[keep], ri[keep]
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
    tiling = crs_string(_crs(crs, "tile layer CRS"))
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
        fixed[i] = _polygonal(g, f"tile {ids[i]}", sub)
        messages.extend(sub)
    aoi_t = None
    aoi_wkt = aoi_src = None
    if aoi is not None:
        geom, aoi_src, msgs = _parse_aoi(aoi, aoi_crs, tiling)
        messages.extend(msgs)
        geom = _polygonal(geom, "AOI", messages)
        _check_geographic_extent(geom, aoi_src)
        aoi_wkt = geom.wkt
        aoi_t = _polygonal(_to_tiling(geom, aoi_src, tiling, "AOI"), "AOI (in the tile layer's CRS)", messages)
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
