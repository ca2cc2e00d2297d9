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
from pathlib import Path
from typing import Any

import numpy as np

from .cube_io import JobContext, load_collection_impl, save_result_impl, write_cube
from .errors import ApiError, JobError
from .geotiff import WrittenAsset

log = logging.getLogger(__name__)
# Quiet before anything imports it (worker processes preload it): it warns about optional extras.
logging.getLogger("openeo_processes_dask").setLevel(logging.ERROR)

OWN_PROCESSES = ("load_collection", "save_result")
EXCLUDED = {"load_stac", "run_udf", "apply_neighborhood_intertwin"}  # need network or arbitrary code
MAX_UDP_DEPTH = 8
#: The official openeo-processes definitions (2.x, the version the openEO API 1.2 goes with), as
#: the reference backend framework openeo-driver 0.136 ships them (Apache-2.0, see specs/); the
#: copies bundled with openeo-processes-dask are a fork that differs for a few processes.
OFFICIAL_SPECS = Path(__file__).resolve().parent / "specs" / "openeo-processes-2.x.json"

_base_lock = threading.Lock()
_base: dict[str, Any] | None = None
_specs: dict[str, dict] | None = None


def _load_base() -> None:
    """Import openeo-processes-dask once (about 3 s) and wrap its implementations."""
    global _base, _specs
    with _base_lock:
        if _base is not None:
            return
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
            specs[pid] = getattr(specs_module, pid)
        official = json.loads(OFFICIAL_SPECS.read_text(encoding="utf-8"))
        specs = {pid: official.get(pid, spec) for pid, spec in specs.items()}  # served; dask's run the graph
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
    """The process descriptions ``GET /processes`` serves: the official ones where they exist."""
    _load_base()
    assert _specs is not None
    return _specs


def predefined_ids() -> set[str]:
    return set(process_specs())


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
        "load_collection": _wrap(load_collection_impl(ctx)),
        "save_result": _wrap(save_result_impl(ctx)),
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
                save_result_impl(ctx)(result, "GTiff")
            assets: list[WrittenAsset] = []
            for i, (data, _fmt, _options) in enumerate(ctx.outputs):
                assets += write_cube(data, ctx, prefix="openEO" if i == 0 else f"openEO_{i}")
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


def load_definition(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
