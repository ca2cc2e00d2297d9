"""Checks of a process at job creation, so bad requests get an openEO error right away."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .cube_io import COLLECTION_ID, GTIFF_NAMES
from .engine import OWN_PROCESSES
from .errors import ApiError
from .extents import spatial_to_grid, temporal_interval

PROCESS_ID = re.compile(r"^\w+$")
PREDEFINED_NAMESPACES = (None, "backend", "predefined")


def _invalid(message: str) -> ApiError:
    return ApiError("ProcessGraphInvalid", f"Invalid process graph: {message}")


def validate_process(
    process: Any,
    known: set[str],
    user_udp_exists: Callable[[str], bool],
    own_namespace: Callable[[str], dict | None],
    pixel_size: float,
) -> None:
    """Raise :class:`ApiError` for a process the backend would certainly reject.

    ``own_namespace(url)`` returns the definition behind one of this backend's own namespace
    URLs (or None for foreign URLs, which are only fetched when the job runs)."""
    if not isinstance(process, dict) or "process_graph" not in process:
        raise ApiError("ProcessGraphMissing", "No valid process graph specified ('process.process_graph').")
    _check_graph(process["process_graph"], known, user_udp_exists, own_namespace, pixel_size, top=True)


def _check_graph(graph: Any, known, user_udp_exists, own_namespace, pixel_size, top: bool) -> None:
    if not isinstance(graph, dict) or not graph:
        raise _invalid("a process graph must be a non-empty object of nodes")
    results = [k for k, n in graph.items() if isinstance(n, dict) and n.get("result") is True]
    if len(results) != 1:
        raise _invalid(f'exactly one node must have "result": true, found {len(results)}')
    for node_id, node in graph.items():
        if not isinstance(node, dict):
            raise _invalid(f"node '{node_id}' is not an object")
        pid = node.get("process_id")
        if not isinstance(pid, str) or not PROCESS_ID.match(pid):
            raise _invalid(f"node '{node_id}' has no valid process_id")
        args = node.get("arguments", {})
        if not isinstance(args, dict):
            raise _invalid(f"the arguments of node '{node_id}' are not an object")
        namespace = node.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise _invalid(f"the namespace of node '{node_id}' is not a string")
        _check_refs(args, graph, node_id)
        for value in _callbacks(args):
            _check_graph(value, known, user_udp_exists, own_namespace, pixel_size, top=False)
        _check_process(pid, namespace, args, known, user_udp_exists, own_namespace, pixel_size)


def _callbacks(value: Any):
    if isinstance(value, dict):
        if isinstance(value.get("process_graph"), dict):
            yield value["process_graph"]
            return
        for v in value.values():
            yield from _callbacks(v)
    elif isinstance(value, list):
        for v in value:
            yield from _callbacks(v)


def _check_refs(value: Any, graph: dict, node_id: str) -> None:
    if isinstance(value, dict):
        if "process_graph" in value:
            return
        if set(value) == {"from_node"}:
            if value["from_node"] not in graph:
                raise _invalid(f"node '{node_id}' refers to unknown node '{value['from_node']}'")
            return
        for v in value.values():
            _check_refs(v, graph, node_id)
    elif isinstance(value, list):
        for v in value:
            _check_refs(v, graph, node_id)


def _is_param_ref(value: Any) -> bool:
    return isinstance(value, dict) and ("from_parameter" in value or "from_node" in value)


def _check_process(pid, namespace, args, known, user_udp_exists, own_namespace, pixel_size) -> None:
    if namespace in PREDEFINED_NAMESPACES:
        if pid not in known and pid not in OWN_PROCESSES and not user_udp_exists(pid):
            raise ApiError("ProcessUnsupported", f"Process '{pid}' is not available on this backend.")
    elif namespace == "user":
        if not user_udp_exists(pid):
            raise ApiError("ProcessUnsupported", f"User-defined process '{pid}' does not exist.")
    elif re.match(r"https?://", namespace):
        definition = own_namespace(namespace)
        if definition is not None:
            if definition.get("id") != pid:
                raise ApiError(
                    "ProcessUnsupported",
                    f"Process '{pid}' is not defined at namespace {namespace} (it defines '{definition.get('id')}').",
                )
            _check_extents(args, pid, pixel_size)
        return
    else:
        raise ApiError("ProcessUnsupported", f"Process '{pid}' in namespace '{namespace}' is not available.")
    if pid == "load_collection":
        cid = args.get("id")
        if isinstance(cid, str) and cid != COLLECTION_ID:
            raise ApiError("CollectionNotFound", f"Collection '{cid}' does not exist.")
        _check_extents(args, pid, pixel_size)
    elif pid == "save_result":
        fmt = args.get("format")
        if isinstance(fmt, str) and fmt.lower() not in GTIFF_NAMES:
            raise ApiError("FormatUnsupported", f"Format '{fmt}' is not supported; use GTiff.")


def _check_extents(args: dict, pid: str, pixel_size: float) -> None:
    spatial = args.get("spatial_extent")
    if spatial is not None and not _is_param_ref(spatial):
        spatial_to_grid(spatial, pixel_size, process=pid)
    temporal = args.get("temporal_extent")
    if temporal is not None and not _is_param_ref(temporal):
        temporal_interval(temporal, process=pid)
