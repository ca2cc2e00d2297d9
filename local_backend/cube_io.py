"""The processes that touch data outside the process graph: ``load_collection`` (the synthetic
SENTINEL2_L2A) and ``save_result`` (GeoTIFF), and what a running job gives them (:class:`JobContext`).

Both count the job's volume (:mod:`.costs`). In a *dry run* (estimates, the size check of
``POST /result``) ``load_collection`` counts the full extent but hands the graph only a 2 x 2
pixel corner of it, and nothing is written: the same graph then runs in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import synthetic
from .costs import Volume
from .errors import JobError
from .extents import Grid, spatial_to_grid, temporal_interval
from .geotiff import WrittenAsset, write_geotiff

COLLECTION_ID = "SENTINEL2_L2A"
GTIFF_NAMES = {"gtiff", "geotiff", "tiff", "gtif", "tif"}
MAX_CUBE_VALUES = 100_000_000  # float32: 400 MB before intermediate copies
WORKING_COPIES = 3  # a cube, its masked copy and a reduction's buffers: the memory a job needs
DRY_RUN_PIXELS = 2  # per side


@dataclass
class JobContext:
    """What a running job's processes need from the backend."""

    job_id: str
    out_dir: Path | None
    pixel_size: float
    log: Callable[[str, str], None]  # (level, message)
    lookup_process: Callable[[str, str | None], dict]  # (process_id, namespace) -> definition; raises JobError
    dry_run: bool = False
    max_pixels: int = 0  # 0 = unlimited; more pixels (x * y) than this: executor memory exhausted
    outputs: list[tuple[Any, str, dict]] = field(default_factory=list)
    grid: Grid | None = None
    peak_bytes: int = 0
    volume: Volume = field(default_factory=Volume)


def load_collection_impl(ctx: JobContext) -> Callable:
    def load_collection(id, spatial_extent=None, temporal_extent=None, bands=None, properties=None, **_):  # noqa: A002
        import xarray as xr

        if id != COLLECTION_ID:
            raise JobError(f"Collection '{id}' does not exist.", "CollectionNotFound")
        grid = spatial_to_grid(spatial_extent, ctx.pixel_size)
        start, end = temporal_interval(temporal_extent)
        dates = synthetic.acquisition_dates(start, end)
        if not dates:
            raise JobError(
                f"No {COLLECTION_ID} acquisitions between {start} and {end} (one every {synthetic.REVISIT_DAYS} days).",
                "NoDataAvailable",
            )
        band_list = list(bands) if bands else list(synthetic.BANDS)
        unknown = [b for b in band_list if b not in synthetic.BANDS]
        if unknown:
            raise JobError(
                f"The value passed for parameter 'bands' in process 'load_collection' is invalid: "
                f"unknown bands {unknown}",
                "ProcessParameterInvalid",
            )
        nx, ny = grid.xs.size, grid.ys.size
        _check_size(nx, ny, len(dates), len(band_list))
        ctx.volume.add_load(nx * ny, len(dates), len(band_list))
        ctx.grid = grid
        if ctx.max_pixels and not ctx.dry_run and ctx.volume.pixels > ctx.max_pixels:
            _out_of_memory(ctx, len(dates), len(band_list))
        if properties:
            ctx.log("warning", "load_collection: 'properties' filters are ignored by the demo collection")
        xs, ys, inside = grid.xs, grid.ys, grid.inside
        if ctx.dry_run:
            xs, ys = xs[:DRY_RUN_PIXELS], ys[:DRY_RUN_PIXELS]
            inside = None if inside is None else inside[:DRY_RUN_PIXELS, :DRY_RUN_PIXELS]
        data = synthetic.generate(xs, ys, dates, band_list).astype(np.float32)
        if inside is not None:
            data[:, :, ~inside] = np.nan
        ctx.peak_bytes = max(ctx.peak_bytes, data.nbytes)
        ctx.log(
            "info",
            f"load_collection {COLLECTION_ID}: {len(dates)} dates x {len(band_list)} bands x "
            f"{ny} x {nx} pixels of {grid.res:g} m in EPSG:{grid.epsg}",
        )
        return xr.DataArray(
            data,
            dims=("t", "bands", "y", "x"),
            coords={
                "t": np.array([np.datetime64(d.isoformat(), "ns") for d in dates]),
                "bands": band_list,
                "y": ys,
                "x": xs,
            },
            attrs={"crs": grid.crs, "epsg": grid.epsg, "resolution": grid.res},
        )

    return load_collection


def _check_size(nx: int, ny: int, dates: int, bands: int) -> None:
    values = nx * ny * dates * bands
    if values > MAX_CUBE_VALUES:
        raise JobError(
            f"The request needs {values / 1e6:.0f} million values ({nx} x {ny} pixels x {dates} dates x {bands} "
            f"bands), more than the demo backend's {MAX_CUBE_VALUES / 1e6:.0f} million: use a smaller extent, "
            "a shorter period or fewer bands.",
            "ProcessParameterInvalid",
        )


