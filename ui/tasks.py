"""Run a function off QGIS's main thread in a QgsTask and get its result back on the main thread.

The task manager deletes finished tasks, so results travel through the
callbacks, and :data:`_RUNNING` keeps Python references until they end.

Measured here: pyproj (wheel 3.7, PROJ 9.5) segfaults when called from
``QgsTask.run()`` directly once the task manager's QThreadPool threads are reused
or run side by side. The function therefore runs in a plain Python thread that
``run()`` starts and joins (:func:`run_in_python_thread`); that never crashed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from qgis.core import QgsApplication, QgsTask

log = logging.getLogger(__name__)

_RUNNING: set[FunctionTask] = set()


class FunctionTask(QgsTask):
    """Calls ``function(task)`` in a worker thread; ``on_done(result)`` or ``on_error(exc)`` on the main thread.

    ``function`` receives the task so it can check :meth:`isCanceled` or
    :attr:`cancel_event` and report progress with :meth:`setProgress`.
    """

    def __init__(
        self,
        description: str,
        function: Callable[[FunctionTask], Any],
        on_done: Optional[Callable[[Any], None]] = None,
        on_error: Optional[Callable[[BaseException], None]] = None,
        can_cancel: bool = True,
    ) -> None:
        flags = QgsTask.Flag.CanCancel if can_cancel else QgsTask.Flags()
        super().__init__(description, flags)
        self._function = function
        self._on_done = on_done
        self._on_error = on_error
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.cancel_event = threading.Event()
        self.done = False

    def run(self) -> bool:
        try:
            self.result = run_in_python_thread(lambda: self._function(self))
            return True
        except BaseException as exc:  # noqa: BLE001 (handed to the main thread)
            self.error = exc
            return False

    def cancel(self) -> None:
        self.cancel_event.set()
        super().cancel()

    def finished(self, ok: bool) -> None:  # main thread
        self.done = True
        _RUNNING.discard(self)
        try:
            if ok and not self.cancel_event.is_set():
                if self._on_done is not None:
                    self._on_done(self.result)
            elif self._on_error is not None:
                self._on_error(self.error if self.error is not None else TaskCanceledError())
            elif self.error is not None:
                log.warning("%s failed: %s", self.description(), self.error)
        except Exception:  # a callback error must not kill QGIS
            log.exception("Error in the callback of %s", self.description())


def run_in_python_thread(function: Callable[[], Any]) -> Any:
    """Call ``function`` in a new Python thread, wait for it and return its result (or raise its error)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = function()
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="openeo_tile_jobs-task", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


class TaskCanceledError(Exception):
    """The user cancelled the task."""


def run_in_background(
    description: str,
    function: Callable[[FunctionTask], Any],
    on_done: Optional[Callable[[Any], None]] = None,
    on_error: Optional[Callable[[BaseException], None]] = None,
    can_cancel: bool = True,
) -> FunctionTask:
    """Start ``function`` in QGIS's task manager and return the task (keep it to cancel)."""
    task = FunctionTask(description, function, on_done, on_error, can_cancel)
    _RUNNING.add(task)
    QgsApplication.taskManager().addTask(task)
    return task
