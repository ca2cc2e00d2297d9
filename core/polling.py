"""When to ask a backend about its jobs again: the polling policy, one per backend.

A backend is asked only when something may have changed there:

* soon after jobs were started (at the queue time learned so far), to see ``queued`` ->
  ``running`` -- unless a check is planned shortly after that anyway;
* near the expected end of each active job, learned from this run's own jobs:

  - with ``progress`` (two readings give its rate; one reading and the time the job was first
    seen running give a first guess): at the predicted end;
  - else from the durations (start to end) of the jobs of this run that finished on this
    backend: nothing before their 10th percentile; inside the window up to their 90th
    percentile, often enough that the expected wait after a job ends is a small fraction
    of the window (:data:`CHECKS_PER_WINDOW` checks per job in it, shared by all the jobs
    in their windows at once); after it, at intervals growing with the job's age;
  - nothing learned yet (the first jobs, no progress): at intervals growing with the
    oldest job's age (:data:`UNKNOWN_FRACTION` of it);

Checks are never closer than ``min_interval`` (1 s on loopback, 5 s remote by default) nor
further apart than ``max_interval`` (120 s) while the backend has jobs; a backend without
jobs is not asked at all. Backoff and ``Retry-After`` are the backend's own
(:class:`core.backends.Backend`): a check that is due waits until the backend is ready.
What was learned is a small dict (:meth:`PollingPolicy.to_dict`) kept in the run record, so
a resumed run starts with it. All times are wall-clock seconds (job timestamps are).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

LOOPBACK_MIN_INTERVAL = 1.0
REMOTE_MIN_INTERVAL = 5.0
DEFAULT_MAX_INTERVAL = 120.0
#: A job whose end cannot be guessed is asked about after this fraction of its age.
UNKNOWN_FRACTION = 0.25
#: A job past the end its progress predicted is asked about after this fraction of its age.
OVERDUE_FRACTION = 0.02
#: One progress reading predicts the end only when the start of running is known to this fraction of the run.
SINGLE_READING_ERROR = 0.1
#: The window of a job's likely end: these quantiles of the learned durations.
WINDOW = (0.1, 0.9)
#: Checks per job while it is inside its window (the backend's interval divides among its jobs there).
CHECKS_PER_WINDOW = 5.0
#: A check after a start waits for a check planned within this many minimum intervals instead.
MERGE_INTERVALS = 4.0
#: ... or within this fraction of the expected job duration.
MERGE_FRACTION = 0.2
#: With progress, the check after a start comes this fraction of a typical job into its run.
FIRST_READING_FRACTION = 0.15
#: Durations kept per kind (the most recent ones).
MAX_SAMPLES = 64


def quantile(values: Sequence[float], q: float) -> Optional[float]:
    """The ``q`` quantile of ``values`` (linear interpolation); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * min(1.0, max(0.0, q))
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class JobView:
    """What the policy needs to know of one active job after a check (wall-clock seconds)."""

    job_id: str
    started_at: float  # when its start was asked for
    running: bool
    progress: Optional[float] = None  # percent, as the backend last reported it


@dataclass
class _Track:
    """What the policy remembers of one job between checks."""

    last_not_running: Optional[float] = None
    running_since: Optional[float] = None
    running_since_error: float = 0.0  # how far off running_since may be (seconds)
    first_progress: Optional[tuple[float, float]] = None  # (time, percent)
    last_progress: Optional[tuple[float, float]] = None


