"""The project's runs in the Run step, and the offer to resume unfinished ones when a project is read.

A project may hold several runs (one tile layer each): the Run step lists them and shows the
chosen one. When a project with unfinished runs is read, the message bar offers to resume:
one button for a single run (it is shown and started), or a button that shows the list.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from qgis.core import Qgis, QgsProject
from qgis.PyQt.QtCore import QObject
from qgis.PyQt.QtWidgets import QPushButton

from ..gis.project import ProjectRunsWatcher, RunInfo, runs_in_project
from .i18n import translator

tr = translator("RunResume")
PLUGIN_NAME = "openEO Tile Jobs"
RUN_STEP = 4


def caption(run: RunInfo) -> str:
    """``name — 3 of 16 tiles left`` (or why the run cannot be read)."""
    name = os.path.splitext(os.path.basename(run.path))[0]
    if not run.exists:
        return tr("{name} — file missing").format(name=name)
    if run.error:
        return tr("{name} — cannot be read").format(name=name)
    left = run.progress.active
    if left:
        return tr("{name} — {left} of {total} tiles left").format(name=name, left=left, total=run.progress.total)
    if run.unfinished:
        return tr("{name} — downloads left").format(name=name)
    return tr("{name} — done").format(name=name)


class RunList(QObject):
    """Keeps the Run step's run list in step with the project; offers to resume unfinished runs.

    ``controller`` is the run controller (``open_run(path) -> bool``, ``start()``, ``page``);
    ``iface`` gives the message bar; ``show_step(index)`` shows a step of the panel.
    """

    def __init__(self, controller: Any, iface: Any, show_step: Any, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.iface = iface
        self.show_step = show_step
        self.project = QgsProject.instance()
        self.offers: list[Any] = []
        self.watcher = ProjectRunsWatcher(self.project, self)
        self.watcher.unfinishedRunsFound.connect(self.offer)
        self.project.readProject.connect(self.refresh)
        self.project.cleared.connect(self.refresh)
        controller.page.runChosen.connect(controller.open_run)
        self.refresh()

    def refresh(self, *_args: Any) -> None:
        self.controller.page.set_runs([(caption(run), run.path) for run in runs_in_project(self.project)])

    def offer(self, runs: list[RunInfo]) -> None:
        """A message bar line with "Resume" (one run) or "Choose…" (several)."""
        self.refresh()
        bar = self.iface.messageBar()
        if len(runs) == 1:
            text = tr("This project has an unfinished run: {run}.").format(run=caption(runs[0]))
            button = QPushButton(tr("Resume"))
            button.clicked.connect(lambda: self.resume(runs[0].path))
        else:
            text = tr("This project has {count} unfinished runs.").format(count=len(runs))
            button = QPushButton(tr("Choose…"))
            button.clicked.connect(lambda: self.show_step(RUN_STEP))
        item = bar.createMessage(PLUGIN_NAME, text)
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Info, 0)
        button.clicked.connect(lambda: bar.popWidget(item))
        self.offers.append(item)

    def resume(self, path: str) -> None:
        self.show_step(RUN_STEP)
        if self.controller.open_run(path):
            self.controller.start()

    def close_down(self) -> None:
        self.watcher.disconnect_project()
        for signal in (self.project.readProject, self.project.cleared):
            try:
                signal.disconnect(self.refresh)
            except TypeError:
                pass
