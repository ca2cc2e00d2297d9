"""Glue between the panel's steps and the run engine.

"Create grid" writes the job database (in a worker) and adds the tile layer; "Start"
checks every step (a message beside each bad field, nothing starts from an invalid
form), then hands the job database, the process, the backends and the output folder to
the engine; engine events update the Run step and the tile layer.

The engine side is :mod:`gis.run_session`: one :class:`RunSession` per job database (tile
layer, results group, the QgsTask that drives the scheduler and re-emits its events as
Qt signals) and :func:`make_scheduler`, shared with the demo and Processing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from qgis.core import (
    Qgis,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices, QGuiApplication
from qgis.PyQt.QtWidgets import QDialog, QPlainTextEdit, QVBoxLayout

from ..core import statuses
from ..core.events import Progress, StatusChange
from ..core.jobdb import JobDB
from ..core.jobspec import JobSpec
from ..core.run_setup import make_scheduler, move_backend, recorded_output_dir, recorded_profiles, recorded_spec
from ..core.scheduler import Scheduler
from ..gis.run_session import RunSession
from . import local_demo
from .i18n import translator
from .proxies import qgis_proxies
from .tasks import run_in_background
from .tile_table import DB_COLUMNS

if TYPE_CHECKING:
    from .dock import TileJobsDock

tr = translator("RunController")
log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0


class RunController(QObject):
    runFinished = pyqtSignal(str)

    def __init__(self, dock: TileJobsDock) -> None:
        super().__init__(dock)
        self.dock = dock
        self.page = dock.run_page
        self.db: Optional[JobDB] = None
        self.db_path: Optional[str] = None
        self.session: Optional[RunSession] = None
        self.scheduler: Optional[Scheduler] = None
        self.snapshot = None
        self.backend_states: dict[str, str] = {}
        self.log_dialogs: list[QDialog] = []
        self.last_outcome: Optional[str] = None
        self._keep: list[Any] = []
        self._preparing = False  # Start waits for the Local demo backend to come up

        dock.grid_page.writer = self._write_job_database
        dock.grid_page.gridCreated.connect(self._grid_created)
        self.page.startRequested.connect(self.start)
        self.page.openRequested.connect(self.open_run)
        self.page.stopRequested.connect(self.stop)
        self.page.retryFailedRequested.connect(self.retry_failed)
        self.page.cancelRemoteRequested.connect(self.cancel_remote_jobs)

        actions = self.page.actions
        actions.zoom_to = self.zoom_to_tile
        actions.copy_job_id = lambda row: QGuiApplication.clipboard().setText(str(row.get("id") or ""))
        actions.open_folder = self.open_result_folder
        actions.add_result_layer = self.add_result_layer
        actions.retry = self.retry_tiles
        actions.show_logs = self.show_logs

        from qgis.PyQt.QtWidgets import QAction

        from .tile_map_menu import TileMenuTool

        canvas = dock.iface.mapCanvas()
        self.tile_tool = TileMenuTool(canvas, lambda: self.tile_layer, self.rows_for_fids, actions)
        self.tile_tool_action = QAction(tr("Tile menu on the map"), self)
        self.tile_tool_action.setCheckable(True)
        self.tile_tool_action.setToolTip(tr("Click a tile on the map to see its logs, retry it or add its results"))
        self.tile_tool_action.triggered.connect(lambda: canvas.setMapTool(self.tile_tool))
        self.tile_tool.setAction(self.tile_tool_action)
        self.page.set_map_tool_action(self.tile_tool_action)
        self.layer_action = None
        from .run_resume import RunList

        self.run_list = RunList(self, dock.iface, dock.show_step, self)

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
        self.dock.notify(tr("{count:,} tiles created in {path}.").format(count=len(grid), path=path), Qgis.Success)
        self.dock.show_step(2)

    def open_database(self, path: str) -> None:
        """Show a run's job database: tile layer on the map (via :class:`RunSession`), rows in the table."""
        if self.running:
            self.stop()
        self._drop_session()
        if self.db is not None:
            self.db.close()
        self.db = JobDB.open(path)
        self.db_path = path
        self.page.set_database(path, self.db.all_rows(columns=[c for c in DB_COLUMNS if c != "fid"]))
        session = RunSession(path, parent=self)
        session.statusChanged.connect(self._status_changed)
        session.resultStatusChanged.connect(self._status_changed)
        session.progressReported.connect(self._progress)
        session.costsChanged.connect(self.page.show_costs)
        session.needsSignIn.connect(self._needs_sign_in)
        session.backendStateChanged.connect(self._backend_state)
        session.runEnded.connect(self._ended)
        self.session = session
        from .tile_map_menu import TileLayerAction

        if self.layer_action is not None:
            self.layer_action.unregister()
        self.layer_action = TileLayerAction(session.layer, self.rows_for_fids, self.page.actions, self)
        self.layer_action.register()
        record = self.db.run_record()
        if not self.page.output.filePath():
            self.page.output.setFilePath(str(recorded_output_dir(record, self.db.path)))
        self.run_list.refresh()

    def open_run(self, path: str) -> bool:
        """Open an earlier run's job database (to watch it, or to resume it with Start)."""
        try:
            self.open_database(path)
        except Exception as exc:  # noqa: BLE001 (not one of our files, unreadable...)
            self.page.start_message.show_message(tr("Cannot open {path}: {error}").format(path=path, error=exc))
            return False
        self.page.start_message.clear_message()
        self.dock.notify(tr("Opened the run {path}.").format(path=path), Qgis.Info)
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
            problems.append(1)
        record = self.db.run_record() if self.db is not None else {}
        output_ok = page.validate_output()
        # What the panel shows wins; a reopened run the panel knows nothing of runs as it was recorded.
        profiles = list(self.dock.backends_page.profiles) or recorded_profiles(record)
        if not profiles and not self.dock.backends_page.validate():
            problems.append(2)
        process = self.dock.process_page
        spec: Optional[JobSpec] = None
        if process.resolved is None:
            spec = recorded_spec(record)
        if spec is None:
            spec = process.job_spec()
        if spec is None:
            problems.append(3)
        if problems or not output_ok:
            if problems:
                self.dock.show_step(problems[0])
            if not page.start_message.has_message():
                page.start_message.show_message(tr("Fix the fields marked in red first."))
            return None
        page.start_message.clear_message()
        return {"spec": spec, "output": page.output.filePath().strip(), "profiles": profiles}

    def start(self) -> bool:
        """Start, or resume, the run. Returns False (and shows why) when a step is not ready.

        A Local demo backend among the backends is started first when it is not running (QGIS
        was restarted), in a background task; the run then starts from there.
        """
        if self.running or self._preparing:
            return False
        run = self.validate()
        if run is None:
            return False
        if any(p.preset == local_demo.PRESET and p.url != local_demo.running_url() for p in run["profiles"]):
            self._preparing = True
            self.page.start_button.setEnabled(False)

            def ready(profiles: list) -> None:
                self._preparing = False
                self.page.start_button.setEnabled(True)
                self._start(self._moved(run, profiles))

            def failed(error: BaseException) -> None:
                self._preparing = False
                self.page.start_button.setEnabled(True)
                self.page.start_message.show_message(str(error))

            self._keep = [
                run_in_background(
                    tr("Starting the Local demo backend"),
                    lambda _task: [local_demo.ready_profile(p) for p in run["profiles"]],
                    ready,
                    failed,
                )
            ]
            return True
        return self._start(run)

    def _moved(self, run: dict[str, Any], profiles: list) -> dict[str, Any]:
        """``run`` with the backends at their current URLs (the process URL moved along with its backend)."""
        spec = run["spec"]
        for old, new in zip(run["profiles"], profiles):
            if old.url != new.url:
                spec = move_backend(spec, old.url, new.url)
                self.dock.backends_page.update_url(new)
        return {**run, "spec": spec, "profiles": profiles}

    def _start(self, run: dict[str, Any]) -> bool:
        from .credentials import CredentialSnapshot

        self.snapshot = CredentialSnapshot(run["profiles"], self)
        try:
            self.scheduler = make_scheduler(
                self.db.path,  # a connection of its own: the panel's reads never wait for the engine's commits
                spec=run["spec"],
                profiles=run["profiles"],
                output_dir=run["output"],
                credentials=self.snapshot.provider,
                proxies=qgis_proxies(),
                refresh_token_sink=self.snapshot.sink,
            )
            self.session.start(self.scheduler)
        except Exception as exc:  # noqa: BLE001 (shown to the user)
            self.page.start_message.show_message(str(exc))
            return False
        self.last_outcome = None
        self.page.set_running(True)
        self.dock.notify(tr("Run started."), Qgis.Info)
        return True

    def stop(self, cancel_remote_jobs: bool = False) -> None:
        if self.session is not None and self.session.running:
            self.session.cancel(cancel_remote_jobs=cancel_remote_jobs)

    def _ended(self, outcome: str, result: Any) -> None:
        self.page.set_running(False)
        self.run_list.refresh()
        self.last_outcome = outcome
        error = getattr(result, "error", None)
        if outcome == "failed":
            self.dock.notify(tr("The run stopped: {error}").format(error=error), Qgis.Critical)
        elif outcome == "done":
            counts = self.page.model.counts()
            self.dock.notify(
                tr("Run finished: {finished} finished, {failed} failed.").format(
                    finished=counts.get(statuses.FINISHED, 0),
                    failed=sum(counts.get(s, 0) for s in (statuses.ERROR, statuses.START_FAILED)),
                ),
                Qgis.Success,
            )
        else:
            self.dock.notify(tr("Run stopped; press Start to resume."), Qgis.Info)
        if getattr(result, "remote_canceled", 0):
            self.dock.notify(tr("{count} remote job(s) canceled.").format(count=result.remote_canceled), Qgis.Info)
        self.runFinished.emit(outcome)

    def retry_tiles(self, fids: list[int]) -> int:
        if self.db is None or not fids:
            return 0
        if self.running and self.scheduler is not None:
            count = self.scheduler.retry_tiles(fids)
        else:
            failed = (statuses.ERROR, statuses.START_FAILED, statuses.CANCELED)
            rows = [r for r in self.db.get_many(fids) if r["status"] in failed]
            self.db.update_many(
                {
                    int(r["fid"]): {
                        "status": statuses.NOT_STARTED,
                        "id": None,
                        "backend_name": None,
                        "client_token": None,
                        "attempts": 0,
                    }
                    for r in rows
                }
            )
            count = len(rows)
            self._refresh_fids(fids)
            self.page.show_counts(self.page.model.counts())
            if self.tile_layer is not None:
                self.tile_layer.triggerRepaint()
        self.dock.notify(tr("{count} tile(s) will be retried.").format(count=count), Qgis.Info)
        if count and not self.running:
            self.start()
        return count

    def retry_failed(self) -> int:
        if self.db is None:
            return 0
        rows = self.db.get_by_status([statuses.ERROR, statuses.START_FAILED, statuses.CANCELED], columns=["status"])
        if not rows:
            self.dock.notify(tr("No failed tile to retry."), Qgis.Info)
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
        from ..gis.run_loop import cancel_remote_jobs
        from .credentials import CredentialSnapshot

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
            self.dock.notify(
                tr("{count} remote job(s) canceled; press Start to record their status.").format(count=count),
                Qgis.Info,
            )

        task = run_in_background(
            tr("Canceling remote jobs"),
            lambda _task: cancel_remote_jobs(scheduler),
            done,
            lambda e: self.dock.notify(str(e), Qgis.Warning),
        )
        self._keep = [task, snapshot, scheduler]

    # events ------------------------------------------------------------------------------------
    def _refresh_fids(self, fids) -> None:
        if self.db is None:
            return
        rows = self.db.get_many(list(fids), columns=[c for c in DB_COLUMNS if c != "fid"])
        self.page.update_rows(rows)

    def _status_changed(self, change: StatusChange) -> None:
        if change.fids:
            self._refresh_fids(change.fids)

    def _progress(self, progress: Progress) -> None:
        self.page.show_counts(progress.counts, progress.total)
        self.page.show_backends(progress.active_per_backend, self.backend_states)

    def _backend_state(self, backend: str, state: str, detail: str) -> None:
        self.backend_states[backend] = state

    def _needs_sign_in(self, backend: str, reason: str) -> None:
        self.dock.notify(
            tr("{backend} needs you to sign in again (step Backends): {reason}").format(backend=backend, reason=reason),
            Qgis.Warning,
            0,
        )

    # tile actions ---------------------------------------------------------------------------------
    def zoom_to_tile(self, fid: int) -> None:
        if self.tile_layer is None:
            return
        feature = next(self.tile_layer.getFeatures(QgsFeatureRequest(fid).setNoAttributes()), None)
        if feature is None or not feature.hasGeometry():
            return
        canvas = self.dock.iface.mapCanvas()
        destination = canvas.mapSettings().destinationCrs()
        transform = QgsCoordinateTransform(self.tile_layer.crs(), destination, QgsProject.instance())
        extent = transform.transformBoundingBox(feature.geometry().boundingBox())
        extent.scale(1.2)
        canvas.setExtent(extent)
        canvas.refresh()
        self.tile_layer.selectByIds([fid])

    def open_result_folder(self, row: dict) -> None:
        folder = row.get("result_dir")
        if folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def add_result_layer(self, row: dict) -> None:
        from ..gis.mosaic import is_raster_result

        folder = Path(str(row.get("result_dir") or ""))
        paths = sorted(p for p in folder.glob("*") if p.is_file() and is_raster_result(p)) if folder.is_dir() else []
        if not paths:
            self.dock.notify(tr("No raster result for tile {tile}.").format(tile=row.get("tile_id")), Qgis.Warning)
            return
        if self.session is not None:
            self.session.show_results({row.get("tile_id"): [str(p) for p in paths]})

    def show_logs(self, row: dict) -> None:
        """Fetch the job's logs in a task and show them in a dialog."""
        job_id, backend_name = row.get("id"), row.get("backend_name")
        profile = self.dock.backends_page.profile(backend_name or "")
        if not job_id or profile is None:
            self.dock.notify(tr("This tile has no job on a known backend."), Qgis.Warning)
            return
        from ..core.backends import Backend
        from .credentials import CredentialSnapshot

        snapshot = CredentialSnapshot([profile], self)
        proxies = qgis_proxies()

        def work(_task) -> list[dict]:
            connection = Backend(profile, snapshot.provider, proxies).connect()
            return [dict(entry) for entry in connection.job(job_id).logs()]

        def done(entries: list[dict]) -> None:
            self._show_log_dialog(row, entries)

        def failed(error: BaseException) -> None:
            text = tr("Cannot fetch the logs of job {job}: {error}").format(job=job_id, error=error)
            self.dock.notify(text, Qgis.Warning)

        run_in_background(tr("Fetching job logs"), work, done, failed)
        self._logs_snapshot = snapshot

    def _show_log_dialog(self, row: dict, entries: list[dict]) -> QDialog:
        dialog = QDialog(self.dock)
        dialog.setWindowTitle(tr("Logs of job {job} (tile {tile})").format(job=row.get("id"), tile=row.get("tile_id")))
        layout = QVBoxLayout(dialog)
        text = QPlainTextEdit()
        text.setReadOnly(True)
        lines = [f"[{e.get('level', '')}] {e.get('time', '') or ''} {e.get('message', '')}".strip() for e in entries]
        if row.get("last_error") and not lines:
            lines = [str(row["last_error"])]
        text.setPlainText("\n".join(lines) or tr("The backend has no log for this job."))
        layout.addWidget(text)
        dialog.resize(520, 320)
        dialog.show()
        self.log_dialogs.append(dialog)
        return dialog

    def close_down(self) -> None:
        self.stop()
        self.run_list.close_down()
        canvas = self.dock.iface.mapCanvas()
        if canvas.mapTool() is self.tile_tool:
            canvas.unsetMapTool(self.tile_tool)
        if self.layer_action is not None:
            self.layer_action.unregister()
            self.layer_action = None
        for dialog in self.log_dialogs:
            dialog.close()
        if self.db is not None:
            self.db.close()
            self.db = None
