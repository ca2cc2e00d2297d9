"""Process-graph execution: openeo-pg-parser-networkx walks the graph, openeo-processes-dask
implements the predefined processes; this module adds ``load_collection`` (the synthetic
SENTINEL2_L2A), ``save_result`` (GeoTIFF) and processes referenced by ``namespace``
(user-defined processes, remote process definitions), which the parser's registry cannot
look up by namespace: such nodes are rewritten to a per-job process id whose implementation
runs the definition's own graph with the node's arguments as parameters.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import synthetic
from .errors import ApiError, JobError
from .extents import Grid, spatial_to_grid, temporal_interval
from .geotiff import WrittenAsset, write_geotiff

log = logging.getLogger(__name__)

COLLECTION_ID = "SENTINEL2_L2A"
OWN_PROCESSES = ("load_collection", "save_result")
EXCLUDED = {"load_stac", "run_udf", "apply_neighborhood_intertwin"}  # need network or arbitrary code
GTIFF_NAMES = {"gtiff", "geotiff", "tiff", "gtif", "tif"}
MAX_UDP_DEPTH = 8
MAX_CUBE_VALUES = 100_000_000  # float32: 400 MB before intermediate copies

_base_lock = threading.Lock()
_base: dict[str, Any] | None = None
_specs: dict[str, dict] | None = None


def _load_base() -> None:
    """Import openeo-processes-dask once (about 3 s) and wrap its implementations."""
    global _base, _specs
    with _base_lock:
        if _base is not None:
            return
        logging.getLogger("openeo_processes_dask").setLevel(logging.ERROR)
        # Its specs module leaves ~150 JSON files open (json.load(open(path))); QGIS shows every
        # warning (qgis.utils sets simplefilter("default")), so they filled the Python warnings tab.
        warnings.filterwarnings("ignore", category=ResourceWarning, module=r"openeo_processes_dask\.specs")
        import openeo_processes_dask.specs as specs_module
        from openeo_pg_parser_networkx.process_registry import Process
        from openeo_processes_dask.process_implementations.core import process, standard_processes

        specs: dict[str, dict] = {}
        base: dict[str, Any] = {}
        for func in standard_processes:
            pid = func.__name__.strip("_")
            if pid in EXCLUDED:
                continue
            spec = getattr(specs_module, func.__name__, None) or getattr(specs_module, pid, None)
            if spec is None:
                continue
            base[pid] = Process(spec=spec, implementation=process(func))
            specs[pid] = spec
        for pid in OWN_PROCESSES:
            specs[pid] = copy.deepcopy(getattr(specs_module, pid))
        if "median" in base:
            base["median"] = Process(spec=specs["median"], implementation=process(_fast_median(base_median_impl())))
        _base, _specs = base, specs


def base_median_impl() -> Callable:
    from openeo_processes_dask.process_implementations.math import median

    return median


def _fast_median(fallback: Callable) -> Callable:
    """openeo-processes-dask's ``median`` with bottleneck's C ``nanmedian`` for in-memory float
    arrays (identical results, ~6x faster than numpy's masked-array path on a 19-date cube)."""
    try:
        import bottleneck
    except ImportError:
        return fallback

    def median(data, ignore_nodata=True, axis=None, keepdims=False):
        if ignore_nodata and not keepdims and isinstance(data, np.ndarray) and data.dtype.kind == "f":
            return bottleneck.nanmedian(data, axis=axis)
        return fallback(data, ignore_nodata=ignore_nodata, axis=axis, keepdims=keepdims)

    return median


def warm_up() -> None:
    """Load the engine in the background so the first job does not pay the import."""
    try:
        _load_base()
    except Exception:
        log.exception("loading openeo-processes-dask failed")


def process_specs() -> dict[str, dict]:
    _load_base()
    assert _specs is not None
    return _specs


def predefined_ids() -> set[str]:
    return set(process_specs())


@dataclass
class JobContext:
    """What a running job's processes need from the backend."""

    job_id: str
    user_id: str
    out_dir: Path
    pixel_size: float
    log: Callable[[str, str], None]  # (level, message)
    lookup_process: Callable[[str, str | None], dict]  # (process_id, namespace) -> definition; raises JobError
    outputs: list[tuple[Any, str, dict]] = field(default_factory=list)
    grid: Grid | None = None
    peak_bytes: int = 0


class _JobRegistry(Mapping):
    """The predefined processes plus this job's own (load_collection, save_result, namespaced)."""

    def __init__(self, extras: dict[str, Any]):
        assert _base is not None
        self._extras = extras

    def __getitem__(self, key: str) -> Any:
        if key in self._extras:
            return self._extras[key]
        if _base is not None and key in _base:
            return _base[key]
        raise JobError(f"Process '{key}' is not supported by this backend.", "ProcessUnsupported")

    def __iter__(self):
        return iter({**(_base or {}), **self._extras})

    def __len__(self) -> int:
        return len(_base or {}) + len(self._extras)


def _wrap(func: Callable) -> Any:
    from openeo_pg_parser_networkx.process_registry import Process
    from openeo_processes_dask.process_implementations.core import process

    return Process(spec={}, implementation=process(func))


def _load_collection_impl(ctx: JobContext) -> Callable:
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
        values = grid.xs.size * grid.ys.size * len(dates) * len(band_list)
        if values > MAX_CUBE_VALUES:
            raise JobError(
                f"The request needs {values / 1e6:.0f} million values ({grid.xs.size} x {grid.ys.size} pixels x "
                f"{len(dates)} dates x {len(band_list)} bands), more than the demo backend's "
                f"{MAX_CUBE_VALUES / 1e6:.0f} million: use a smaller extent, a shorter period or fewer bands.",
                "ProcessParameterInvalid",
            )
        if properties:
            ctx.log("warning", "load_collection: 'properties' filters are ignored by the demo collection")
        data = synthetic.generate(grid.xs, grid.ys, dates, band_list).astype(np.float32)
        if grid.inside is not None:
            data[:, :, ~grid.inside] = np.nan
        ctx.peak_bytes = max(ctx.peak_bytes, data.nbytes)
        ctx.grid = grid
        ctx.log(
            "info",
            f"load_collection {COLLECTION_ID}: {len(dates)} dates x {len(band_list)} bands x "
            f"{grid.ys.size} x {grid.xs.size} pixels of {grid.res:g} m in EPSG:{grid.epsg}",
        )
        return xr.DataArray(
            data,
            dims=("t", "bands", "y", "x"),
            coords={
                "t": np.array([np.datetime64(d.isoformat(), "ns") for d in dates]),
                "bands": band_list,
                "y": grid.ys,
                "x": grid.xs,
            },
            attrs={"crs": grid.crs, "epsg": grid.epsg, "resolution": grid.res},
        )

    return load_collection


def _save_result_impl(ctx: JobContext) -> Callable:
    def save_result(data, format, options=None, **_):  # noqa: A002
        if str(format).lower() not in GTIFF_NAMES:
            raise JobError(f"Format '{format}' is not supported here; use GTiff.", "FormatUnsupported")
        if not any(existing is data for existing, _f, _o in ctx.outputs):
            ctx.outputs.append((data, "GTiff", dict(options or {})))
        return data

    return save_result


def _udp_impl(flat_graph: dict, definition: dict, registry_ref: list) -> Callable:
    from openeo_pg_parser_networkx import OpenEOProcessGraph

    params = definition.get("parameters") or []
    defaults = {p["name"]: p["default"] for p in params if "default" in p}
    required = [p["name"] for p in params if "default" not in p and not p.get("optional")]
    pid = definition.get("id", "?")

    def run_udp(**kwargs):
        missing = [name for name in required if name not in kwargs]
        if missing:
            raise JobError(f"Process '{pid}' misses required parameters {missing}.", "ProcessParameterMissing")
        values = {**defaults, **kwargs}
        graph = OpenEOProcessGraph({"process_graph": copy.deepcopy(flat_graph)})
        return graph.to_callable(registry_ref[0], parameters=values)(named_parameters=values)

    return run_udp


def _rewrite(flat: dict, ctx: JobContext, extras: dict, registry_ref: list, depth: int) -> dict:
    """Copy of a flat graph where namespaced / user-defined process nodes point to per-job ids."""
    if depth > MAX_UDP_DEPTH:
        raise JobError("User-defined processes nest too deep (a cycle?).", "ProcessGraphInvalid")
    assert _base is not None
    out = {}
    for node_id, node in flat.items():
        node = dict(node)
        node["arguments"] = {
            k: _rewrite_arg(v, ctx, extras, registry_ref, depth) for k, v in (node.get("arguments") or {}).items()
        }
        pid, namespace = node["process_id"], node.get("namespace")
        custom_ns = namespace not in (None, "backend", "predefined")
        if custom_ns or (pid not in _base and pid not in OWN_PROCESSES):
            definition = ctx.lookup_process(pid, namespace)
            inner = definition.get("process_graph")
            if not isinstance(inner, dict) or not inner:
                raise JobError(f"Process '{pid}' has no process graph.", "ProcessGraphInvalid")
            key = f"udp{len(extras)}x{pid}"
            extras[key] = None  # reserve the name before recursing
            rewritten = _rewrite(inner, ctx, extras, registry_ref, depth + 1)
            extras[key] = _wrap(_udp_impl(rewritten, definition, registry_ref))
            node["process_id"] = key
            node.pop("namespace", None)
        out[node_id] = node
    return out


def _rewrite_arg(value: Any, ctx: JobContext, extras: dict, registry_ref: list, depth: int) -> Any:
    if isinstance(value, dict):
        if isinstance(value.get("process_graph"), dict):
            return {**value, "process_graph": _rewrite(value["process_graph"], ctx, extras, registry_ref, depth)}
        return {k: _rewrite_arg(v, ctx, extras, registry_ref, depth) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_arg(v, ctx, extras, registry_ref, depth) for v in value]
    return value


def execute(process: dict, ctx: JobContext) -> list[WrittenAsset]:
    """Run a job's process (``{"process_graph": {...}}``) and write its saved results."""
    from openeo_pg_parser_networkx import OpenEOProcessGraph

    _load_base()
    flat = process.get("process_graph") if isinstance(process, dict) else None
    if not isinstance(flat, dict) or not flat:
        raise JobError("The job has no process graph.", "ProcessGraphMissing")
    extras: dict[str, Any] = {
        "load_collection": _wrap(_load_collection_impl(ctx)),
        "save_result": _wrap(_save_result_impl(ctx)),
    }
    registry_ref: list = [None]
    try:
        rewritten = _rewrite(flat, ctx, extras, registry_ref, 0)
        registry_ref[0] = _JobRegistry(extras)
        graph = OpenEOProcessGraph({"process_graph": rewritten})
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = graph.to_callable(registry_ref[0], parameters={})(named_parameters={})
            if not ctx.outputs:
                ctx.log("info", "The process graph has no save_result: saving its result as GTiff")
                _save_result_impl(ctx)(result, "GTiff")
            assets: list[WrittenAsset] = []
            for i, (data, _fmt, _options) in enumerate(ctx.outputs):
                assets += _write_cube(data, ctx, prefix="openEO" if i == 0 else f"openEO_{i}")
    except (JobError, ApiError):
        raise
    except Exception as exc:
        raise JobError(f"{type(exc).__name__}: {exc}", _error_code(exc)) from exc
    return assets


def _error_code(exc: Exception) -> str:
    name = type(exc).__name__
    if "Parameter" in name or name in ("DimensionNotAvailable", "BandFilterParameterMissing"):
        return "ProcessParameterInvalid"
    if name == "ValidationError":
        return "ProcessGraphInvalid"
    return "Internal"


def _write_cube(data: Any, ctx: JobContext, prefix: str) -> list[WrittenAsset]:
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
        ctx.log(
            "info", f"save_result: wrote {asset.name} ({asset.size} bytes, {asset.shape[1]}x{asset.shape[0]} pixels)"
        )
    return written


def load_definition(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
