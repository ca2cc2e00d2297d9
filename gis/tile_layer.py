"""The run's tile layer: the job database's ``tiles`` table drawn by QGIS, recoloured as jobs move.

A live layer: in QGIS with the plugin (:func:`watch_project`), while a tile layer is in the
project this module holds a WAL connection on its file (:func:`core.jobdb.hold_wal`), so the
``-wal`` file never disappears under QGIS. Without it, QGIS opens the layer with GDAL's
lock-free ``NOLOCK`` mode whenever no ``-wal`` exists (right after the grid was written, or
after the engine closed the file), and that connection fails every read once the engine writes
again: an empty layer, and after F5 GDAL's IMMUTABLE fallback that ignores the WAL (stale
statuses). The layer is reopened once after the hold (:func:`make_live`).

The engine writes statuses into the GeoPackage from its worker thread (sqlite3, WAL). QGIS's
OGR provider reads the file afresh on every render (measured: a feature request after an
external commit sees the new values without ``reloadData()``), so recolouring needs no reload
at all: the main thread only collects the changed tiles from the engine's events for a short
moment (:data:`BATCH_MS`, so a burst of events becomes one repaint) and calls
``triggerRepaint()``. The render itself (reading the file, drawing) runs in QGIS's render
threads. Main-thread cost per batch is proportional to the number of changed tiles, not
to the size of the layer (``benchmarks/bench_gis_tile_layer.py``).

A tile split because its job was too big (:mod:`core.retile`) adds rows: QGIS's provider keeps
the feature count and the fields it read when it opened the file, so a batch with a ``split``
tile reloads the provider once (the only reload; splits are rare) before the repaint.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable

from qgis.core import QgsLayerTreeGroup, QgsLayerTreeLayer, QgsMapLayer, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal

from ..core import statuses
from ..core.events import StatusChange
from ..core.jobdb import hold_wal
from .layer_tree import PROP_KIND, PROP_RUN, run_group, run_key
from .tile_style import apply_tile_style

TILES_TABLE = "tiles"
KIND_TILES = "tiles"
#: How long changes are collected before one repaint (well under the 1 s recolour goal).
BATCH_MS = 100


def tile_layer_uri(path: str | os.PathLike, table: str = TILES_TABLE) -> str:
    return f"{os.fspath(path)}|layername={table}"


_log = logging.getLogger(__name__)
#: Run file -> [WAL-holding connection, number of tile layers on it] (main thread only).
_WAL_HOLDS: dict[str, list] = {}
_LIVE = "openeo_tile_jobs_live"  # dynamic property: the layer's file is held


def _hold(path: str) -> bool:
    """Count one more layer on ``path``; True when the hold was opened just now."""
    entry = _WAL_HOLDS.get(path)
    if entry is not None:
        entry[1] += 1
        return False
    try:
        _WAL_HOLDS[path] = [hold_wal(path), 1]
    except (sqlite3.Error, OSError) as exc:  # a read-only copy, a file that is not ours: draw it as it is
        _log.warning("Cannot keep %s live for QGIS: %s", path, exc)
        return False
    return True


def _release(path: str) -> None:
    entry = _WAL_HOLDS.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _WAL_HOLDS[path]
        entry[0].close()


def held_files() -> list[str]:
    """Run files whose WAL this QGIS holds (one per file, however many layers)."""
    return sorted(_WAL_HOLDS)


def make_live(layer: QgsVectorLayer) -> None:
    """Hold the WAL of a tile layer's file for the layer's life; reopen the layer when it was opened before.

    The layer's data source is then reloaded once, so GDAL opens it again as a WAL reader even
    when it first opened it lock-free (a project read, a grid just written).
    """
    if layer.property(_LIVE):
        return
    path = run_key(tile_layer_path(layer))
    layer.setProperty(_LIVE, True)
    _hold(path)
    if path in _WAL_HOLDS:
        layer.destroyed.connect(lambda *_: _release(path))  # after the provider closed its handles
    if layer.dataProvider() is not None:
        layer.dataProvider().reloadData()


def tile_layer_path(layer: QgsMapLayer) -> str:
    """The GeoPackage a tile layer draws (the saved run path when the file is still there)."""
    recorded = layer.customProperty(PROP_RUN)
    source = layer.source().split("|", 1)[0]
    if recorded and os.path.isfile(str(recorded)):
        return str(recorded)
    return source


def watch_project(project: QgsProject | None = None) -> Callable[[], None]:
    """Make every tile layer the project has or adds (a project being read) live; returns the undo."""
    project = project or QgsProject.instance()

    def added(layers: list) -> None:
        for layer in layers:
            if isinstance(layer, QgsVectorLayer) and layer.customProperty(PROP_KIND) == KIND_TILES:
                make_live(layer)

    project.layersAdded.connect(added)
    added(list(project.mapLayers().values()))
    return lambda: project.layersAdded.disconnect(added)


def open_tile_layer(path: str | os.PathLike, name: str | None = None, labels: bool = False) -> QgsVectorLayer:
    """The job database's tile table as a styled OGR vector layer (not added to a project).

    In QGIS with the plugin it becomes live when added to the project (:func:`watch_project`).
    Scripts (``make demo``) hold no WAL: GDAL, opening a file, closes a descriptor of it and so
    drops every SQLite lock this process holds on it, after which another process closing the
    file may remove the WAL under a holder's feet; a script's own engine connection is enough.
    """
    name = name or os.path.splitext(os.path.basename(os.fspath(path)))[0]
    layer = QgsVectorLayer(tile_layer_uri(path), name, "ogr")
    if not layer.isValid():
        raise ValueError(f"QGIS cannot open the tile table of {os.fspath(path)}")
    layer.setCustomProperty(PROP_RUN, run_key(path))
    layer.setCustomProperty(PROP_KIND, KIND_TILES)
    apply_tile_style(layer, labels=labels)
    return layer


def find_tile_layer(path: str | os.PathLike, project: QgsProject | None = None) -> QgsVectorLayer | None:
    """The project's tile layer of a run (by the run's custom property), if any."""
    key = run_key(path)
    for layer in (project or QgsProject.instance()).mapLayers().values():
        if layer.customProperty(PROP_KIND) == KIND_TILES and layer.customProperty(PROP_RUN) == key:
            return layer
    return None


def add_tile_layer(
    path: str | os.PathLike,
    name: str | None = None,
    project: QgsProject | None = None,
    labels: bool = False,
) -> tuple[QgsVectorLayer, QgsLayerTreeGroup]:
    """Add (or find) the run's tile layer at the top of its layer-tree group; returns (layer, group)."""
    project = project or QgsProject.instance()
    name = name or os.path.splitext(os.path.basename(os.fspath(path)))[0]
    group = run_group(path, name, project)
    layer = find_tile_layer(path, project)
    if layer is None:
        layer = open_tile_layer(path, "Tiles", labels=labels)
        project.addMapLayer(layer, False)
        group.insertChildNode(0, QgsLayerTreeLayer(layer))
    return layer, group


