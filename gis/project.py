"""Runs saved in a QGIS project: find them again when the project is reopened, and offer to resume.

Nothing extra is written into the project: the tile layer (an OGR layer on the run's
GeoPackage, with its renderer, labels and map tip) is saved by QGIS like any layer, and
its custom properties name the run (:data:`layer_tree.PROP_RUN`). Reopening reads the
GeoPackage, so the layer shows the latest statuses, including those an engine wrote while
the project was closed (a script, ``qgis_process``). The panel calls :func:`unfinished_runs`
(or listens to :class:`ProjectRunsWatcher`) to offer "Resume".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..core.jobdb import JobDBError
from ..core.run_counts import RunCounts, read_run_counts
from .layer_tree import PROP_KIND, PROP_RUN
from .tile_layer import KIND_TILES

_log = logging.getLogger(__name__)


@dataclass
class RunInfo:
    """A run whose tile layer is in the project."""

    path: str  # the job database (GeoPackage)
    layer_id: str
    name: str
    progress: RunCounts = field(default_factory=RunCounts)
    exists: bool = True
    error: Optional[str] = None

    @property
    def active(self) -> int:
        return self.progress.active

    @property
    def unfinished(self) -> bool:
        return self.exists and self.error is None and self.progress.unfinished


def tile_layers(project: Optional[QgsProject] = None) -> list[QgsVectorLayer]:
    """The project's run tile layers."""
    project = project or QgsProject.instance()
    return [
        layer
        for layer in project.mapLayers().values()
        if isinstance(layer, QgsVectorLayer) and layer.customProperty(PROP_KIND) == KIND_TILES
    ]


def runs_in_project(project: Optional[QgsProject] = None) -> list[RunInfo]:
    """Every run of the project with its counts, read from its GeoPackage (an indexed count: milliseconds)."""
    runs = []
    for layer in tile_layers(project):
        path = layer.customProperty(PROP_RUN) or layer.source().split("|", 1)[0]
        info = RunInfo(path=str(path), layer_id=layer.id(), name=layer.name())
        if not os.path.isfile(info.path):
            moved = layer.source().split("|", 1)[0]  # the project was moved with its data: QGIS resolved it
            if os.path.isfile(moved):
                info.path = moved
            else:
                info.exists = False
                runs.append(info)
                continue
        try:
            info.progress = read_run_counts(info.path)
        except (JobDBError, OSError, Exception) as exc:  # noqa: BLE001 (a broken file is reported, not raised)
            info.error = str(exc)
        runs.append(info)
    return runs


def unfinished_runs(project: Optional[QgsProject] = None) -> list[RunInfo]:
    """Runs of the project that can be resumed: tiles still active or downloads not done."""
    return [run for run in runs_in_project(project) if run.unfinished]


def refresh_tile_layers(project: Optional[QgsProject] = None) -> None:
    """Repaint every run's tile layer (e.g. after another process wrote statuses)."""
    for layer in tile_layers(project):
        layer.triggerRepaint()


class ProjectRunsWatcher(QObject):
    """Emits ``unfinishedRunsFound(list[RunInfo])`` each time a project with unfinished runs is read."""

    unfinishedRunsFound = pyqtSignal(object)

    def __init__(self, project: Optional[QgsProject] = None, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.project = project or QgsProject.instance()
        self.project.readProject.connect(self._project_read)

    def _project_read(self, *_args) -> None:
        runs = unfinished_runs(self.project)
        if runs:
            self.unfinishedRunsFound.emit(runs)

    def disconnect_project(self) -> None:
        try:
            self.project.readProject.disconnect(self._project_read)
        except TypeError:
            pass
