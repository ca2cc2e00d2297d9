"""Spatial and temporal extents as openEO clients send them, normalised for the synthetic collection."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ApiError
from .synthetic import utm_epsg

MAX_PIXELS_PER_SIDE = 5000


@dataclass
class Grid:
    """The UTM pixel grid of a request: pixel centres and, for polygons, which pixels are inside."""

    epsg: int
    res: float
    xs: np.ndarray
    ys: np.ndarray
    inside: np.ndarray | None  # bool (ny, nx) or None when the whole box is wanted
    lonlat_bbox: tuple[float, float, float, float]

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        half = self.res / 2
        return (self.xs[0] - half, self.ys[-1] - half, self.xs[-1] + half, self.ys[0] + half)


def _invalid(parameter: str, reason: str, process: str = "load_collection") -> ApiError:
    return ApiError(
        "ProcessParameterInvalid",
        f"The value passed for parameter '{parameter}' in process '{process}' is invalid: {reason}",
    )


def _geojson_geometry(value: dict) -> dict | None:
    kind = value.get("type")
    if kind in ("Polygon", "MultiPolygon"):
        return value
    if kind == "Feature":
        return _geojson_geometry(value.get("geometry") or {})
    if kind == "FeatureCollection":
        geoms = [_geojson_geometry(f) for f in value.get("features") or []]
        geoms = [g for g in geoms if g]
        if not geoms:
            return None
        polys: list = []
        for g in geoms:
            polys += [g["coordinates"]] if g["type"] == "Polygon" else list(g["coordinates"])
        return {"type": "MultiPolygon", "coordinates": polys}
    if kind == "GeometryCollection":
        raise ValueError("GeometryCollection is not supported, send a Polygon, MultiPolygon or FeatureCollection")
    return None


def _as_plain(value: Any) -> Any:
    """pydantic objects of openeo-pg-parser-networkx back to plain JSON-like values."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return value


def spatial_to_grid(spatial_extent: Any, res: float, process: str = "load_collection") -> Grid:
    """A bbox dict (any CRS) or a GeoJSON Polygon/MultiPolygon/Feature(Collection) in EPSG:4326."""
    import pyproj
    import shapely
    import shapely.geometry

    value = _as_plain(spatial_extent)
    if value is None:
        raise _invalid("spatial_extent", "an extent is required (the demo collection covers any area)", process)
    if not isinstance(value, dict):
        raise _invalid(
            "spatial_extent", f"expected a bounding box or GeoJSON object, got {type(value).__name__}", process
        )
    polygon = None
    if "type" in value:
        try:
            geometry = _geojson_geometry(value)
        except ValueError as exc:
            raise _invalid("spatial_extent", str(exc), process) from exc
        if geometry is None:
            raise _invalid("spatial_extent", f"unsupported GeoJSON type {value.get('type')!r}", process)
        try:
            polygon = shapely.geometry.shape(geometry)
        except Exception as exc:
            raise _invalid("spatial_extent", f"invalid GeoJSON: {exc}", process) from exc
        if polygon.is_empty or polygon.area <= 0:
            raise _invalid("spatial_extent", "the geometry is empty", process)
        src_crs = pyproj.CRS.from_epsg(4326)
        west, south, east, north = polygon.bounds
    else:
        try:
            west, south, east, north = (float(value[k]) for k in ("west", "south", "east", "north"))
        except (KeyError, TypeError, ValueError) as exc:
            raise _invalid(
                "spatial_extent", "a bounding box needs numeric west, south, east and north", process
            ) from exc
        if not (west < east and south < north):
            raise _invalid(
                "spatial_extent",
                f"empty or inverted box (west={west}, east={east}, south={south}, north={north})",
                process,
            )
        crs = value.get("crs") or 4326
        try:
            src_crs = pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError as exc:
            raise _invalid("spatial_extent", f"unknown crs {crs!r}", process) from exc
        polygon = None
    to_lonlat = pyproj.Transformer.from_crs(src_crs, 4326, always_xy=True)
    lon_w, lat_s, lon_e, lat_n = to_lonlat.transform_bounds(west, south, east, north)
    if not (-180 <= lon_w < lon_e <= 180 and -84 <= lat_s < lat_n <= 84):
        raise _invalid(
            "spatial_extent", "the extent must lie within longitudes -180..180 and latitudes -84..84", process
        )
    epsg = utm_epsg((lon_w + lon_e) / 2, (lat_s + lat_n) / 2)
    to_utm = pyproj.Transformer.from_crs(src_crs, epsg, always_xy=True)
    if polygon is not None:
        polygon_utm = shapely.transform(polygon, lambda x, y: to_utm.transform(x, y), interleaved=False)
        uw, us, ue, un = polygon_utm.bounds
    else:
        uw, us, ue, un = to_utm.transform_bounds(west, south, east, north)
    if (ue - uw) / res > MAX_PIXELS_PER_SIDE or (un - us) / res > MAX_PIXELS_PER_SIDE:
        raise _invalid(
            "spatial_extent",
            f"too large for the demo backend (more than {MAX_PIXELS_PER_SIDE} pixels per side)",
            process,
        )
    from .synthetic import pixel_centres

    xs, ys = pixel_centres(uw, us, ue, un, res)
    if xs.size == 0 or ys.size == 0:
        raise _invalid("spatial_extent", f"the extent is smaller than one {res:g} m pixel", process)
    inside = None
    if polygon is not None:
        shapely.prepare(polygon_utm)
        inside = shapely.contains_xy(polygon_utm, xs[None, :], ys[:, None])
        if not inside.any():
            raise _invalid("spatial_extent", "the geometry contains no pixel centre", process)
    return Grid(epsg=epsg, res=res, xs=xs, ys=ys, inside=inside, lonlat_bbox=(lon_w, lat_s, lon_e, lat_n))


def _parse_instant(value: Any, parameter: str, process: str) -> dt.date | None:
    value = _as_plain(value)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    raise _invalid(parameter, f"not a date or date-time: {value!r}", process)


def temporal_interval(temporal_extent: Any, process: str = "load_collection") -> tuple[dt.date, dt.date]:
    """``[start, end)`` as dates. Both ends are required here (the demo collection is endless)."""
    value = _as_plain(temporal_extent)
    if isinstance(value, dict) and "root" in value:
        value = value["root"]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _invalid("temporal_extent", "expected [start, end]", process)
    start = _parse_instant(value[0], "temporal_extent", process)
    end = _parse_instant(value[1], "temporal_extent", process)
    if start is None or end is None:
        raise _invalid("temporal_extent", "open-ended intervals are not supported, give start and end", process)
    if end <= start:
        raise _invalid(
            "temporal_extent", f"empty or inverted interval ({start} .. {end}; the end is excluded)", process
        )
    return start, end
