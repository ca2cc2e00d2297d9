"""One computation of a process graph, as a picklable request and answer, so that it can run in a
worker process: :func:`run` takes a :class:`Work` and returns an :class:`Outcome` (the job's
log entries, assets, volume and CPU time) and never raises for the job's own errors.

Process definitions the graph refers to by namespace or as user-defined processes are looked
up in the backend process before (:func:`resolve_definitions`): a worker needs neither the job
store nor the network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import engine
from .costs import Volume
from .cube_io import JobContext
from .errors import ApiError, JobError
from .geotiff import WrittenAsset

LEVELS = ("debug", "info", "warning", "error")
Lookup = Callable[[str, "str | None"], dict]  # (process_id, namespace) -> definition; raises JobError


@dataclass
class Work:
    job_id: str
    process: dict
    pixel_size: float
    definitions: dict[tuple[str, str | None], dict]
    out_dir: Path | None = None  # None: a dry run
    log_level: str = "info"
    max_pixels: int = 0

    @property
    def dry_run(self) -> bool:
        return self.out_dir is None


@dataclass
class Outcome:
    assets: list[WrittenAsset] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message)
    error: tuple[str, str] | None = None  # (message, openEO error code)
    cpu: float = 0.0  # seconds
    peak_bytes: int = 0
    volume: Volume = field(default_factory=Volume)
    lonlat_bbox: list[float] | None = None


def level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 1


def run(work: Work) -> Outcome:
    """Compute ``work`` (in a worker process or thread) and describe what happened."""
    clock = time.process_time if threading.current_thread() is threading.main_thread() else time.thread_time
    cpu0 = clock()
    outcome = Outcome()
    minimum = level_rank(work.log_level)

    def log(level: str, message: str) -> None:
        if level_rank(level) >= minimum:
            outcome.logs.append((level, message))

    def lookup(process_id: str, namespace: str | None) -> dict:
        if (process_id, namespace) not in work.definitions:
            raise JobError(f"Process '{process_id}' is not available on this backend.", "ProcessUnsupported")
        return work.definitions[(process_id, namespace)]

    ctx = JobContext(work.job_id, work.out_dir, work.pixel_size, log, lookup, work.dry_run, work.max_pixels)
    try:
        outcome.assets = engine.execute(work.process, ctx)
    except (JobError, ApiError) as exc:
        outcome.error = (str(getattr(exc, "message", exc)), exc.code)
    except Exception as exc:  # noqa: BLE001 - a bug or a library error fails the job, not the worker
        outcome.error = (f"{type(exc).__name__}: {exc}", "Internal")
    outcome.cpu = round(clock() - cpu0, 3)
    outcome.peak_bytes, outcome.volume = ctx.peak_bytes, ctx.volume
    if ctx.grid is not None:
        outcome.lonlat_bbox = [round(v, 7) for v in ctx.grid.lonlat_bbox]
    return outcome


def resolve_definitions(process: Any, lookup: Lookup) -> dict[tuple[str, str | None], dict]:
    """Every definition the graph needs that the engine does not know, by (process_id, namespace),
    found with ``lookup`` (raises JobError like the job would)."""
    known = engine.predefined_ids()
    found: dict[tuple[str, str | None], dict] = {}

    def walk(value: Any, depth: int) -> None:
        if depth > engine.MAX_UDP_DEPTH:
            raise JobError("User-defined processes nest too deep (a cycle?).", "ProcessGraphInvalid")
        if isinstance(value, list):
            for item in value:
                walk(item, depth)
        if not isinstance(value, dict):
            return
        if isinstance(value.get("process_graph"), dict):
            for node in value["process_graph"].values():
                visit(node, depth)
            return
        for item in value.values():
            walk(item, depth)

    def visit(node: Any, depth: int) -> None:
        if not isinstance(node, dict):
            return
        walk(node.get("arguments") or {}, depth)
        pid, namespace = node.get("process_id"), node.get("namespace")
        custom = namespace not in (None, "backend", "predefined")
        if isinstance(pid, str) and (custom or pid not in known) and (pid, namespace) not in found:
            found[(pid, namespace)] = definition = lookup(pid, namespace)
            walk({"process_graph": definition.get("process_graph") or {}}, depth + 1)

    walk(process if isinstance(process, dict) else {}, 0)
    return found


def dry_run(process: dict, pixel_size: float, definitions: dict[tuple[str, str | None], dict]) -> Outcome:
    """What the process would load and save, from a run on a few pixels (no files written)."""
    return run(Work("dry-run", process, pixel_size, definitions))
