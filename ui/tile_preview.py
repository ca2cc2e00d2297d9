"""The tile menu's "Preview this tile" (map and table): the run's request for one tile, computed
now (``POST /result``, else a batch job of its own: :mod:`core.preview_run`) in a background
task, and shown in the run's "Preview" group (:mod:`gis.preview_layers`).

It reads what Start would use (the panel's steps, else the run record) but changes nothing of
the run: no status, no row of the job database. One preview per tile at a time: asking again
while one is computed is refused with a message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from qgis.core import Qgis, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..core.backends import Backend, BackendProfile
from ..core.preview import BATCH, PreviewRequest, SyncLimit, preview_path
from ..core.preview_run import PreviewCanceledError, PreviewResult, preview_tile
from ..core.run_setup import move_backend
from ..gis.preview_layers import show_preview
from . import local_demo
from .credentials import CredentialSnapshot
from .i18n import translator
from .proxies import qgis_proxies
from .tasks import FunctionTask, TaskCanceledError, run_in_background

tr = translator("TilePreview")


@dataclass(frozen=True)
class PreviewShown:
    """A preview on the map: what was sent, what came back, its layer and the seconds to it."""

    request: PreviewRequest
    result: PreviewResult
    layer: QgsRasterLayer
    seconds_to_layer: float


def profile_for(row: dict, profiles: list[BackendProfile]) -> BackendProfile:
    """The tile's backend, else the run's first one."""
    name = row.get("backend_name")
    return next((p for p in profiles if name and p.name == name), profiles[0])


class TilePreviewer(QObject):
    """Previews tiles of the run the controller shows.

    ``run_inputs()`` returns ``{"spec", "profiles", "output"}`` as Start would use them (None, with
    the reason shown beside the fields, when a step is not ready); ``run_path()`` the job database.
    """

    previewShown = pyqtSignal(object)  # PreviewShown
    previewFailed = pyqtSignal(str, str)  # tile id, message

    def __init__(
        self,
        run_inputs: Callable[[], Optional[dict[str, Any]]],
        run_path: Callable[[], Optional[str]],
        notify: Callable[..., None],
        parent: Optional[QObject] = None,
    ) -> None:
        super().__init__(parent)
        self._run_inputs = run_inputs
        self._run_path = run_path
        self.notify = notify
        #: The client-side size check of synchronous processing (see core.preview).
        self.limit = SyncLimit()
        #: Tile id -> its preview task, while it runs.
        self.tasks: dict[str, FunctionTask] = {}
        self.last: Optional[PreviewShown] = None
        self._keep: dict[str, CredentialSnapshot] = {}

    def preview(self, row: dict) -> Optional[FunctionTask]:
        """Start the preview of the tile ``row`` (a job database row with ``fid`` and ``tile_id``)."""
        tile_id, path = str(row.get("tile_id")), self._run_path()
        if path is None:
            return None
        if tile_id in self.tasks:
            message = tr("The preview of tile {tile} is already being computed.").format(tile=tile_id)
            self.notify(message, Qgis.MessageLevel.Info)
            return None
        run = self._run_inputs()
        if run is None:
            message = tr("Preview needs the run's steps ready: fix the fields marked in red.")
            self.notify(message, Qgis.MessageLevel.Warning)
            return None
        profile = profile_for(row, run["profiles"])
        snapshot = CredentialSnapshot([profile], self)  # main thread: QgsAuthManager may ask for the master password
        proxies, limit, spec, fid = qgis_proxies(), self.limit, run["spec"], int(row["fid"])
        target = preview_path(run["output"], tile_id)
        started = time.monotonic()

        def work(task: FunctionTask) -> tuple[PreviewRequest, PreviewResult]:
            ready = local_demo.ready_profile(profile)  # the Local demo backend, started when needed
            moved = move_backend(spec, profile.url, ready.url) if ready.url != profile.url else spec
            backend = Backend(ready, snapshot.provider, proxies, refresh_token_sink=snapshot.sink)
            return preview_tile(backend, path, moved, fid, target, limit, task.cancel_event)

        task = run_in_background(
            tr("Previewing tile {tile}").format(tile=tile_id),
            work,
            lambda outcome: self._done(path, tile_id, outcome, started),
            lambda error: self._failed(tile_id, error),
        )
        self.tasks[tile_id] = task
        self._keep[tile_id] = snapshot
        return task

    def _done(self, path: str, tile_id: str, outcome: tuple[PreviewRequest, PreviewResult], started: float) -> None:
        self._forget(tile_id)
        request, result = outcome
        layer = show_preview(path, tile_id, result.path, QgsProject.instance())
        if layer is None:
            self._failed(tile_id, RuntimeError(tr("GDAL cannot read {path}.").format(path=result.path)))
            return
        self.last = PreviewShown(request, result, layer, time.monotonic() - started)
        how = tr("synchronous processing")
        if result.mode == BATCH:
            how = tr("a batch job, because {why}").format(why=result.note)
        self.notify(
            tr("Preview of tile {tile} shown in {seconds:.1f} s (computed by {how}).").format(
                tile=tile_id, seconds=self.last.seconds_to_layer, how=how
            ),
            Qgis.MessageLevel.Success,
        )
        self.previewShown.emit(self.last)

    def _failed(self, tile_id: str, error: BaseException) -> None:
        self._forget(tile_id)
        if isinstance(error, (TaskCanceledError, PreviewCanceledError)):
            self.notify(tr("The preview of tile {tile} was canceled.").format(tile=tile_id), Qgis.MessageLevel.Info)
            return
        message = tr("Preview of tile {tile} failed: {error}").format(tile=tile_id, error=error)
        self.notify(message, Qgis.MessageLevel.Critical, 0)
        self.previewFailed.emit(tile_id, message)

    def _forget(self, tile_id: str) -> None:
        self.tasks.pop(tile_id, None)
        self._keep.pop(tile_id, None)

    def close_down(self) -> None:
        """Cancel the previews still computing (their jobs are deleted by their tasks)."""
        for task in list(self.tasks.values()):
            task.cancel()
