"""Quitting QGIS during a run: the run stops first (within a second), then QGIS quits, on the first request.

QGIS asks "Do you want to try canceling these active tasks?" when it is asked to quit while a
task runs, cancels them, and then does not quit (QGIS 3.22; later versions skip the question for
tasks flagged ``CancelWithoutPrompt``, which the run task is where it exists). This filter sees
the quit request first (Ctrl+Q, the window's close button), stops the runs, and asks QGIS to
quit again once they have ended, so neither the question nor a second Ctrl+Q is needed.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QEvent, QObject, QTimer

from ..gis import run_task

#: Give up waiting for the runs after this long and let QGIS handle the quit as it would.
STOP_TIMEOUT_S = 10.0


class QuitGuard(QObject):
    """Event filter on QGIS's Exit action and main window (``iface`` gives both)."""

    def __init__(self, iface: Any, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.exit_action = iface.actionExit()
        self.window = iface.mainWindow()
        self._close_window = False
        self._deadline = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._check)
        self.exit_action.installEventFilter(self)
        self.window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        quitting = (watched is self.exit_action and event.type() == QEvent.Type.Shortcut) or (
            watched is self.window and event.type() == QEvent.Type.Close
        )
        if not quitting or not run_task.RUNNING or self._timer.isActive():
            return False
        for task in list(run_task.RUNNING):
            task.cancel()
        self._close_window = watched is self.window
        self._deadline = time.monotonic() + STOP_TIMEOUT_S
        self._timer.start()
        event.ignore()
        return True

    def _check(self) -> None:
        idle = not run_task.RUNNING and QgsApplication.taskManager().countActiveTasks() == 0
        if not idle and time.monotonic() < self._deadline:
            return
        self._timer.stop()
        if self._close_window:
            self.window.close()
        else:
            self.exit_action.trigger()

    def remove(self) -> None:
        self._timer.stop()
        self.exit_action.removeEventFilter(self)
        self.window.removeEventFilter(self)
