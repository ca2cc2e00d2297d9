"""Preview one tile: the run's own request for that tile, and where it is computed.

The request is exactly the one the run submits for the tile (:func:`core.starting.tile_inputs` +
:func:`core.jobspec.build_job_request`). It goes to synchronous processing (``POST /result``)
when the backend lists that endpoint and the tile is small enough, else to a batch job of its
own (:mod:`core.preview_run`). Pure: no network, no QGIS.

*Small enough* is a client-side estimate, checked before anything is sent::

    pixels x dates <= SYNC_MAX_PIXEL_DATES (2,000,000)
    pixels = the tile's area / pixel_size**2      (10 m: Sentinel-2's finest bands)
    dates  = ceil(days of temporal_extent / 5)    (Sentinel-2's revisit; 1 when there is none)

The same measure and limit as the Local demo backend's ``POST /result`` (its
``sync_max_pixel_dates``), so on it the estimate and the backend agree: a 3.2 km square over a
summer at 10 m is synchronous, a 5 km one is a batch job. A backend that publishes its pixel
size in ``GET /`` (the Local demo backend does, under ``local_demo``) is measured with it. The
estimate can be wrong (a process that loads more, another backend's limits): a size refusal
from ``POST /result`` (:func:`is_size_refusal`) sends the tile to a batch job anyway.
"""

from __future__ import annotations

import datetime as dt
import glob
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import requests

from . import retry
from .downloads import check_safe_name
from .jobspec import JobSpec, ResolvedProcess, build_job_request
from .starting import tile_inputs

SYNC = "sync"
BATCH = "batch"
#: pixels x dates at most for ``POST /result`` (the Local demo backend's default limit).
SYNC_MAX_PIXEL_DATES = 2_000_000
#: Metres per pixel assumed when the backend does not say (Sentinel-2's 10 m bands).
DEFAULT_PIXEL_SIZE = 10.0
#: Days between acquisitions assumed to count dates (Sentinel-2's revisit).
REVISIT_DAYS = 5
#: openEO error codes of a request too large for synchronous processing (plus HTTP 413 and timeouts).
SIZE_ERROR_CODES = frozenset({"ProcessGraphComplexity"})
PREVIEW_FOLDER = "preview"


@dataclass(frozen=True)
class SyncLimit:
    """The client-side size check of synchronous processing (see the module docstring)."""

    max_pixel_dates: int = SYNC_MAX_PIXEL_DATES
    pixel_size: float = DEFAULT_PIXEL_SIZE
    revisit_days: int = REVISIT_DAYS

    def for_backend(self, capabilities: Mapping[str, Any]) -> SyncLimit:
        """This limit measured with the pixel size the backend publishes in ``GET /``, if any."""
        hint = capabilities.get("local_demo")
        size = hint.get("pixel_size") if isinstance(hint, Mapping) else None
        if isinstance(size, (int, float)) and size > 0:
            return replace(self, pixel_size=float(size))
        return self


@dataclass(frozen=True)
class TileVolume:
    """What a tile's request loads, as estimated before it is sent."""

    pixels: int
    dates: int

    @property
    def pixel_dates(self) -> int:
        return self.pixels * self.dates


@dataclass(frozen=True)
class PreviewRequest:
    """One tile's request, as the run would submit it, on the backend that previews it."""

    fid: int
    tile_id: str
    backend_name: str
    process_graph: dict
    job_options: Optional[dict]
    volume: TileVolume


@dataclass(frozen=True)
class Route:
    """Where a preview is computed (``SYNC`` or ``BATCH``) and why, in words for the user."""

    mode: str
    reason: str


def geodesic_area(geometry_4326: Mapping[str, Any]) -> float:
    """Area in square metres of a GeoJSON geometry in EPSG:4326."""
    import pyproj
    import shapely.geometry

    area, _perimeter = pyproj.Geod(ellps="WGS84").geometry_area_perimeter(shapely.geometry.shape(geometry_4326))
    return abs(area)


