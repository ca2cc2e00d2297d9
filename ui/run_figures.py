"""The figures of one run: active time across sessions and the time left at its own pace.

Plain Python with an injectable clock, so the arithmetic is tested with a fake one.

- **Elapsed** is the time the engine was running this run, summed over every session: what
  earlier sessions recorded in the run record (:data:`ACTIVE_TIME_KEY`) plus this session's.
- **Time left** comes from the pace measured in this session only, from the first progress
  report after a start on: tiles that finished on the backend while QGIS was closed or the run
  stopped are all found in the first round and would make the pace look far too fast.
  Until :data:`MIN_EVIDENCE` tiles have finished since then, there is no estimate.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

#: Run record key holding the run's active time in seconds (sessions before this one).
ACTIVE_TIME_KEY = "active_time_s"
#: Tiles that must finish in this session before a time left is estimated.
MIN_EVIDENCE = 2

Clock = Callable[[], float]


class RunClock:
    """Active time and pace of one run; ``clock`` returns seconds (``time.monotonic``)."""

    def __init__(self, recorded_s: float = 0.0, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._recorded_s = max(0.0, float(recorded_s or 0.0))
        self._started: Optional[float] = None
        # pace evidence of this session: done count and time at the first report after a start
        self._base_done: Optional[int] = None
        self._base_time: Optional[float] = None
        self._paced_s = 0.0  # active seconds of earlier start/stop cycles of this session, since their base
        self._paced_done = 0  # tiles done in those cycles, since their base
        self._done = 0
        #: Range of the time left as factors of it (low, high): the spread of the finished tiles'
        #: job times, set by the estimate's refinement (ui.run_estimate); (1, 1) = no range.
        self.spread: tuple[float, float] = (1.0, 1.0)

    @property
    def running(self) -> bool:
        return self._started is not None

    def start(self) -> None:
        if self._started is None:
            self._started = self._clock()
            self._base_done = self._base_time = None

    def stop(self) -> None:
        """The engine stopped: this stretch of active time is added to the run's."""
        if self._started is None:
            return
        now = self._clock()
        self._recorded_s += now - self._started
        if self._base_time is not None and self._base_done is not None:
            self._paced_s += now - self._base_time
            self._paced_done += max(0, self._done - self._base_done)
        self._started = None
        self._base_done = self._base_time = None

    def observe(self, done: int) -> None:
        """A progress report: ``done`` tiles of the run have a final status."""
        self._done = done
        if self._started is not None and self._base_time is None:
            self._base_done, self._base_time = done, self._clock()

    def elapsed(self) -> float:
        """Active seconds of the run, every session included."""
        running = self._clock() - self._started if self._started is not None else 0.0
        return self._recorded_s + running

    def pace(self) -> Optional[float]:
        """Tiles per second measured in this session, or None without enough evidence."""
        seconds, done = self._paced_s, self._paced_done
        if self._started is not None and self._base_time is not None and self._base_done is not None:
            seconds += self._clock() - self._base_time
            done += max(0, self._done - self._base_done)
        if done < MIN_EVIDENCE or seconds <= 0:
            return None
        return done / seconds

    def remaining(self, total: int) -> Optional[float]:
        """Seconds left for the tiles not done yet at this session's pace (None: no estimate yet)."""
        left = max(0, total - self._done)
        if left == 0:
            return 0.0
        pace = self.pace()
        return None if pace is None else left / pace

    def remaining_span(self, total: int) -> Optional[tuple[float, float, float]]:
        """(low, value, high) seconds left: :meth:`remaining` with the range of :attr:`spread`."""
        value = self.remaining(total)
        if value is None:
            return None
        low, high = self.spread
        return value * min(1.0, low), value, value * max(1.0, high)
