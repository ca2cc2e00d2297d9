"""What the tile menu does besides retrying (the run controller's part): zoom to a tile, open
its result folder, add its result layer, copy its job id, show its job's logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from qgis.core import Qgis, QgsCoordinateTransform, QgsFeatureRequest, QgsProject
from qgis.PyQt.QtCore import QObject, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QGuiApplication
from qgis.PyQt.QtWidgets import QDialog, QPlainTextEdit, QVBoxLayout, QWidget

from ..core.backends import BackendProfile
from ..gis.run_session import RunSession
from .credentials import CredentialSnapshot
from .i18n import translator
from .proxies import qgis_proxies
from .run_page import TileActions
from .tasks import run_in_background

tr = translator("RunController")


class TileMenuHandlers(QObject):
    """The tile menu's actions on the map and the backends; ``session()`` is the run shown (or None)."""

    def __init__(
        self,
        canvas: Any,
        notify: Callable[..., None],
        profile_of: Callable[[str], Optional[BackendProfile]],
        session: Callable[[], Optional[RunSession]],
        dialog_parent: QWidget,
    ) -> None:
        super().__init__(dialog_parent)
        self.canvas = canvas
        self.notify = notify
        self._profile_of = profile_of
        self._session = session
        self._dialog_parent = dialog_parent
        self.log_dialogs: list[QDialog] = []
        self._keep: Any = None

    def fill(self, actions: TileActions) -> None:
        actions.zoom_to = self.zoom_to_tile
        actions.copy_job_id = lambda row: QGuiApplication.clipboard().setText(str(row.get("id") or ""))
        actions.open_folder = self.open_result_folder
        actions.add_result_layer = self.add_result_layer
        actions.show_logs = self.show_logs

    def zoom_to_tile(self, fid: int) -> None:
        session = self._session()
        layer = session.layer if session is not None else None
        if layer is None:
            return
        feature = next(layer.getFeatures(QgsFeatureRequest(fid).setNoAttributes()), None)
        if feature is None or not feature.hasGeometry():
            return
        destination = self.canvas.mapSettings().destinationCrs()
        transform = QgsCoordinateTransform(layer.crs(), destination, QgsProject.instance())
        extent = transform.transformBoundingBox(feature.geometry().boundingBox())
        extent.scale(1.2)
        self.canvas.setExtent(extent)
        self.canvas.refresh()
        layer.selectByIds([fid])

    def open_result_folder(self, row: dict) -> None:
        folder = row.get("result_dir")
        if folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def add_result_layer(self, row: dict) -> None:
        from ..gis.mosaic import is_raster_result

        folder = Path(str(row.get("result_dir") or ""))
        paths = sorted(p for p in folder.glob("*") if p.is_file() and is_raster_result(p)) if folder.is_dir() else []
        if not paths:
            self.notify(
                tr("No raster result for tile {tile}.").format(tile=row.get("tile_id")), Qgis.MessageLevel.Warning
            )
            return
        session = self._session()
        if session is not None:
            session.show_results({row.get("tile_id"): [str(p) for p in paths]})

    def show_logs(self, row: dict) -> None:
        """Fetch the job's logs in a task and show them in a dialog."""
        job_id, backend_name = row.get("id"), row.get("backend_name")
        profile = self._profile_of(backend_name or "")
        if not job_id or profile is None:
            self.notify(tr("This tile has no job on a known backend."), Qgis.MessageLevel.Warning)
            return
        from ..core.backends import Backend

        snapshot = CredentialSnapshot([profile], self)
        proxies = qgis_proxies()

        def work(_task) -> list[dict]:
            connection = Backend(profile, snapshot.provider, proxies).connect()
            return [dict(entry) for entry in connection.job(job_id).logs()]

        def failed(error: BaseException) -> None:
            text = tr("Cannot fetch the logs of job {job}: {error}").format(job=job_id, error=error)
            self.notify(text, Qgis.MessageLevel.Warning)

        run_in_background(tr("Fetching job logs"), work, lambda entries: self._show_log_dialog(row, entries), failed)
        self._keep = snapshot

    def _show_log_dialog(self, row: dict, entries: list[dict]) -> QDialog:
        dialog = QDialog(self._dialog_parent)
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
        for dialog in self.log_dialogs:
            dialog.close()
