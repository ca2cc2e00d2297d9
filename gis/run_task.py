"""A run as a QgsTask: the engine's rounds off the main thread, its events as Qt signals.

``run()`` (worker thread) only calls :func:`core.run_loop.drive`; it never touches a layer or a
widget. Engine events reach the main thread through the task's signals: the task object
lives in the main thread, so Qt queues every emission from the worker. Cancel (the task
manager's button, or :meth:`RunTask.cancel`) stops the engine and ends ``run()`` within a
second; jobs keep running on their backends unless ``cancel_remote_jobs`` was asked for.

QGIS's task manager deletes a task once it has finished, so :data:`RUNNING` keeps a Python
reference to every task until then, and results stay in plain attributes
(:attr:`RunTask.result`) that the ``runEnded`` signal hands over.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.downloads import DOWNLOADING, FAILED, PENDING
from ..core.events import ENGINE_EVENTS, EngineListener, Progress
from ..core.run_loop import DEFAULT_INTERVAL, OUTCOME_FAILED, OUTCOME_STOPPED, DriveResult, drive
from .mosaic import MosaicBuilder

_log = logging.getLogger(__name__)

#: Tasks handed to the task manager and not finished yet (the manager deletes finished ones).
RUNNING: set[RunTask] = set()


class _Relay(EngineListener):
    """Engine listener (called in the worker thread) that re-emits every event as the task's signal."""

    def __init__(self, task: RunTask) -> None:
        for method, (signal, _types) in ENGINE_EVENTS.items():
            setattr(self, method, getattr(task, signal).emit)


def engine_signals(namespace: dict[str, Any]) -> None:
    """Declare one Qt signal per engine event (:data:`core.events.ENGINE_EVENTS`) in a class body."""
    for signal, types in ENGINE_EVENTS.values():
        namespace[signal] = pyqtSignal(*types)


def relay_engine_signals(source: Any, target: Any) -> None:
    """Connect each engine signal of ``source`` to the same-named signal of ``target``."""
    for signal, _types in ENGINE_EVENTS.values():
        getattr(source, signal).connect(getattr(target, signal).emit)


def describe(name: str, progress: Optional[Progress]) -> str:
    """The task manager's line: what is happening, in a few words."""
    if progress is None or not progress.total:
        return f"openEO run {name}: starting"
    parts = [f"{progress.done}/{progress.total} tiles done"]
    if progress.with_jobs:
        parts.append(f"{progress.with_jobs} jobs on backends")
    downloading = sum(progress.downloads.get(s, 0) for s in (PENDING, DOWNLOADING))
    if downloading:
        parts.append(f"{downloading} downloading")
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    if progress.downloads.get(FAILED):
        parts.append(f"{progress.downloads[FAILED]} results not downloaded")
    return f"openEO run {name}: " + ", ".join(parts)