def _out_of_memory(ctx: JobContext, dates: int, bands: int) -> None:
    """Fail as a real backend's job does when its executors run out of memory (logs included)."""
    per_pixel = dates * bands * 4 * WORKING_COPIES
    needed, limit = ctx.volume.pixels * per_pixel / 2**30, ctx.max_pixels * per_pixel / 2**30
    ctx.log(
        "warning",
        f"Lost executor 1: container killed by the cluster for exceeding memory limits. "
        f"{needed:.2f} GB of {limit:.2f} GB memory used.",
    )
    ctx.log("warning", "Task 0 in stage 1.0 failed 4 times; aborting job")
    raise JobError(
        f"Your batch job failed because the executors ran out of memory: it needs about {needed:.2f} GB for "
        f"{ctx.volume.pixels} pixels x {dates} dates x {bands} bands, over the executor memory limit of "
        f"{limit:.2f} GB (this backend allows {ctx.max_pixels} pixels per job). Use smaller tiles.",
        "OutOfMemory",
    )


def save_result_impl(ctx: JobContext) -> Callable:
    def save_result(data, format, options=None, **_):  # noqa: A002
        if str(format).lower() not in GTIFF_NAMES:
            raise JobError(f"Format '{format}' is not supported here; use GTiff.", "FormatUnsupported")
        if not any(existing is data for existing, _f, _o in ctx.outputs):
            ctx.outputs.append((data, "GTiff", dict(options or {})))
        return data

    return save_result


def write_cube(data: Any, ctx: JobContext, prefix: str) -> list[WrittenAsset]:
    """Write one saved cube as GeoTIFF(s), one per date if it still has a time dimension; in a
    dry run only count the bytes it would have (uncompressed)."""
    import xarray as xr

    if not isinstance(data, xr.DataArray):
        raise JobError(f"save_result needs a raster data cube, got {type(data).__name__}.", "ProcessParameterInvalid")
    dims = list(data.dims)
    if "x" not in dims or "y" not in dims:
        raise JobError(f"save_result needs x and y dimensions, the cube has {dims}.", "ProcessParameterInvalid")
    time_dim = next((d for d in dims if d in ("t", "time")), None)
    band_dim = next((d for d in dims if d in ("bands", "band", "b")), None)
    other = [d for d in dims if d not in ("x", "y", time_dim, band_dim)]
    if other:
        raise JobError(f"GTiff cannot hold the dimensions {other}; reduce them first.", "ProcessParameterInvalid")
    if ctx.dry_run:
        frames = data.sizes[time_dim] if time_dim else 1
        pixels = ctx.grid.xs.size * ctx.grid.ys.size if ctx.grid else data.sizes["x"] * data.sizes["y"]
        ctx.volume.output_bytes += frames * (data.sizes[band_dim] if band_dim else 1) * pixels * data.dtype.itemsize
        return []
    order = [d for d in (time_dim, band_dim, "y", "x") if d]
    data = data.transpose(*order)
    xs, ys = np.asarray(data["x"].values, dtype=float), np.asarray(data["y"].values, dtype=float)
    res = float(data.attrs.get("resolution") or (ctx.grid.res if ctx.grid else ctx.pixel_size))
    epsg = int(data.attrs.get("epsg") or (ctx.grid.epsg if ctx.grid else 4326))
    bounds = (xs.min() - res / 2, ys.min() - res / 2, xs.max() + res / 2, ys.max() + res / 2)
    bands = [str(b) for b in data[band_dim].values] if band_dim else ["band_1"]
    values = np.asarray(data.values)
    ctx.peak_bytes = max(ctx.peak_bytes, values.nbytes)
    if ys.size > 1 and ys[0] < ys[-1]:  # north up
        values = values[..., ::-1, :]
    if values.dtype == np.bool_:
        values = values.astype(np.uint8)
    assert ctx.out_dir is not None
    written = []
    if time_dim:
        for i, label in enumerate(data[time_dim].values):
            day = str(np.datetime_as_string(np.datetime64(label, "D")))
            frame = values[i] if band_dim else values[i][None]
            written.append(write_geotiff(ctx.out_dir / f"{prefix}_{day}Z.tif", frame, epsg, bounds, bands, day))
    else:
        frame = values if band_dim else values[None]
        written.append(write_geotiff(ctx.out_dir / f"{prefix}.tif", frame, epsg, bounds, bands))
    for asset in written:
        ctx.volume.output_bytes += int(np.prod(asset.shape)) * len(asset.bands) * values.dtype.itemsize
        ctx.log(
            "info", f"save_result: wrote {asset.name} ({asset.size} bytes, {asset.shape[1]}x{asset.shape[0]} pixels)"
        )
    return written
