"""Glue between the panel's steps and the run engine.

"Create grid" writes the job database (in a worker) and adds the tile layer; "Start"
checks every step (a message beside each bad field, nothing starts from an invalid
form), then hands the job database, the process, the backends and the output folder to
the engine; engine events update the Run step and the tile layer.

The engine is :class:`EngineRunner`: a QgsTask that calls ``Scheduler.step()`` about once
a second off the main thread and re-emits the engine's events as Qt signals.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsProject,
    QgsTask,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, Qt, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices, QGuiApplication
from qgis.PyQt.QtWidgets import QDialog, QPlainTextEdit, QVBoxLayout

from ..core import statuses
from ..core.backends import BackendPool
from ..core.events import EngineListener, LogLine, Progress, StatusChange
from ..core.jobdb import JobDB
from ..core.scheduler import EngineConfig, Scheduler
from .i18n import translator
from .proxies import qgis_proxies
from .tasks import run_in_background, run_in_python_thread
from .tile_table import DB_COLUMNS

if TYPE_CHECKING:
    from .dock import TileJobsDock

tr = translator("RunController")
log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0


class _SignalListener(QObject, EngineListener):
    """Engine events (worker thread) -> Qt signals (delivered queued on the main thread)."""

    statusChanged = pyqtSignal(object)
    progress = pyqtSignal(object)
    costs = pyqtSignal(float, object)
    logLine = pyqtSignal(object)
    needsSignIn = pyqtSignal(str, str)
    backendState = pyqtSignal(str, str, str)

    def on_status_changed(self, change: StatusChange) -> None:
        self.statusChanged.emit(change)

    def on_result_status_changed(self, change: StatusChange) -> None:
        self.statusChanged.emit(change)

    def on_progress(self, progress: Progress) -> None:
        self.progress.emit(progress)

    def on_costs(self, total: float, per_backend: dict[str, float]) -> None:
        self.costs.emit(float(total or 0.0), dict(per_backend or {}))

    def on_log(self, line: LogLine) -> None:
        self.logLine.emit(line)

    def on_needs_sign_in(self, backend: str, reason: str) -> None:
        self.needsSignIn.emit(backend, reason)

    def on_backend_state(self, backend: str, state: str, detail: str) -> None:
        self.backendState.emit(backend, state, detail)


class EngineRunner(QgsTask):
    """Calls ``scheduler.step()`` every ``interval`` seconds until the run is done or stopped."""

    def __init__(self, scheduler: Scheduler, interval: float = POLL_INTERVAL_S) -> None:
        super().__init__(tr("openEO Tile Jobs run"), QgsTask.Flag.CanCancel)
        self.scheduler = scheduler
        self.interval = interval
        self.error: Optional[BaseException] = None
        self.finished_ok: Optional[bool] = None
        self._stop = threading.Event()

    def run(self) -> bool:
        return run_in_python_thread(self._loop)  # pyproj crashes in QThreadPool threads (see .tasks)

    def _loop(self) -> bool:
        try:
            while not self._stop.is_set() and not self.isCanceled():
                report = self.scheduler.step()
                if report.progress is not None and report.progress.total:
                    self.setProgress(100.0 * report.progress.done / report.progress.total)
                if report.done:
                    return True
                self._stop.wait(self.interval)
            return True
        except BaseException as exc:  # noqa: BLE001 (reported on the main thread)
            self.error = exc
            return False
        finally:
            self.scheduler.stop(timeout=2.0)

    def request_stop(self) -> None:
        self._stop.set()

    def cancel(self) -> None:
        self._stop.set()
        super().cancel()

    def finished(self, ok: bool) -> None:
        self.finished_ok = ok


class RunController(QObject):
    runFinished = pyqtSignal()

    def __init__(self, dock: TileJobsDock) -> None:
        super().__init__(dock)
        self.dock = dock
        self.page = dock.run_page
        self.db: Optional[JobDB] = None
        self.db_path: Optional[str] = None
        self.tile_layer: Optional[QgsVectorLayer] = None
        self.scheduler: Optional[Scheduler] = None
        self.runner: Optional[EngineRunner] = None
        self.listener = _SignalListener(self)
        self.snapshot = None
        self.backend_states: dict[str, str] = {}
        self.log_dialogs: list[QDialog] = []

        dock.grid_page.writer = self._write_job_database
        dock.grid_page.gridCreated.connect(self._grid_created)
        self.page.startRequested.connect(self.start)
        self.page.stopRequested.connect(self.stop)
        self.page.retryFailedRequested.connect(self.retry_failed)
        self.page.cancelRemoteRequested.connect(self.cancel_remote_jobs)
        self.listener.statusChanged.connect(self._status_changed, Qt.QueuedConnection)
        self.listener.progress.connect(self._progress, Qt.QueuedConnection)
        self.listener.costs.connect(self.page.show_costs, Qt.QueuedConnection)
        self.listener.needsSignIn.connect(self._needs_sign_in, Qt.QueuedConnection)
        self.listener.backendState.connect(self._backend_state, Qt.QueuedConnection)
        self.listener.logLine.connect(self._log_line, Qt.QueuedConnection)

        actions = self.page.actions
        actions.zoom_to = self.zoom_to_tile
        actions.copy_job_id = lambda row: QGuiApplication.clipboard().setText(str(row.get("id") or ""))
        actions.open_folder = self.open_result_folder
        actions.add_result_layer = self.add_result_layer
        actions.retry = self.retry_tiles
        actions.show_logs = self.show_logs

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
        """Show a run's job database: tile layer on the map, rows in the table."""
        if self.running:
            self.stop()
        if self.db is not None:
            self.db.close()
        self.db = JobDB.open(path)
        self.db_path = path
        self.page.set_database(path, self.db.all_rows(columns=[c for c in DB_COLUMNS if c != "fid"]))
        self._add_tile_layer(path)

    def _add_tile_layer(self, path: str) -> None:
        from ..gis import layer_tree, tile_style

        project = QgsProject.instance()
        if self.tile_layer is not None and self.tile_layer.id() in project.mapLayers():
            project.removeMapLayer(self.tile_layer.id())
        layer = QgsVectorLayer(f"{path}|layername=tiles", tr("Tiles"), "ogr")
        if not layer.isValid():
            self.dock.notify(tr("Cannot open the tile layer of {path}.").format(path=path), Qgis.Warning)
            return
        tile_style.apply_tile_style(layer)
        layer.setCustomProperty(layer_tree.PROP_RUN, layer_tree.run_key(path))
        layer.setCustomProperty(layer_tree.PROP_KIND, "tiles")
        project.addMapLayer(layer, False)
        group = layer_tree.run_group(path, Path(path).stem, project)
        group.insertLayer(0, layer)
        self.tile_layer = layer

    # run -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.finished_ok is None

    def validate(self) -> Optional[dict[str, Any]]:
        """Check every step; show messages beside bad fields; return what the run needs, or None."""
        page = self.page
        problems = []
        if self.db is None:
            page.start_message.show_message(tr("Create the grid first (step Grid)."))
            problems.append(1)
        output_ok = page.validate_output()
        if not self.dock.backends_page.validate():
            problems.append(2)
        spec = self.dock.process_page.job_spec()
        if spec is None:
            problems.append(3)
        if problems or not output_ok:
            if problems:
                self.dock.show_step(problems[0])
            if not page.start_message.has_message():
                page.start_message.show_message(tr("Fix the fields marked in red first."))
            return None
        page.start_message.clear_message()
        profiles = list(self.dock.backends_page.profiles)
        return {"spec": spec, "output": page.output.filePath().strip(), "profiles": profiles}

    def start(self) -> bool:
        """Start, or resume, the run. Returns False (and shows why) when a step is not ready."""
        if self.running:
            return False
        run = self.validate()
        if run is None:
            return False
        from .credentials import CredentialSnapshot

        os.makedirs(run["output"], exist_ok=True)
        self.snapshot = CredentialSnapshot(run["profiles"], self)
        pool = BackendPool.from_profiles(
            run["profiles"], self.snapshot.provider, qgis_proxies(), refresh_token_sink=self.snapshot.sink
        )
        self.db.update_run_record(
            {"job_spec": run["spec"].to_dict(), "backends": [p.to_dict() for p in run["profiles"]]}
        )
        config = EngineConfig(output_dir=run["output"])
        self.scheduler = Scheduler(self.db, run["spec"], pool, config, [self.listener])
        self.runner = EngineRunner(self.scheduler)
        self.runner.taskCompleted.connect(self._finished)
        self.runner.taskTerminated.connect(self._finished)
        QgsApplication.taskManager().addTask(self.runner)
        self.page.set_running(True)
        self.dock.notify(tr("Run started."), Qgis.Info)
        return True

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.request_stop()
        if self.scheduler is not None:
            self.scheduler.stop(timeout=0.0)

    def _finished(self) -> None:
        runner = self.runner
        self.page.set_running(False)
        if runner is not None and runner.error is not None:
            self.dock.notify(tr("The run stopped: {error}").format(error=runner.error), Qgis.Critical)
        elif self.scheduler is not None and self.scheduler.is_done():
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
        self.runFinished.emit()

    def retry_tiles(self, fids: list[int]) -> int:
        if self.db is None or not fids:
            return 0
        if self.scheduler is not None:
            count = self.scheduler.retry_tiles(fids)
        else:
            failed = (statuses.ERROR, statuses.START_FAILED, statuses.CANCELED)
            rows = [r for r in self.db.get_many(fids) if r["status"] in failed]
            self.db.update_many(
                {
                    int(r["fid"]): {"status": statuses.NOT_STARTED, "id": None, "backend_name": None, "attempts": 0}
                    for r in rows
                }
            )
            count = len(rows)
            self._refresh_fids(fids)
        self.dock.notify(tr("{count} tile(s) will be retried.").format(count=count), Qgis.Info)
        if count and not self.running:
            self.start()
        return count

    def retry_failed(self) -> int:
        if self.db is None:
            return 0
        rows = self.db.get_by_status([statuses.ERROR, statuses.START_FAILED, statuses.CANCELED], columns=["status"])
        return self.retry_tiles([int(r["fid"]) for r in rows])

    def cancel_remote_jobs(self) -> None:
        """Cancel, on their backends, the jobs of this run that are still alive there (in a task)."""
        if self.db is None:
            return
        rows = self.db.get_by_status(sorted(statuses.REMOTE_ACTIVE_STATUSES), columns=["id", "backend_name"])
        rows = [r for r in rows if r.get("id")]
        if not rows:
            self.dock.notify(tr("No job of this run is active on a backend."), Qgis.Info)
            return
        self.stop()
        profiles = list(self.dock.backends_page.profiles)
        from .credentials import CredentialSnapshot

        snapshot = CredentialSnapshot(profiles, self)
        proxies = qgis_proxies()

        def work(_task) -> int:
            pool = BackendPool.from_profiles(profiles, snapshot.provider, proxies)
            canceled = 0
            for row in rows:
                backend = pool.get(row.get("backend_name") or "")
                if backend is None:
                    continue
                try:
                    backend.connect().job(row["id"]).stop()
                    canceled += 1
                except Exception as exc:  # noqa: BLE001 (logged, others still canceled)
                    log.warning("Cannot cancel job %s: %s", row["id"], exc)
            return canceled

        def done(count: int) -> None:
            self.dock.notify(
                tr("{count} remote job(s) canceled; press Start to record their status.").format(count=count),
                Qgis.Info,
            )

        run_in_background(tr("Canceling remote jobs"), work, done, lambda e: self.dock.notify(str(e), Qgis.Warning))
        self._cancel_snapshot = snapshot

    # events ------------------------------------------------------------------------------------
    def _refresh_fids(self, fids) -> None:
        if self.db is None:
            return
        rows = self.db.get_many(list(fids), columns=[c for c in DB_COLUMNS if c != "fid"])
        self.page.update_rows(rows)
        if self.tile_layer is not None:
            self.tile_layer.dataProvider().reloadData()
            self.tile_layer.triggerRepaint()

    def _status_changed(self, change: StatusChange) -> None:
        if change.fids:
            self._refresh_fids(change.fids)

    def _progress(self, progress: Progress) -> None:
        self.page.show_counts(progress.counts, progress.total)
        self.page.show_backends(progress.active_per_backend, self.backend_states)

    def _backend_state(self, backend: str, state: str, detail: str) -> None:
        self.backend_states[backend] = state
        if state == "needs_sign_in":
            self._needs_sign_in(backend, detail)

    def _needs_sign_in(self, backend: str, reason: str) -> None:
        self.dock.notify(
            tr("{backend} needs you to sign in again (step Backends): {reason}").format(backend=backend, reason=reason),
            Qgis.Warning,
            0,
        )

    def _log_line(self, line: LogLine) -> None:
        log.log(line.level, "%s", line.message)

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
        from ..gis.result_layers import ResultLayers

        folder = Path(str(row.get("result_dir") or ""))
        paths = sorted(p for p in folder.glob("*") if p.is_file() and is_raster_result(p)) if folder.is_dir() else []
        if not paths:
            self.dock.notify(tr("No raster result for tile {tile}.").format(tile=row.get("tile_id")), Qgis.Warning)
            return
        ResultLayers(self.db_path).add_tile_results(str(row.get("tile_id")), paths)

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
        if self.runner is not None and self.runner.finished_ok is None:
            self.runner.cancel()
        for dialog in self.log_dialogs:
            dialog.close()
        if self.db is not None:
            self.db.close()
            self.db = None
