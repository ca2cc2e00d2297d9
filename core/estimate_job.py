"""Asking before Start what a run will cost: the backend's estimate, or a pilot tile.

:func:`request_estimate` picks the typical tile (:func:`core.estimate.typical_tile`) of the
tiles not started yet and, when the run's first backend lists ``GET /jobs/{job_id}/estimate``
among its endpoints, creates that tile's job (:meth:`core.scheduler.Scheduler.create_job`,
recorded like any start, never started here) and asks for its estimate. The tile stays
``created`` with that job id, and the engine starts exactly that job when the run starts: the
job made for the estimate is the tile's job, nothing is made twice. Without the endpoint no
job is made; the caller offers a *pilot* instead: the typical tile run alone
(``Scheduler.only_fids``), then :func:`pilot_estimate` scales what it was billed and took.

Blocking (HTTP and database): never on QGIS's main thread. ``feedback`` is anything with
``pushInfo(str)`` (a ``QgsProcessingFeedback``, the demo's printer), or None.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Protocol

import numpy as np
import shapely

from . import statuses
from .estimate import (
    SOURCE_BACKEND,
    SOURCE_PILOT,
    FinishedTile,
    RunEstimate,
    TileFigures,
    describe,
    extrapolate,
    parse_backend_estimate,
    parse_seconds,
    refine,
    typical_tile,
)

_log = logging.getLogger(__name__)

#: The openEO API endpoint of a job's estimate, as backends list it in ``GET /``.
ESTIMATE_ENDPOINT = "/jobs/{job_id}/estimate"


class Feedback(Protocol):
    """Where progress lines go (``QgsProcessingFeedback`` has this method)."""

    def pushInfo(self, info: str) -> None: ...


@dataclass(frozen=True)
class EstimateOutcome:
    """What :func:`request_estimate` found: an estimate, or why there is none (then: a pilot)."""

    fid: int  # the typical tile
    tile_id: str
    estimate: Optional[RunEstimate] = None
    reason: str = ""


def tile_areas(db: Any, status: Optional[str] = statuses.NOT_STARTED) -> dict[int, float]:
    """Area (square units of the tiling CRS) of the tiles in ``status`` (None: every tile), by fid."""
    rows = db.get_by_status([status], columns=["tile_id"]) if status else db.all_rows(columns=["tile_id"])
    geoms = db.geometries(int(r["fid"]) for r in rows)
    keys = list(geoms)
    areas = shapely.area(np.array([geoms[k] for k in keys], dtype=object)) if keys else []
    return {k: float(a) for k, a in zip(keys, areas)}


def parallel_of(scheduler: Any) -> int:
    """Jobs at a time over the run's backends (what the estimate assumes)."""
    return max(1, sum(int(b.profile.parallel_jobs) for b in scheduler.backends))


def offers_estimate(connection: Any) -> bool:
    """The backend lists ``GET /jobs/{job_id}/estimate`` in its capabilities."""
    try:
        return bool(connection.capabilities().supports_endpoint(ESTIMATE_ENDPOINT, method="GET"))
    except Exception as exc:  # noqa: BLE001 (no capabilities: no estimate; the pilot remains)
        _log.info("Cannot read the backend's capabilities: %s", exc)
        return False


def _say(feedback: Optional[Feedback], text: str) -> None:
    _log.info(text)
    if feedback is not None:
        feedback.pushInfo(text)


def request_estimate(scheduler: Any, feedback: Optional[Feedback] = None) -> EstimateOutcome:
    """The backend's estimate for the run's tiles not started yet (see the module docstring).

    Raises ``RuntimeError`` when no tile waits to start or the backend cannot be reached.
    """
    areas = tile_areas(scheduler.db)
    if not areas:
        raise RuntimeError("No tile is waiting to start: there is nothing to estimate.")
    fid = typical_tile(areas)
    tile_id = str((scheduler.db.get(fid, columns=["tile_id"]) or {}).get("tile_id", fid))
    backend = scheduler.first_backend()
    if not offers_estimate(backend.connection):
        reason = f"{backend.name} offers no estimate (GET {ESTIMATE_ENDPOINT})"
        _say(feedback, f"{reason}: a pilot run of tile {tile_id} can measure one.")
        return EstimateOutcome(fid, tile_id, reason=reason)
    backend, job_id = scheduler.create_job(fid)
    _say(feedback, f"Asking {backend.name} for an estimate of tile {tile_id} (job {job_id}, started with the run).")
    try:
        body = backend.connection.job(job_id).estimate()
    except Exception as exc:  # noqa: BLE001 (the job stays the tile's; a pilot can still measure)
        reason = f"{backend.name} could not estimate job {job_id}: {exc}"
        _say(feedback, reason)
        return EstimateOutcome(fid, tile_id, reason=reason)
    figures = parse_backend_estimate(body if isinstance(body, Mapping) else {})
    estimate = extrapolate(
        figures,
        areas[fid],
        list(areas.values()),
        parallel_of(scheduler),
        source=SOURCE_BACKEND,
        basis=tile_id,
        job_id=job_id,
    )
    _say(feedback, f"Estimate: {describe(estimate)}.")
    return EstimateOutcome(fid, tile_id, estimate=estimate)


def pilot_estimate(db: Any, fid: int, seconds: float, parallel: int) -> Optional[RunEstimate]:
    """The run's estimate from its pilot tile ``fid`` (finished, billed) that took ``seconds``.

    It covers the pilot tile and the tiles not started yet; None when the pilot did not finish.
    """
    row = db.get(fid, columns=["tile_id", "status", "costs", "id"])
    if row is None or row.get("status") != statuses.FINISHED:
        return None
    areas = tile_areas(db)
    pilot_area = tile_areas(db, statuses.FINISHED).get(int(fid))
    if not pilot_area:
        return None
    costs = row.get("costs")
    figures = TileFigures(float(costs) if costs is not None else None, float(seconds))
    return extrapolate(
        figures,
        pilot_area,
        [pilot_area, *areas.values()],
        parallel,
        source=SOURCE_PILOT,
        basis=str(row["tile_id"]),
        job_id=row.get("id"),
    )


def refined_estimate(db: Any, areas: Mapping[int, float], time_left: Optional[float], parallel: int) -> RunEstimate:
    """The run's estimate from its finished tiles now (``areas``: every tile's, from :func:`tile_areas`)."""
    rows = db.all_rows(columns=["status", "costs", "duration"])
    finished, remaining, billed = [], [], 0.0
    for row in rows:
        area = areas.get(int(row["fid"]), 0.0)
        if row.get("costs") is not None:
            billed += float(row["costs"])
        if row["status"] == statuses.FINISHED:
            costs = row.get("costs")
            finished.append(
                FinishedTile(area, float(costs) if costs is not None else None, parse_seconds(row.get("duration")))
            )
        elif row["status"] not in statuses.FINAL_STATUSES:
            remaining.append(area)
    return refine(finished, billed, remaining, time_left, parallel)
