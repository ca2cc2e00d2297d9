"""Glue between the panel's steps and the run engine.

"Create grid" writes the job database (in a worker) and adds the tile layer; "Start"
checks every step (a message beside each bad field, nothing starts from an invalid
form), then hands the job database, the process, the backends and the output folder to
the engine; engine events update the Run step and the tile layer.

The engine side is :func:`core.run_setup.make_scheduler` (shared with the demo and
Processing) and :class:`gis.run_session.RunSession`: one per job database (tile layer,
results group, the QgsTask that drives the scheduler and re-emits its events as Qt signals).
The controller gets the pages it drives and a ``notify`` callback, not the dock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

from qgis.core import (
    Qgis,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QAction

from ..core import statuses
from ..core.downloads import FAILED
from ..core.events import Progress, StatusChange
from ..core.inbox import reset_for_retry
from ..core.jobdb import JobDB
from ..core.jobspec import JobSpec
from ..core.run_setup import make_scheduler, move_backend, recorded_output_dir, recorded_profiles, recorded_spec
from ..core.scheduler import Scheduler
from ..gis.run_session import RunSession
from . import local_demo
from .backends_page import BackendsPage
from .credentials import CredentialSnapshot
from .grid_page import GridPage
from .i18n import translator
from .process_page import ProcessPage
from .proxies import qgis_proxies
from .run_estimate import EstimateController
from .run_figures import ACTIVE_TIME_KEY
from .run_page import RunPage
from .steps import BACKENDS, GRID, PROCESS
from .tasks import run_in_background
from .tile_actions import TileMenuHandlers
from .tile_map_menu import TileLayerAction, TileMenuTool
from .tile_preview import TilePreviewer
from .tile_table import DB_COLUMNS

tr = translator("RunController")
log = logging.getLogger(__name__)

#: How often a running run's active time is written to its run record (seconds).
SAVE_ACTIVE_TIME_S = 30

#: ``notify(text, level, duration)``: a message for the user (the dock's message bar).
Notify = Callable[..., None]


@dataclass(frozen=True)
class RunPages:
    """The steps the run controller reads and drives."""

    grid: GridPage
    backends: BackendsPage
    process: ProcessPage
    run: RunPage


class RunController(QObject):
    runFinished = pyqtSignal(str)

    def __init__(
        self,
        pages: RunPages,
        canvas: Any,
        notify: Notify,
        show_step: Callable[[int], None],
        parent: Optional[QObject] = None,
    ) -> None:
        super().__init__(parent)
        self.pages = pages
        self.canvas = canvas
        self.notify = notify
        self.show_step = show_step
        self.page = pages.run
        self.db: Optional[JobDB] = None
        self.db_path: Optional[str] = None
        self.session: Optional[RunSession] = None
        self.scheduler: Optional[Scheduler] = None
        self.snapshot = None
        self.backend_states: dict[str, str] = {}
        self.last_outcome: Optional[str] = None
        self._ran = False  # the run shown was started in this session (its active time changed)
        self._keep: list[Any] = []
        self._preparing = False  # Start waits for the Local demo backend to come up

        pages.grid.writer = self._write_job_database
        pages.grid.gridCreated.connect(self._grid_created)
        self.page.startRequested.connect(self.start)
        self.page.openRequested.connect(self.open_run)
        self.page.stopRequested.connect(self.stop)
        self.page.retryFailedRequested.connect(self.retry_failed)
        self.page.cancelRemoteRequested.connect(self.cancel_remote_jobs)
        self.page.checkNowRequested.connect(self.check_now)

        actions = self.page.actions
        self.tile_handlers = TileMenuHandlers(canvas, notify, pages.backends.profile, lambda: self.session, self.page)
        self.tile_handlers.fill(actions)
        actions.retry = self.retry_tiles
        self.previewer = TilePreviewer(self.validate, lambda: self.db_path, notify, self)
        actions.preview = self.previewer.preview

        self._save_timer = QTimer(self)
        self._save_timer.setInterval(SAVE_ACTIVE_TIME_S * 1000)
        self._save_timer.timeout.connect(self._save_active_time)

        self.tile_tool = TileMenuTool(canvas, lambda: self.tile_layer, self.rows_for_fids, actions)
        self.tile_tool_action = QAction(tr("Tile menu on the map"), self)
        self.tile_tool_action.setCheckable(True)
        self.tile_tool_action.setToolTip(tr("Click a tile on the map to see its logs, retry it or add its results"))
        self.tile_tool_action.triggered.connect(lambda: canvas.setMapTool(self.tile_tool))
        self.tile_tool.setAction(self.tile_tool_action)
        self.page.set_map_tool_action(self.tile_tool_action)
        self.layer_action = None
        from qgis.utils import iface

        from .run_resume import RunList

        self.run_list = RunList(self, iface, show_step, self)
        self.estimates = EstimateController(self)

    @property
    def tile_layer(self) -> Optional[QgsVectorLayer]:
        return self.session.layer if self.session is not None else None

    # grid -> job database -> tile layer ---------------------------------------------------
    @staticmethod
    def _write_job_database(grid, path: str) -> None:
        """Worker thread: write the GeoPackage (replacing an older run file at that path)."""
        JobDB.create(path, grid, overwrite=True).close()

    def _grid_created(self, grid, path: str) -> None:
        self.open_database(path)
        self.notify(
            tr("{count:,} tiles created in {path}.").format(count=len(grid), path=path), Qgis.MessageLevel.Success
        )
        self.show_step(BACKENDS)

    def open_database(self, path: str) -> None:
        """Show a run's job database: tile layer on the map (via :class:`RunSession`), rows in the table."""
        if self.running:
            self.stop()
            self.page.set_running(False)
        self._save_active_time()
        self._drop_session()
        if self.db is not None:
            self.db.close()
        self._ran = False
        self.db = JobDB.open(path)
        self.db_path = path
        record = self.db.run_record()
        self.page.set_database(
            path,
            self.db.all_rows(columns=[c for c in DB_COLUMNS if c != "fid"]),
            output_dir=str(recorded_output_dir(record, self.db.path)),
            costs=self.db.sum_costs(),
            active_s=float(record.get(ACTIVE_TIME_KEY) or 0.0),
        )
        session = RunSession(path, parent=self)
        session.statusChanged.connect(self._status_changed)
        session.resultStatusChanged.connect(self._status_changed)
        session.progressReported.connect(self._progress)
        session.costsChanged.connect(self.page.show_costs)
        session.needsSignIn.connect(self._needs_sign_in)
        session.backendStateChanged.connect(self._backend_state)
        session.runEnded.connect(self._ended)
        self.session = session
        if self.layer_action is not None:
            self.layer_action.unregister()
        self.layer_action = TileLayerAction(session.layer, self.rows_for_fids, self.page.actions, self)
        self.layer_action.register()
        self.estimates.opened(self.db)
        self.run_list.refresh()

    def open_run(self, path: str) -> bool:
        """Open an earlier run's job database (to watch it, or to resume it with Start)."""
        try:
            self.open_database(path)
        except Exception as exc:  # noqa: BLE001 (not one of our files, unreadable...)
            self.page.start_message.show_message(tr("Cannot open {path}: {error}").format(path=path, error=exc))
            return False
        self.notify(tr("Opened the run {path}.").format(path=path), Qgis.MessageLevel.Info)
        return True

    def _drop_session(self) -> None:
        if self.session is None:
            return
        layer = self.session.layer
        project = QgsProject.instance()
        if layer is not None and layer.id() in project.mapLayers():
            project.removeMapLayer(layer.id())
        self.session.deleteLater()
        self.session = None

    def rows_for_fids(self, fids: list[int]) -> list[dict]:
        if self.db is None:
            return []
        return self.db.get_many(fids, columns=[c for c in DB_COLUMNS if c != "fid"])

    # run -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.session is not None and self.session.running

    def validate(self) -> Optional[dict[str, Any]]:
        """Check every step; show messages beside bad fields; return what the run needs, or None."""
        page = self.page
        problems = []
        if self.db is None:
            page.start_message.show_message(tr("Create the grid first (step Grid)."))
            problems.append(GRID)
        record = self.db.run_record() if self.db is not None else {}
        output_ok = page.validate_output()
        # What the panel shows wins; a reopened run the panel knows nothing of runs as it was recorded.
        profiles = list(self.pages.backends.profiles) or recorded_profiles(record)
        if not profiles and not self.pages.backends.validate():
            problems.append(BACKENDS)
        spec: Optional[JobSpec] = None
        if self.pages.process.resolved is None:
            spec = recorded_spec(record)
        if spec is None:
            spec = self.pages.process.job_spec()
        if spec is None:
            problems.append(PROCESS)
        if problems or not output_ok:
            if problems:
                self.show_step(problems[0])
            if not page.start_message.has_message():
                page.start_message.show_message(tr("Fix the fields marked in red first."))
            return None
        page.start_message.clear_message()
        return {"spec": spec, "output": page.output.filePath().strip(), "profiles": profiles}

    def start(self, only_fids: Optional[set[int]] = None) -> bool:
        """Start, or resume, the run (``only_fids``: only these tiles, a pilot). Returns False (and
        shows why) when a step is not ready."""
        if self.running or self._preparing:
            return False
        run = self.validate()
        if run is None:
            return False
        return self.prepare(run, lambda ready: self._start(ready, only_fids), self.page.start_message.show_message)

    def prepare(self, run: dict[str, Any], then: Callable[[dict], bool], failed: Callable[[str], None]) -> bool:
        """``then(run)`` once every backend of ``run`` answers: a Local demo backend that is not running
        (QGIS was restarted) is started first, in a background task (then True), ``failed(message)`` if
        it cannot; else ``then(run)`` now, and what it returns."""
        if not any(p.preset == local_demo.PRESET and p.url != local_demo.running_url() for p in run["profiles"]):
            return then(run)
        self._preparing = True
        self.page.start_button.setEnabled(False)

        def ready(profiles: list) -> None:
            self._preparing = False
            self.page.start_button.setEnabled(True)
            then(self._moved(run, profiles))

        def error(exc: BaseException) -> None:
            self._preparing = False
            self.page.start_button.setEnabled(True)
            failed(str(exc))

        self._keep = [
            run_in_background(
                tr("Starting the Local demo backend"),
                lambda _task: [local_demo.ready_profile(p) for p in run["profiles"]],
                ready,
                error,
            )
        ]
        return True

    def _moved(self, run: dict[str, Any], profiles: list) -> dict[str, Any]:
        """``run`` with the backends at their current URLs (the process URL moved along with its backend)."""
        spec = run["spec"]
        for old, new in zip(run["profiles"], profiles):
            if old.url != new.url:
                spec = move_backend(spec, old.url, new.url)
                self.pages.backends.update_url(new)
        return {**run, "spec": spec, "profiles": profiles}

    def _start(self, run: dict[str, Any], only_fids: Optional[set[int]] = None) -> bool:
        self.snapshot = CredentialSnapshot(run["profiles"], self)
        try:
            self.estimates.before_start(run["spec"])
            self.scheduler = make_scheduler(
                self.db.path,  # a connection of its own: the panel's reads never wait for the engine's commits
                spec=run["spec"],
                profiles=run["profiles"],
                output_dir=run["output"],
                credentials=self.snapshot.provider,
                proxies=qgis_proxies(),
                refresh_token_sink=self.snapshot.sink,
            )
            self.scheduler.only_fids = only_fids
            self.session.start(self.scheduler)
        except Exception as exc:  # noqa: BLE001 (shown to the user)
            self.page.start_message.show_message(str(exc))
            return False
        self.last_outcome = None
        self._ran = True
        self.page.set_running(True)
        self._save_timer.start()
        self.notify(tr("Run started."), Qgis.MessageLevel.Info)
        return True

    def stop(self, cancel_remote_jobs: bool = False) -> None:
        if self.session is not None and self.session.running:
            self.session.cancel(cancel_remote_jobs=cancel_remote_jobs)

    def _ended(self, outcome: str, result: Any) -> None:
        self.page.set_running(False)
        self.run_list.refresh()
        self._save_timer.stop()
        self._save_active_time()
        self.last_outcome = outcome
        error = getattr(result, "error", None)
        if outcome == "failed":
            self.notify(tr("The run stopped: {error}").format(error=error), Qgis.MessageLevel.Critical)
        elif outcome == "done":
            counts = self.page.model.counts()
            report = getattr(result, "last_report", None)
            progress = getattr(report, "progress", None)
            not_downloaded = progress.downloads.get(FAILED, 0) if progress is not None else 0
            message = tr("Run finished: {finished} finished, {failed} failed.").format(
                finished=counts.get(statuses.FINISHED, 0),
                failed=sum(counts.get(s, 0) for s in statuses.FAILED_STATUSES),
            )
            if counts.get(statuses.SPLIT):  # neither finished nor failed: their quarters ran instead
                message += " " + tr("{count} tile(s) too big for the backend were split into quarters.").format(
                    count=counts[statuses.SPLIT]
                )
            if not_downloaded:  # finished on the backend, but the run is not complete
                message += " " + tr("{count} result(s) could not be downloaded: Start tries again.").format(
                    count=not_downloaded
                )
            level = Qgis.MessageLevel.Warning if not_downloaded else Qgis.MessageLevel.Success
            self.notify(message, level)
        else:
            self.notify(tr("Run stopped; press Start to resume."), Qgis.MessageLevel.Info)
        if getattr(result, "remote_canceled", 0):
            self.notify(
                tr("{count} remote job(s) canceled.").format(count=result.remote_canceled), Qgis.MessageLevel.Info
            )
        self.runFinished.emit(outcome)

    def _save_active_time(self) -> None:
        """Record the run's active time in its run record (Elapsed goes on from there next session)."""
        if self.db is None or not self._ran:
            return
        try:
            self.db.update_run_record({ACTIVE_TIME_KEY: round(self.page.clock.elapsed(), 1)})
        except Exception as exc:  # noqa: BLE001 (a figure must never end a run)
            log.warning("Cannot record the run's active time: %s", exc)

    def retry_tiles(self, fids: list[int]) -> int:
        if self.db is None or not fids:
            return 0
        if self.running and self.scheduler is not None:
            count = self.scheduler.retry_tiles(fids)  # reset in its next round; how many it will retry
        else:
            count = reset_for_retry(self.db, fids)
            self._refresh_fids(fids)
            self.page.show_counts(self.page.model.counts())
            if self.tile_layer is not None:
                self.tile_layer.triggerRepaint()
        self.notify(tr("{count} tile(s) will be retried.").format(count=count), Qgis.MessageLevel.Info)
        if count and not self.running:
            self.start()
        return count

    def retry_failed(self) -> int:
        if self.db is None:
            return 0
        rows = self.db.get_by_status(sorted(statuses.FAILED_STATUSES), columns=["status"])
        if not rows:
            self.notify(tr("No failed tile to retry."), Qgis.MessageLevel.Info)
            return 0
        return self.retry_tiles([int(r["fid"]) for r in rows])

    def cancel_remote_jobs(self) -> None:
        """Cancel, on their backends, the jobs of this run that are still alive there."""
        if self.db is None:
            return
        if self.running:
            self.stop(cancel_remote_jobs=True)
            return
        run = self.validate()
        if run is None:
            return
        from ..core.run_loop import cancel_remote_jobs

        snapshot = CredentialSnapshot(run["profiles"], self)
        scheduler = make_scheduler(
            self.db,
            spec=run["spec"],
            profiles=run["profiles"],
            output_dir=run["output"],
            credentials=snapshot.provider,
            proxies=qgis_proxies(),
        )

        def done(count: int) -> None:
            self.notify(
                tr("{count} remote job(s) canceled; press Start to record their status.").format(count=count),
                Qgis.MessageLevel.Info,
            )

        task = run_in_background(
            tr("Canceling remote jobs"),
            lambda _task: cancel_remote_jobs(scheduler),
            done,
            lambda e: self.notify(str(e), Qgis.MessageLevel.Warning),
        )
        self._keep = [task, snapshot, scheduler]

    # events ------------------------------------------------------------------------------------
    def _refresh_fids(self, fids) -> None:
        if self.db is None:
            return
        rows = self.db.get_many(list(fids), columns=[c for c in DB_COLUMNS if c != "fid"])
        self.page.update_rows(rows)

    def refresh_tile(self, fid: int) -> None:
        """A tile changed outside the engine (an estimate's job): its row and its colour."""
        self._refresh_fids([fid])
        self.page.show_counts(self.page.model.counts())
        if self.session is not None:
            row = (self.rows_for_fids([fid]) or [{}])[0]
            self.session.updater.on_status_changed(StatusChange(row.get("status", ""), (row.get("tile_id"),), (fid,)))

    def _status_changed(self, change: StatusChange) -> None:
        if change.fids:
            self._refresh_fids(change.fids)

    def _progress(self, progress: Progress) -> None:
        self.page.show_counts(progress.counts, progress.total)
        self.page.show_backends(progress.active_per_backend, self.backend_states)
        self.page.show_next_check(progress.next_check)
        self.page.show_downloads(progress.downloads)
        self.estimates.on_progress(progress)

    def check_now(self) -> None:
        """Ask the backends about their jobs in the next round (thread-safe: the engine's inbox)."""
        if self.running and self.scheduler is not None:
            self.scheduler.check_now()

    def _backend_state(self, backend: str, state: str, detail: str) -> None:
        self.backend_states[backend] = state

    def _needs_sign_in(self, backend: str, reason: str) -> None:
        self.notify(
            tr("{backend} needs you to sign in again (step Backends): {reason}").format(backend=backend, reason=reason),
            Qgis.MessageLevel.Warning,
            0,
        )

    def close_down(self) -> None:
        self.stop()
        self.run_list.close_down()
        self._save_timer.stop()
        self._save_active_time()
        if self.canvas.mapTool() is self.tile_tool:
            self.canvas.unsetMapTool(self.tile_tool)
        if self.layer_action is not None:
            self.layer_action.unregister()
            self.layer_action = None
        self.tile_handlers.close_down()
        self.previewer.close_down()
        if self.db is not None:
            self.db.close()
            self.db = None
