"""The area of interest (AOI) and the CRS it is tiled in: parsing, repair, projection.

``parse_aoi`` reads a shapely geometry, WKT or an openeo-style bounding-box dict; ``polygonal``
keeps its polygonal part, repaired with make_valid (what was repaired goes into ``messages``, for
the user); ``choose_tiling_crs`` picks a metric CRS (given, or the UTM zone of the AOI's centre,
``utm_crs_for``); ``to_tiling`` projects vertex by vertex like geopandas ``to_crs``
(``transform_geometries``), so tiles match openeo's. Errors are :class:`GridError` with a message
for the user.

Antimeridian and poles: a bbox dict in a geographic CRS with ``west > east`` crosses the
antimeridian and is handled (longitudes east of it are unwrapped past 180°, which PROJ
projects correctly into the UTM zone of the centre). A lon/lat polygon spanning more than 180°
of longitude is refused (it cannot be told apart from one crossing the antimeridian), as is a
lon/lat AOI reaching a pole (its edges cannot be projected faithfully vertex by vertex) and an
automatic UTM CRS beyond UTM's limits (84°N, 80°S): the message asks for a polar CRS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

AoiInput = Union[BaseGeometry, Mapping[str, Any], str]


class GridError(ValueError):
    """A bad AOI or tiling parameter; the message says what to change."""


# ---------------------------------------------------------------------------------------------
# CRS helpers


def utm_crs_for(lon: float, lat: float) -> str:
    """The UTM zone of a lon/lat point as an EPSG string (no Norway/Svalbard exceptions)."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise GridError(f"Not a longitude/latitude: ({lon}, {lat}).")
    zone = min(int(math.floor((lon + 180.0) / 6.0)) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def parse_crs(value: Any, what: str) -> pyproj.CRS:
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


def parse_aoi(aoi: AoiInput, aoi_crs: Any, default_crs: Optional[str]) -> tuple[BaseGeometry, str, list[str]]:
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
        src = crs_string(parse_crs(crs_value, "AOI CRS")) if crs_value is not None else (default_crs or "EPSG:4326")
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
    src = crs_string(parse_crs(aoi_crs, "AOI CRS")) if aoi_crs is not None else (default_crs or "EPSG:4326")
    return geom, src, messages


def polygonal(geom: BaseGeometry, what: str, messages: list[str]) -> BaseGeometry:
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


def check_geographic_extent(geom: BaseGeometry, src: str) -> None:
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


def choose_tiling_crs(crs: Any, geom: BaseGeometry, src: str) -> str:
    if crs is not None:
        tiling = parse_crs(crs, "tiling CRS")
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


def to_tiling(geom: BaseGeometry, src: str, tiling: str, what: str) -> BaseGeometry:
    out = transform_geometries(geom, src, tiling)
    if not np.isfinite(shapely.get_coordinates(out)).all():
        raise GridError(f"The {what} cannot be projected to {tiling} (it lies outside that CRS's area of use).")
    if not out.is_valid:
        out = shapely.make_valid(out)
    return out