@dataclass
class PollingPolicy:
    """Decides when one backend is asked next (see the module docstring)."""

    min_interval: float = LOOPBACK_MIN_INTERVAL
    max_interval: float = DEFAULT_MAX_INTERVAL
    queue_times: list[float] = field(default_factory=list)
    #: Start (request) to end (on the backend) of the finished jobs.
    total_times: list[float] = field(default_factory=list)
    #: Did the backend ever report a progress strictly between 0 and 100 for a running job?
    reports_progress: bool = False
    #: Wall time of the next check; None: nothing to ask (no active job).
    next_at: Optional[float] = 0.0
    last_check: Optional[float] = None
    _tracks: dict[str, _Track] = field(default_factory=dict)
    #: The learned state changed since the last :meth:`to_dict` (worth persisting).
    dirty: bool = False

    # -- when ---------------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        return self.next_at is not None and now >= self.next_at

    def seconds_until_due(self, now: float) -> Optional[float]:
        return None if self.next_at is None else max(0.0, self.next_at - now)

    def check_now(self, now: float) -> None:
        """The user asked for a check: the next round asks the backend."""
        self.next_at = now

    def on_started(self, now: float) -> None:
        """Jobs were created/started: check soon (at the learned queue time) unless a check comes soon after."""
        soon = now + self._soon()
        slack = max(MERGE_INTERVALS * self.min_interval, MERGE_FRACTION * (self._typical_total() or 0.0))
        if self.next_at is None or self.next_at > soon + slack:
            self.next_at = soon

    def _soon(self) -> float:
        """After a start: the learned queue time, plus (when the backend reports progress) a little of
        the run, so that the same check reads a progress from which the job's end can be predicted."""
        queue = quantile(self.queue_times, 0.5)
        wait = self.min_interval if queue is None else queue + 0.5 * self.min_interval
        typical = self._typical_total()
        if self.reports_progress and typical is not None:
            wait += FIRST_READING_FRACTION * typical
        return min(self.max_interval, max(self.min_interval, wait))

    def _typical_total(self) -> Optional[float]:
        return quantile(self.total_times, 0.5)

    # -- learning -----------------------------------------------------------------------------

    def observe(self, now: float, job: JobView) -> None:
        """A check saw ``job`` (active): remember when it ran and its progress readings."""
        track = self._tracks.setdefault(job.job_id, _Track())
        if not job.running:
            track.last_not_running = now
            return
        if track.running_since is None:
            # It started running between the check that saw it waiting and this one: take the middle.
            before = track.last_not_running if track.last_not_running is not None else job.started_at
            track.running_since = (before + now) / 2 if before <= now else now
            track.running_since_error = abs(now - before) / 2
            if before >= job.started_at:
                self._add(self.queue_times, track.running_since - job.started_at)
        p = job.progress
        if p is not None and 0 < p < 100:
            self.reports_progress = True
            if track.first_progress is None:
                track.first_progress = (now, float(p))
            track.last_progress = (now, float(p))

    def record_end(self, now: float, job_id: str, started_at: float, ended_at: Optional[float]) -> None:
        """A job of this backend finished: learn its duration (``ended_at``: the backend's time, if known)."""
        self._tracks.pop(job_id, None)
        if ended_at is None or not (started_at <= ended_at <= now + 5.0):
            last = self.last_check if self.last_check is not None else now
            ended_at = (min(last, now) + now) / 2  # it ended between the last check and this one
        self._add(self.total_times, ended_at - started_at)

    def forget(self, job_id: str) -> None:
        self._tracks.pop(job_id, None)

    def _add(self, samples: list[float], value: float) -> None:
        samples.append(round(max(0.0, value), 3))
        del samples[:-MAX_SAMPLES]
        self.dirty = True

    # -- planning -----------------------------------------------------------------------------

    def predicted_end(self, job: JobView) -> Optional[float]:
        """The end ``job``'s progress predicts (wall seconds); None without progress readings."""
        track = self._tracks.get(job.job_id)
        if not job.running or track is None or track.running_since is None or track.last_progress is None:
            return None
        first, last = track.first_progress, track.last_progress
        if first is not None and last[0] > first[0] and last[1] > first[1]:
            return last[0] + (100.0 - last[1]) * (last[0] - first[0]) / (last[1] - first[1])
        elapsed = last[0] - track.running_since
        if elapsed > 0 and track.running_since_error <= SINGLE_READING_ERROR * elapsed:
            return track.running_since + elapsed * 100.0 / last[1]
        return None  # one reading, and when the job began running is too unsure to extrapolate from it

    def end_window(self, job: JobView) -> Optional[tuple[float, float]]:
        """When ``job`` probably ends, from this backend's finished jobs: (earliest, latest) wall seconds."""
        lo, hi = quantile(self.total_times, WINDOW[0]), quantile(self.total_times, WINDOW[1])
        if lo is None or hi is None:
            return None
        return job.started_at + lo, job.started_at + max(hi, lo + self.min_interval)

    def _wait_for(self, now: float, job: JobView, in_window: list[float]) -> Optional[float]:
        """Seconds until ``job`` should be looked at; None when it is inside its window (see ``in_window``)."""
        margin = 0.25 * self.min_interval
        end = self.predicted_end(job)
        if end is not None:
            return end + margin - now if end + margin > now else OVERDUE_FRACTION * (now - job.started_at)
        window = self.end_window(job)
        if window is None:
            return UNKNOWN_FRACTION * (now - job.started_at)
        lo, hi = window
        if now < lo:
            return lo - now
        if now > hi:
            return (now - lo) / CHECKS_PER_WINDOW  # later than most: growing intervals
        in_window.append(hi - lo)
        return None

    def plan(self, now: float, jobs: Sequence[JobView], deadlines: Sequence[float] = ()) -> None:
        """After a check that saw ``jobs`` (the backend's active jobs): when to ask next.

        ``deadlines``: times something must be done about a job anyway (e.g. the running-time limit)."""
        self.last_check = now
        if not jobs:
            self.next_at = None
            return
        in_window: list[float] = []
        waits = [w for w in (self._wait_for(now, job, in_window) for job in jobs) if w is not None]
        if in_window:
            # Each job in its window gets CHECKS_PER_WINDOW checks there; jobs in their windows share them.
            waits.append(min(in_window) / (CHECKS_PER_WINDOW * len(in_window)))
        waits += [t - now for t in deadlines]
        self.next_at = now + min(self.max_interval, max(self.min_interval, min(waits)))

    # -- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        self.dirty = False
        return {
            "queue_times": list(self.queue_times),
            "total_times": list(self.total_times),
            "reports_progress": self.reports_progress,
        }

    def load(self, data: Optional[dict[str, Any]]) -> None:
        """Start from what an earlier session of the run learned."""
        if not isinstance(data, dict):
            return
        for name in ("queue_times", "total_times"):
            values = data.get(name)
            if isinstance(values, list):
                setattr(self, name, [float(v) for v in values if isinstance(v, (int, float))][-MAX_SAMPLES:])
        self.reports_progress = bool(data.get("reports_progress", False))


def default_min_interval(is_loopback: bool) -> float:
    return LOOPBACK_MIN_INTERVAL if is_loopback else REMOTE_MIN_INTERVAL