def _iso_date(value: Any) -> Optional[dt.date]:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def temporal_extent_days(process_graph: Mapping[str, Any]) -> Optional[int]:
    """Days of the first closed ``temporal_extent`` argument of the graph's nodes (None: none found)."""

    def walk(value: Any) -> Optional[int]:
        if isinstance(value, Mapping):
            extent = value.get("temporal_extent")
            if isinstance(extent, (list, tuple)) and len(extent) == 2:
                start, end = _iso_date(extent[0]), _iso_date(extent[1])
                if start is not None and end is not None:
                    return max(0, (end - start).days)
            for child in value.values():
                found = walk(child)
                if found is not None:
                    return found
        elif isinstance(value, (list, tuple)):
            for child in value:
                found = walk(child)
                if found is not None:
                    return found
        return None

    for node in process_graph.values():
        if isinstance(node, Mapping):
            found = walk(node.get("arguments", {}))
            if found is not None:
                return found
    return None


def tile_volume(geometry_4326: Mapping[str, Any], process_graph: Mapping[str, Any], limit: SyncLimit) -> TileVolume:
    """Pixels x dates a tile's request loads, estimated (see the module docstring)."""
    pixels = math.ceil(geodesic_area(geometry_4326) / (limit.pixel_size**2))
    days = temporal_extent_days(process_graph)
    dates = max(1, math.ceil(days / limit.revisit_days)) if days is not None else 1
    return TileVolume(pixels=pixels, dates=dates)


def tile_request(
    db: Any, spec: JobSpec, resolved: ResolvedProcess, fid: int, backend_name: str, limit: SyncLimit
) -> PreviewRequest:
    """The run's request for tile ``fid`` of ``db`` (a :class:`core.jobdb.JobDB`), read-only."""
    row = db.get(int(fid))
    if row is None:
        raise KeyError(f"No tile with fid {fid}.")
    tile = tile_inputs(db, resolved, [row])[int(fid)]
    request = build_job_request(resolved, spec, tile)
    geometry = tile.get("geometry") or db.geometry_4326(int(fid))
    return PreviewRequest(
        fid=int(fid),
        tile_id=str(row.get("tile_id")),
        backend_name=backend_name,
        process_graph=request.process_graph,
        job_options=request.job_options,
        volume=tile_volume(geometry, request.process_graph, limit),
    )


def choose_route(offers_sync: bool, volume: TileVolume, limit: SyncLimit) -> Route:
    """``POST /result`` when the backend offers it and the tile is within ``limit``, else a batch job."""
    if not offers_sync:
        return Route(BATCH, "the backend offers no synchronous processing (POST /result)")
    if volume.pixel_dates > limit.max_pixel_dates:
        return Route(
            BATCH,
            f"the tile is about {volume.pixel_dates:,} pixels x dates ({volume.pixels:,} pixels, {volume.dates} "
            f"dates), more than the {limit.max_pixel_dates:,} previewed synchronously",
        )
    return Route(SYNC, f"the tile is about {volume.pixel_dates:,} pixels x dates")


def is_size_refusal(exc: BaseException) -> bool:
    """Did ``POST /result`` refuse the request for its size or time (so a batch job may do it)?"""
    if isinstance(exc, (TimeoutError, requests.Timeout)):
        return True
    status, code = retry.status_and_code(exc)
    return code in SIZE_ERROR_CODES or status in (408, 413, 504)


def preview_path(output_dir: str | Path, tile_id: Any, when: Optional[dt.datetime] = None) -> Path:
    """A new file for a preview of ``tile_id``: ``<output>/preview/<tile_id>-<UTC time>.tif``.

    Never the name of an older preview: its layer may still be open (Windows refuses to replace an
    open file, and QGIS's GDAL connection pool may hand out the old file's data for the same path)."""
    stamp = (when or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%S%f")[:-3]
    name = check_safe_name(f"{tile_id}-{stamp}.tif", "tile id")
    return Path(output_dir) / PREVIEW_FOLDER / name


def remove_older_previews(path: Path, tile_id: Any) -> None:
    """Delete the earlier preview files of ``tile_id`` beside ``path`` (best effort: one still open
    elsewhere is left for next time)."""
    for older in path.parent.glob(glob.escape(str(tile_id)) + "-*.tif"):
        if older != path and older.name[len(str(tile_id)) + 1 :][:1].isdigit():
            try:
                older.unlink()
            except OSError:
                pass
