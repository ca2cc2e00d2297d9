"""The driver's machinery inside QGIS: timed waits on the event loop, a lateness heartbeat, a stall sampler.

Imported by :mod:`driver` (which QGIS runs with ``--code``); nothing here knows the plugin.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from qgis.PyQt.QtCore import QTimer


def until(predicate, timeout: float, what: str):
    return (predicate, timeout, what)


def sleep(seconds: float):
    end = time.monotonic() + seconds
    return (lambda: time.monotonic() >= end, seconds + 5, f"{seconds} s")


class Heartbeat:
    """A 20 ms timer on the main thread; lateness = how much later than due each tick came."""

    INTERVAL_MS = 20

    def __init__(self, started: float) -> None:
        self.started = started
        self.late_ms: list[float] = []
        self.peaks: list[tuple[float, int]] = []
        self.measuring = False
        self.paused = False
        self._last = time.monotonic()
        self._timer = QTimer()
        self._timer.setInterval(self.INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.monotonic()
        if self.measuring and not self.paused:
            late = max(0.0, (now - self._last) * 1000 - self.INTERVAL_MS)
            self.late_ms.append(late)
            if late > 50:
                self.peaks.append((round(now - self.started, 2), round(late)))
        self.paused = False
        self._last = now

    def pause(self) -> None:
        """The driver's own blocking work (a screenshot) does not count: skip the tick it delays."""
        self.paused = True


class StallSampler:
    """A Python thread that notes where the main thread is when the heartbeat is late (> 60 ms)."""

    def __init__(self, heartbeat: Heartbeat, report: Callable[[str, Any], None], long_stall: Callable[[], Any]) -> None:
        self.heartbeat = heartbeat
        self.report = report  # report(key, value): into the driver's result
        self.long_stall = long_stall  # what to note once when the main thread is stuck for 2 s
        self.main = threading.main_thread().ident
        self.stacks: dict[str, int] = {}
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        noted = False
        while True:
            time.sleep(0.02)
            if self.heartbeat.measuring and time.monotonic() - self.heartbeat._last > 0.08:
                frame = sys._current_frames().get(self.main)
                if time.monotonic() - self.heartbeat._last > 2 and not noted:
                    noted = True
                    self.report("long_stall", self.long_stall())
                if frame is not None:
                    where = " < ".join(
                        f"{Path(f.filename).name}:{f.lineno} {f.name}"
                        for f in traceback.extract_stack(frame)[-6:][::-1]
                    )
                    self.stacks[where] = self.stacks.get(where, 0) + 1
                    self.report("stall_stacks", sorted(self.stacks.items(), key=lambda kv: -kv[1])[:8])


class Journey:
    """Runs a generator of waits (``until``/``sleep``) off a 50 ms timer; a failure ends QGIS's session."""

    def __init__(self, script: Callable, on_failure: Callable[[str], None]) -> None:
        self.generator = script()
        self.on_failure = on_failure
        self.wait = None
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        try:
            if self.wait is not None:
                predicate, deadline, what = self.wait
                if not predicate():
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"timed out waiting for {what}")
                    return
            predicate, timeout, what = next(self.generator)
            self.wait = (predicate, time.monotonic() + timeout, what)
        except StopIteration:
            self.timer.stop()
        except Exception:  # noqa: BLE001 - reported to the test, then QGIS is closed
            self.timer.stop()
            self.on_failure(traceback.format_exc())