class TileLayerUpdater(QObject):
    """Recolours a tile layer from engine events: changed tiles only, batched, then one repaint.

    Connect :meth:`on_status_changed` (and :meth:`on_result_status_changed`) to the run task's
    signals. Main thread only.
    """

    #: Emitted after each repaint request with the number of distinct tiles in the batch.
    repainted = pyqtSignal(int)

    def __init__(self, layer: QgsVectorLayer, batch_ms: int = BATCH_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._layer_id = layer.id()
        self._layer = layer
        self._pending: dict[int | str, str] = {}
        self._first_pending_at: float | None = None
        self._rows_added = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(batch_ms)
        self._timer.timeout.connect(self.flush)
        #: Latest known status per changed tile (fid, else tile id) since the updater started.
        self.statuses: dict[int | str, str] = {}
        #: Seconds from the first event of a batch to its repaint request, for each batch.
        self.latencies: list[float] = []
        layer.willBeDeleted.connect(self._forget_layer)

    def _forget_layer(self) -> None:
        self._layer = None
        self._timer.stop()

    @property
    def layer(self) -> QgsVectorLayer | None:
        return self._layer

    def on_status_changed(self, change: StatusChange) -> None:
        keys: Iterable[int | str] = change.fids or change.tile_ids
        for key in keys:
            self._pending[key] = change.status
        self._rows_added |= change.status == statuses.SPLIT  # its children are new rows
        if self._first_pending_at is None:
            self._first_pending_at = time.monotonic()
        if not self._timer.isActive():
            self._timer.start()

    def on_result_status_changed(self, change: StatusChange) -> None:
        """Result status is shown in map tips only: repaint is not needed, but the tip reads afresh."""

    def flush(self) -> int:
        """Apply the pending changes now (normally called by the batch timer)."""
        self._timer.stop()
        pending, self._pending = self._pending, {}
        if not pending:
            return 0
        self.statuses.update(pending)
        if self._first_pending_at is not None:
            self.latencies.append(time.monotonic() - self._first_pending_at)
            self._first_pending_at = None
        if self._layer is not None:
            if self._rows_added:
                self._layer.reload()  # new rows (and, in a run file from before re-tiling, a new field)
                self._layer.updateExtents()
            self._layer.triggerRepaint()
        self._rows_added = False
        self.repainted.emit(len(pending))
        return len(pending)
