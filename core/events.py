"""What the engine tells the outside world: a listener interface and a safe fan-out.

Listeners are called from the thread that runs :meth:`Scheduler.step` (a worker thread
under QGIS): a QGIS listener must hand the payload to the main thread (signal/slot)
before touching layers or widgets. Every payload is plain data, already redacted.
A listener that raises is logged and otherwise ignored: no listener can end the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

_log = logging.getLogger(__name__)

#: Backend states shown by the UI.
BACKEND_OK = "ok"
BACKEND_BACKOFF = "backoff"  # transient failures: waiting before the next request
BACKEND_NEEDS_SIGN_IN = "needs_sign_in"  # credentials missing/expired: its tiles wait
BACKEND_OFFLINE = "offline"  # cannot connect at all (yet); retried with backoff


@dataclass(frozen=True)
class StatusChange:
    """Tiles that moved to ``status`` in one round (``fids`` are the GeoPackage feature ids)."""

    status: str
    tile_ids: tuple[Any, ...]
    fids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Progress:
    """Counts after a round: tiles per status, downloads per result_status, jobs per backend,
    and seconds until each backend with jobs is asked about them again."""

    counts: dict[str, int]
    total: int
    downloads: dict[str, int] = field(default_factory=dict)
    active_per_backend: dict[str, int] = field(default_factory=dict)
    next_check_in: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Tiles whose work is over (any final status)."""
        from .statuses import FINAL_STATUSES

        return sum(n for s, n in self.counts.items() if s in FINAL_STATUSES)

    @property
    def failed(self) -> int:
        """Tiles whose job failed, could not start or was canceled."""
        from .statuses import FAILED_STATUSES

        return sum(n for s, n in self.counts.items() if s in FAILED_STATUSES)

    @property
    def with_jobs(self) -> int:
        """Tiles whose job is on a backend (or being created or started)."""
        from .statuses import TRACKED_STATUSES

        return sum(self.counts.get(s, 0) for s in TRACKED_STATUSES)

    @property
    def next_check(self) -> Optional[float]:
        """Seconds until the next backend is asked about its jobs; None when none has jobs."""
        return min(self.next_check_in.values()) if self.next_check_in else None


@dataclass(frozen=True)
class LogLine:
    level: int  # logging level
    message: str
    backend: Optional[str] = None
    tile_id: Any = None
    job_id: Optional[str] = None


#: The engine's events, declared once: listener method -> (Qt signal name, argument types).
#: :class:`EngineListener` has one method per entry; the QGIS side (``gis.run_task``) makes its
#: signals and its relay from this table, so adding an event is one line here plus its method.
ENGINE_EVENTS: dict[str, tuple[str, tuple[type, ...]]] = {
    "on_status_changed": ("statusChanged", (object,)),  # StatusChange
    "on_result_status_changed": ("resultStatusChanged", (object,)),  # StatusChange of result_status
    "on_progress": ("progressReported", (object,)),  # Progress
    "on_costs": ("costsChanged", (float, object)),  # total, {backend: costs}
    "on_log": ("logLine", (object,)),  # LogLine
    "on_needs_sign_in": ("needsSignIn", (str, str)),  # backend, reason
    "on_backend_state": ("backendStateChanged", (str, str, str)),  # backend, state, detail
}


class EngineListener:
    """Subclass and override what you need; every method is a no-op by default (see :data:`ENGINE_EVENTS`)."""

    def on_status_changed(self, change: StatusChange) -> None:
        """Tiles changed job status (one call per new status per round)."""

    def on_result_status_changed(self, change: StatusChange) -> None:
        """Tiles changed download status (``change.status`` is a result_status)."""

    def on_progress(self, progress: Progress) -> None:
        """Counts after each round."""

    def on_costs(self, total: float, per_backend: dict[str, float]) -> None:
        """Total reported costs (backend currency) when they changed."""

    def on_log(self, line: LogLine) -> None:
        """A line for the user's log (already redacted)."""

    def on_needs_sign_in(self, backend: str, reason: str) -> None:
        """``backend`` cannot go on without the user signing in again; its tiles wait."""

    def on_backend_state(self, backend: str, state: str, detail: str) -> None:
        """A backend's state changed (``BACKEND_*`` constants)."""


class EventHub(EngineListener):
    """Fans events out to listeners; a failing listener is logged and skipped."""

    def __init__(self, listeners: Sequence[EngineListener] = ()) -> None:
        self._listeners: list[EngineListener] = list(listeners)

    def subscribe(self, listener: EngineListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def unsubscribe(self, listener: EngineListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, method: str, *args: Any) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, method)(*args)
            except Exception:  # noqa: BLE001 - a listener must never end the loop
                _log.exception("Event listener %r failed in %s", listener, method)


def _fan_out(method: str):
    def emit(self: EventHub, *args: Any) -> None:
        self._emit(method, *args)

    emit.__name__ = method
    return emit


for _method in ENGINE_EVENTS:
    setattr(EventHub, _method, _fan_out(_method))


class RecordingListener(EngineListener):
    """Keeps every event in lists: handy for scripts and tests."""

    def __init__(self) -> None:
        self.status_changes: list[StatusChange] = []
        self.result_changes: list[StatusChange] = []
        self.progress: list[Progress] = []
        self.costs: list[float] = []
        self.logs: list[LogLine] = []
        self.sign_in: list[tuple[str, str]] = []
        self.backend_states: list[tuple[str, str, str]] = []

    def on_status_changed(self, change: StatusChange) -> None:
        self.status_changes.append(change)

    def on_result_status_changed(self, change: StatusChange) -> None:
        self.result_changes.append(change)

    def on_progress(self, progress: Progress) -> None:
        self.progress.append(progress)

    def on_costs(self, total: float, per_backend: dict[str, float]) -> None:
        self.costs.append(total)

    def on_log(self, line: LogLine) -> None:
        self.logs.append(line)

    def on_needs_sign_in(self, backend: str, reason: str) -> None:
        self.sign_in.append((backend, reason))

    def on_backend_state(self, backend: str, state: str, detail: str) -> None:
        self.backend_states.append((backend, state, detail))
