"""The one loop that drives a run, shared by the panel's QgsTask, Processing, the demo, scripts and tests.

:func:`drive` calls ``Scheduler.step()`` at a steady cadence (a round that has nothing due
sends no request: the backends' polling policies decide when they are asked), asks
``should_stop()`` every :data:`TICK` seconds (also while a round is in flight: the round runs
in a helper thread, so a round stuck in a slow HTTP request cannot hold a cancel beyond one
second), collects the tiles whose results were downloaded, and keeps an optional mosaic up to
date (any object with ``add``, ``dirty`` and ``build``, e.g. ``gis.mosaic.MosaicBuilder``).
Whatever the caller does with the reports (signals, Processing feedback) is in the
``on_round`` / ``on_results`` / ``on_mosaic`` callbacks, which run in the calling thread.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

from . import statuses
from .downloads import DOWNLOADED, is_raster_result

_log = logging.getLogger(__name__)

#: How often ``should_stop`` is asked (seconds).
TICK = 0.05
#: Default seconds between the starts of two rounds.
DEFAULT_INTERVAL = 1.0
#: Default seconds between two rebuilds of the VRT mosaic while tiles keep finishing.
MOSAIC_INTERVAL = 2.0

OUTCOME_DONE = "done"
OUTCOME_STOPPED = "stopped"
OUTCOME_FAILED = "failed"


class ResultMosaic(Protocol):
    """What :func:`drive` needs of a mosaic kept up to date during a run."""

    dirty: bool

    def add(self, paths: Iterable[str]) -> None: ...

    def build(self) -> list[Path]: ...


@dataclass
class DriveResult:
    outcome: str  # OUTCOME_*
    rounds: int = 0
    last_report: Any = None
    results: dict[Any, list[str]] = field(default_factory=dict)  # tile id -> raster files
    mosaic: list[Path] = field(default_factory=list)
    error: Optional[str] = None
    remote_canceled: int = 0


def downloaded_results(db: Any, tile_ids: Optional[Sequence[Any]] = None) -> dict[Any, list[str]]:
    """Raster files of tiles whose results are downloaded: ``{tile_id: [path, ...]}``.

    ``tile_ids=None`` reads every downloaded tile (used when a run is reopened).
    """
    columns = ["tile_id", "result_files", "result_status"]
    if tile_ids is None:
        rows = [
            r for r in db.get_by_status([statuses.FINISHED], columns=columns) if r.get("result_status") == DOWNLOADED
        ]
    else:
        rows = [db.get_by_tile_id(str(t), columns=columns) for t in tile_ids]
    out: dict[Any, list[str]] = {}
    for row in rows:
        if not row or row.get("result_status") != DOWNLOADED:
            continue
        files = [str(p) for p in (row.get("result_files") or []) if is_raster_result(p)]
        if files:
            out[row["tile_id"]] = files
    return out


def cancel_remote_jobs(scheduler: Any, timeout: float = 10.0) -> int:
    """Ask the backends to cancel this run's jobs that are still alive there (see ``Scheduler.cancel_remote_jobs``)."""
    return scheduler.cancel_remote_jobs(timeout=timeout)


def drive(
    scheduler: Any,
    should_stop: Callable[[], bool],
    *,
    interval: float = DEFAULT_INTERVAL,
    on_round: Optional[Callable[[Any], None]] = None,
    on_results: Optional[Callable[[dict[Any, list[str]]], None]] = None,
    mosaic: Optional[ResultMosaic] = None,
    on_mosaic: Optional[Callable[[list[Path]], None]] = None,
    mosaic_interval: float = MOSAIC_INTERVAL,
    include_existing_results: bool = True,
    until_done: bool = True,
    cancel_remote_on_stop: bool | Callable[[], bool] = False,
) -> DriveResult:
    """Run rounds until the run is done (``until_done``) or ``should_stop()`` says so.

    On stop the scheduler is stopped (downloads abandoned as ``.part``, picked up again on the
    next start); jobs keep running on their backends unless ``cancel_remote_on_stop`` (a bool, or
    a callable asked once the loop has stopped, so a cancel button can decide late).
    """
    result = DriveResult(outcome=OUTCOME_STOPPED)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="openeo-tile-jobs-round")
    last_mosaic = 0.0

    def deliver(found: dict[Any, list[str]]) -> None:
        if not found:
            return
        result.results.update(found)
        if on_results is not None:
            on_results(found)
        if mosaic is not None:
            mosaic.add(p for files in found.values() for p in files)

    def refresh_mosaic(force: bool = False) -> None:
        nonlocal last_mosaic
        if mosaic is None or not mosaic.dirty:
            return
        if not force and time.monotonic() - last_mosaic < mosaic_interval:
            return
        try:
            result.mosaic = mosaic.build()
        except Exception as exc:  # noqa: BLE001 (the run goes on; the next build tries again)
            _log.warning("Could not rebuild the result mosaic: %s", exc)
            return
        last_mosaic = time.monotonic()
        if on_mosaic is not None:
            on_mosaic(result.mosaic)

    try:
        if include_existing_results:
            deliver(downloaded_results(scheduler.db))
            refresh_mosaic(force=True)
        while not should_stop():
            started = time.monotonic()
            future = executor.submit(scheduler.step)
            while not future.done():
                if should_stop():
                    break
                concurrent.futures.wait([future], timeout=TICK)
            if not future.done():
                break  # canceled during a round: do not wait for it (the scheduler is stopped below)
            report = future.result()
            result.rounds += 1
            result.last_report = report
            if on_round is not None:
                on_round(report)
            downloaded = report.result_changes.get(DOWNLOADED) if report.result_changes else None
            if downloaded:
                deliver(downloaded_results(scheduler.db, downloaded))
            refresh_mosaic(force=report.done)
            if until_done and report.done:
                result.outcome = OUTCOME_DONE
                break
            if until_done and report.stalled:
                break  # nothing can progress (e.g. the process cannot be read): stopped, with report.blocked
            # The next round at the usual cadence, or earlier when a backend's check falls due before.
            due = getattr(scheduler, "seconds_until_next_check", lambda: None)()
            pause = interval if due is None else min(interval, max(0.0, due))
            while time.monotonic() - started < pause and not should_stop():
                time.sleep(TICK)
    except Exception as exc:  # noqa: BLE001 (reported to the caller, who shows it)
        _log.exception("The run loop failed")
        result.outcome = OUTCOME_FAILED
        result.error = str(exc)
    finally:
        # Stops the download workers too; a new Scheduler on the same file resumes the run.
        scheduler.stop(timeout=0.5)
        try:
            scheduler.save_learned()
        except Exception as exc:  # noqa: BLE001 (what was learned only saves requests next time)
            _log.warning("Could not save the polling state: %s", exc)
        refresh_mosaic(force=True)
        executor.shutdown(wait=False)
    wanted = cancel_remote_on_stop() if callable(cancel_remote_on_stop) else cancel_remote_on_stop
    if result.outcome == OUTCOME_STOPPED and wanted:
        result.remote_canceled = cancel_remote_jobs(scheduler)
    return result
