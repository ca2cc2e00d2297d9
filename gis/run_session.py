"""One run in QGIS: its tile layer, its results, and the task that drives its engine.

The panel, the demo script and the Processing algorithms share this path::

    scheduler = make_scheduler(path, spec=..., profiles=[...], output_dir=...)   # or from the file
    session = RunSession(path, results_mode="layers")   # main thread: layer + group on the map
    session.start(scheduler)                             # QgsTask; events recolour the tiles
    ...
    session.cancel()                                     # within a second; remote jobs keep running

A run resumes from its GeoPackage alone: :func:`core.run_setup.make_scheduler` reads the job
specification, the backends and the engine settings from the run record when they are not
given (and records them when they are).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from qgis.core import QgsProject
from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal

from ..core.run_loop import DEFAULT_INTERVAL, DriveResult
from ..core.scheduler import Scheduler
from .mosaic import MosaicBuilder
from .result_layers import DEFAULT_RAMP, ResultLayers
from .run_task import RunTask, engine_signals, relay_engine_signals, start_task
from .tile_layer import TileLayerUpdater, add_tile_layer

RESULTS_LAYERS = "layers"
RESULTS_MOSAIC = "mosaic"
RESULTS_NONE = "none"
PROP_RESULTS_MODE = "openeo_tile_jobs/results_mode"


class RunSession(QObject):
    """The map side of one run (main thread): tile layer + "Results" group + the running task.

    Signals re-emit the current task's (see :class:`RunTask`), so a panel connects once per
    session, not once per start.
    """

    engine_signals(locals())  # the engine's events (core.events.ENGINE_EVENTS), as the task's
    resultsShown = pyqtSignal(object)  # list of result layers just added / updated
    runEnded = pyqtSignal(str, object)  # outcome ("done", "stopped", "failed"), DriveResult

    def __init__(
        self,
        path: str | os.PathLike,
        project: Optional[QgsProject] = None,
        *,
        name: Optional[str] = None,
        results_mode: Optional[str] = None,
        labels: bool = False,
        ramp: Optional[str] = DEFAULT_RAMP,
        parent: Optional[QObject] = None,
    ) -> None:
        super().__init__(parent)
        self.path = Path(os.path.abspath(os.fspath(path)))
        self.project = project or QgsProject.instance()
        self.layer, self.group = add_tile_layer(self.path, name, self.project, labels=labels)
        saved_mode = self.layer.customProperty(PROP_RESULTS_MODE)
        self.results_mode = results_mode or saved_mode or RESULTS_LAYERS
        self.layer.setCustomProperty(PROP_RESULTS_MODE, self.results_mode)
        self.results = ResultLayers(self.path, self.project, ramp=ramp, group=self.group)
        self.updater = TileLayerUpdater(self.layer, parent=self)
        self.task: Optional[RunTask] = None
        self.last_result: Optional[DriveResult] = None
        # Results arriving during a run are added one tile per event-loop turn: opening a raster
        # layer costs 15-100 ms of main thread here, so a burst would freeze the map for longer.
        self._queued: list[tuple[Any, list[str]]] = []
        self._result_timer = QTimer(self)
        self._result_timer.setInterval(0)
        self._result_timer.timeout.connect(self._show_next)

    @property
    def running(self) -> bool:
        return self.task is not None

    def start(
        self,
        scheduler: Scheduler,
        *,
        interval: float = DEFAULT_INTERVAL,
        cancel_remote_jobs: bool = False,
    ) -> RunTask:
        """Drive ``scheduler`` in a new task (results already downloaded are shown again)."""
        if self.task is not None:
            raise RuntimeError("This run is already running.")
        mosaic = None
        if self.results_mode == RESULTS_MOSAIC:
            mosaic = MosaicBuilder(Path(scheduler.config.output_dir) / "mosaic")
        task = RunTask(
            scheduler,
            self.layer.name() if self.group is None else self.group.name(),
            interval=interval,
            mosaic=mosaic,
            cancel_remote_jobs=cancel_remote_jobs,
            open_result_layers=self.results_mode == RESULTS_LAYERS,
        )
        task.statusChanged.connect(self.updater.on_status_changed)
        relay_engine_signals(task, self)
        if self.results_mode == RESULTS_LAYERS:
            task.resultsReady.connect(self.queue_results)
        elif self.results_mode == RESULTS_MOSAIC:
            task.mosaicUpdated.connect(self.show_mosaic)
        task.runEnded.connect(self._ended)
        self.task = task
        return start_task(task)

    def cancel(self, cancel_remote_jobs: Optional[bool] = None) -> None:
        """Stop the run (within a second); ``cancel_remote_jobs`` also cancels its jobs on the backends."""
        if self.task is None:
            return
        if cancel_remote_jobs is not None:
            self.task.cancel_remote_jobs = cancel_remote_jobs
        self.task.cancel()

    def show_results(self, results: dict[Any, list[str]]) -> list:
        """Add result layers: ``{tile_id: [paths]}`` (already shown files are skipped)."""
        opened = self.task.opened_layers if self.task is not None else None
        added = self.results.add_results(results, opened)
        if added:
            self.resultsShown.emit(added)
        return added

    def queue_results(self, results: dict[Any, list[str]]) -> None:
        """Show ``{tile_id: [paths]}`` soon, one tile per event-loop turn."""
        self._queued.extend((tile_id, list(paths)) for tile_id, paths in results.items())
        if not self._result_timer.isActive():
            self._result_timer.start()

    def _show_next(self) -> None:
        if self._queued:
            tile_id, paths = self._queued.pop(0)
            self.show_results({tile_id: paths})
        if not self._queued:
            self._result_timer.stop()

    def show_mosaic(self, vrt_paths: list) -> list:
        shown = self.results.show_mosaic(vrt_paths)
        if shown:
            self.resultsShown.emit(shown)
        return shown

    def _ended(self, outcome: str, result: DriveResult) -> None:
        self.updater.flush()
        while self._queued:  # the run is over: show what is left now
            self._show_next()
        self.task = None
        self.last_result = result
        self.runEnded.emit(outcome, result)