class RunTask(QgsTask):
    """Drives one run's :class:`core.scheduler.Scheduler` until it is done or canceled.

    Signals (all delivered on the main thread):

    * ``statusChanged(StatusChange)``, ``resultStatusChanged(StatusChange)``,
      ``progressReported(Progress)``, ``costsChanged(float, dict)``, ``logLine(LogLine)``,
      ``needsSignIn(str backend, str reason)``, ``backendStateChanged(str, str, str)``:
      the engine's events, unchanged;
    * ``resultsReady(dict)``: ``{tile_id: [raster paths]}`` of newly downloaded tiles
      (and, at start, of tiles downloaded before: a resumed run shows them again);
    * ``mosaicUpdated(list)``: the VRT files after a rebuild (when a mosaic is kept);
    * ``runEnded(str outcome, object DriveResult)`` once, after ``run()`` returned.
    """

    engine_signals(locals())  # statusChanged, progressReported, costsChanged, ... (core.events.ENGINE_EVENTS)
    resultsReady = pyqtSignal(object)
    mosaicUpdated = pyqtSignal(object)
    runEnded = pyqtSignal(str, object)
    _describe = pyqtSignal(str)

    def __init__(
        self,
        scheduler: Any,
        name: str = "",
        *,
        interval: float = DEFAULT_INTERVAL,
        mosaic: Optional[MosaicBuilder] = None,
        cancel_remote_jobs: bool = False,
        until_done: bool = True,
        open_result_layers: bool = False,
    ) -> None:
        self.run_name = name or Path(str(getattr(scheduler.db, "path", "run"))).stem
        # CancelWithoutPrompt (QGIS >= 3.26): QGIS quits during a run without asking to cancel it first.
        flags = QgsTask.Flag.CanCancel | getattr(QgsTask.Flag, "CancelWithoutPrompt", QgsTask.Flag.CanCancel)
        super().__init__(describe(self.run_name, None), flags)
        self.scheduler = scheduler
        self.interval = interval
        self.mosaic = mosaic
        self.cancel_remote_jobs = cancel_remote_jobs
        self.until_done = until_done
        self.result: Optional[DriveResult] = None
        #: Open each new result raster as a layer in the worker (the session shows them as layers);
        #: they wait here by normalised path for ``ResultLayers.add_results(opened=)``.
        self.open_result_layers = open_result_layers
        self.opened_layers: dict[str, Any] = {}
        self._relay = _Relay(self)
        self._describe.connect(self.setDescription)  # queued: the description is set on the main thread

    # worker thread ---------------------------------------------------------------------------
    def run(self) -> bool:
        self.scheduler.subscribe(self._relay)
        try:
            self.result = drive(
                self.scheduler,
                self.isCanceled,
                interval=self.interval,
                on_round=self._on_round,
                on_results=self._results_ready,
                mosaic=self.mosaic,
                on_mosaic=self.mosaicUpdated.emit,
                until_done=self.until_done,
                cancel_remote_on_stop=lambda: self.cancel_remote_jobs,
            )
        except Exception as exc:  # noqa: BLE001 (drive() catches everything; belt and braces)
            self.result = DriveResult(outcome=OUTCOME_FAILED, error=str(exc))
        finally:
            self.scheduler.unsubscribe(self._relay)
        # A stop is not a failure: returning False would make QGIS announce "Task failed".
        return self.result.outcome != OUTCOME_FAILED

    def _results_ready(self, results: dict[Any, list[str]]) -> None:
        """Worker thread: open the new rasters here (not on QGIS's main thread), then announce them."""
        from qgis.PyQt.QtCore import QCoreApplication

        from .mosaic import is_raster_result
        from .result_layers import open_result_layer, result_key

        if self.open_result_layers:
            main = QCoreApplication.instance().thread()
            for paths in results.values():
                for path in paths:
                    if is_raster_result(path) and result_key(path) not in self.opened_layers:
                        layer = open_result_layer(path)
                        if layer is not None:
                            layer.moveToThread(main)
                            self.opened_layers[result_key(path)] = layer
        self.resultsReady.emit(results)

    def _on_round(self, report: Any) -> None:
        progress = report.progress
        if progress is None or not progress.total:
            return
        self.setProgress(100.0 * progress.done / progress.total)
        self._describe.emit(describe(self.run_name, progress))

    # main thread -----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the run within a second (the engine stops first, so no new round starts)."""
        self.scheduler.stop(timeout=0.0)
        super().cancel()

    def finished(self, ok: bool) -> None:
        RUNNING.discard(self)
        if self.result is None:  # canceled before it started, or the task manager dropped it
            outcome = OUTCOME_STOPPED if self.isCanceled() else OUTCOME_FAILED
            self.result = DriveResult(outcome=outcome, error=None if self.isCanceled() else "the task did not run")
        result = self.result
        self.runEnded.emit(result.outcome, result)


def start_task(task: RunTask) -> RunTask:
    """Hand a task to QGIS's task manager and keep a reference until it has finished."""
    RUNNING.add(task)
    QgsApplication.taskManager().addTask(task)
    return task
