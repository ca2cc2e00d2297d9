"""When to ask a backend about its jobs again: the polling policy, one per backend.

A backend is asked only when something may have changed there:

* soon after jobs were started (at the queue time learned so far), to see ``queued`` ->
  ``running`` -- unless a check is planned shortly after that anyway;
* near the expected end of each active job, learned from this run's own jobs:

  - with ``progress`` (two readings give its rate; one reading and when the job began running
    -- the backend's ``updated`` if it lies between the checks that saw it waiting and running,
    else between those checks, narrowed by the queue times learned sharply on this backend --
    give a first guess): at the predicted end, one check for ends less than ``min_interval``
    apart; a job whose end cannot be predicted yet is asked about no later than the latest its
    one reading allows (had it run since the earliest moment it can have begun, its progress
    would be slowest). Once a backend's ``updated`` moves while a job keeps running, it is not
    taken for the time of a status change on that backend again;
  - else from the durations (start to end) of the jobs of this run that finished on this
    backend (before it has any: on the run's other backends), modelled as a log-normal
    (:mod:`core.duration_model`): each check comes when some job has a :data:`FIND_CHANCE`
    of having ended since the last one, given that model and the jobs' ages -- dense where
    jobs usually end, sparse before and after (a job much older than usual is asked about at
    intervals growing with its age), and never closer than :data:`MIN_WAIT_FRACTION` of a
    typical duration;
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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from .duration_model import DurationModel, quantile

LOOPBACK_MIN_INTERVAL = 1.0
REMOTE_MIN_INTERVAL = 5.0
DEFAULT_MAX_INTERVAL = 120.0
#: A job whose end cannot be guessed is asked about after this fraction of its age.
UNKNOWN_FRACTION = 0.25
#: ... but not more often than this many minimum intervals (the first seconds of a job rarely end it).
UNKNOWN_MIN_INTERVALS = 2.0
#: Predicted ends less than a minimum interval apart are awaited by one check; up to this many minimum
#: intervals apart when that is less than GROUP_FRACTION of a typical job (the earlier job's slot waits).
GROUP_INTERVALS = 2.0
GROUP_FRACTION = 0.05
#: A job past the end its progress predicted is asked about after this fraction of its age.
OVERDUE_FRACTION = 0.02
#: One progress reading predicts the end only when the start of running is known to this fraction of the run.
SINGLE_READING_ERROR = 0.1
#: Without progress, each check comes when a job has this chance of having ended since the last one
#: (given the durations learned): dense where jobs usually end, sparse in the tails.
FIND_CHANCE = 0.3
#: ... but never sooner than this fraction of a typical duration after the last check (with many jobs on a
#: backend some job may end any moment; a slot idle that long costs it at most this fraction of its time).
MIN_WAIT_FRACTION = 0.015
#: A check after a start waits for a check planned within this many minimum intervals instead.
MERGE_INTERVALS = 4.0
#: ... or within this fraction of the expected job duration.
MERGE_FRACTION = 0.6
#: With progress, the check after a start comes this fraction of a typical job into its run.
FIRST_READING_FRACTION = 0.25
#: Queue times needed before they help to date when a job began running.
MIN_QUEUE_SAMPLES = 2
#: Durations kept per kind (the most recent ones).
MAX_SAMPLES = 64


@dataclass(frozen=True)
class JobView:
    """What the policy needs to know of one active job after a check (wall-clock seconds)."""

    job_id: str
    started_at: float  # when its start was asked for
    running: bool
    progress: Optional[float] = None  # percent, as the backend last reported it
    #: The backend's ``updated``: in the openEO API, when the job's status last changed.
    status_since: Optional[float] = None


@dataclass
class _Track:
    """What the policy remembers of one job between checks."""

    last_not_running: Optional[float] = None
    #: It began running between these two times: the checks that saw it waiting and running.
    running_between: Optional[tuple[float, float]] = None
    status_since: Optional[float] = None  # the backend's ``updated`` when first seen running
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
    #: Does the backend's ``updated`` stay put while a job runs, as the openEO API describes it (the
    #: time of the last status change)? False once it moved for a job that stayed running.
    updated_is_status_change: bool = True
    #: Wall time of the next check; None: nothing to ask (no active job).
    next_at: Optional[float] = 0.0
    last_check: Optional[float] = None
    _tracks: dict[str, _Track] = field(default_factory=dict)
    #: The learned state changed since the last :meth:`to_dict` (worth persisting).
    dirty: bool = False
    #: The run's policies (this one included): a backend with nothing learned yet uses what they learned.
    peers: list[PollingPolicy] = field(default_factory=list, repr=False)

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
        if track.running_between is None:
            before = track.last_not_running if track.last_not_running is not None else job.started_at
            track.running_between = (min(before, now), now)
            track.status_since = job.status_since
            since, error = self._seen_running_since(track)
            queued_for = since - job.started_at
            # Only a sharp observation teaches the queue time: a midpoint between checks far apart would
            # push the check after the next start later and later.
            if before >= job.started_at and error <= max(self.min_interval, 0.25 * queued_for):
                self._add(self.queue_times, queued_for)
        elif job.status_since is not None and track.status_since not in (None, job.status_since):
            self.updated_is_status_change = False  # it moved while the job kept running
            self.dirty = True
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
        if not job.running or track is None or track.running_between is None or track.last_progress is None:
            return None
        first, last = track.first_progress, track.last_progress
        if first is not None and last[0] > first[0] and last[1] > first[1]:
            return last[0] + (100.0 - last[1]) * (last[0] - first[0]) / (last[1] - first[1])
        since, error = self._running_since(track, job)
        elapsed = last[0] - since
        if elapsed > 0 and error <= SINGLE_READING_ERROR * elapsed:
            return since + elapsed * 100.0 / last[1]
        return None  # one reading, and when the job began running is too unsure to extrapolate from it

    def latest_end(self, job: JobView) -> Optional[float]:
        """The latest ``job`` can end, from its last progress reading: had it run since the earliest time
        it can have begun running, its progress would be slowest (None without a reading)."""
        track = self._tracks.get(job.job_id)
        if not job.running or track is None or track.running_between is None or track.last_progress is None:
            return None
        since, error = self._running_since(track, job)
        at, percent = track.last_progress
        return at + max(0.0, at - (since - error)) * (100.0 - percent) / percent

    def _seen_running_since(self, track: _Track) -> tuple[float, float]:
        """When the job began running by what the checks saw, and how far off that may be: the time
        of its status change if the backend gives one between the two checks, else their middle."""
        assert track.running_between is not None
        lo, hi = track.running_between
        since = track.status_since
        if self.updated_is_status_change and since is not None and lo <= since <= hi:
            return since, 0.0
        return (lo + hi) / 2, (hi - lo) / 2

    def _running_since(self, track: _Track, job: JobView) -> tuple[float, float]:
        """When ``job`` began running, and how far off that may be: as the checks saw it, narrowed by
        the queue times this backend showed (its start plus one of them), so that one progress
        reading can predict the end."""
        since, error = self._seen_running_since(track)
        lo, hi = since - error, since + error
        queue = quantile(self.queue_times, 0.5)
        if queue is not None and len(self.queue_times) >= MIN_QUEUE_SAMPLES:
            # the whole range seen, not half of it: a few samples understate how far queue times vary
            spread = max(self.min_interval, max(self.queue_times) - min(self.queue_times))
            q_lo, q_hi = job.started_at + queue - spread, job.started_at + queue + spread
            if max(lo, q_lo) <= min(hi, q_hi):  # both hold: the job began running in the overlap
                lo, hi = max(lo, q_lo), min(hi, q_hi)
        return (lo + hi) / 2, (hi - lo) / 2

    def _durations(self) -> list[float]:
        """This backend's learned durations; before it has any, those of the run's other backends."""
        if self.total_times:
            return self.total_times
        return [t for peer in self.peers if peer is not self for t in peer.total_times]

    def _wait_without_progress(self, now: float, jobs: Sequence[JobView]) -> Optional[float]:
        """The wait after which some of ``jobs`` has a FIND_CHANCE of having ended (None: nothing learned)."""
        model = DurationModel.fit(self._durations())
        if model is None or not jobs:
            return None
        ages = [now - job.started_at for job in jobs]

        def chance(wait: float) -> float:
            missed = 1.0
            for age in ages:
                missed *= 1.0 - model.end_chance(age, wait)
            return 1.0 - missed

        lo, hi = 0.0, self.max_interval
        if chance(hi) < FIND_CHANCE:
            return hi
        for _ in range(20):  # bisection: the shortest wait with that chance (to 0.1 ms)
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if chance(mid) >= FIND_CHANCE else (mid, hi)
        # many jobs at once: not more often than a slot can afford to idle
        return max(hi, MIN_WAIT_FRACTION * model.typical())

    def plan(self, now: float, jobs: Sequence[JobView], deadlines: Sequence[float] = ()) -> None:
        """After a check that saw ``jobs`` (the backend's active jobs): when to ask next.

        ``deadlines``: times something must be done about a job anyway (e.g. the running-time limit)."""
        self.last_check = now
        if not jobs:
            self.next_at = None
            return
        margin = 0.25 * self.min_interval
        waits, unpredicted, ends = [], [], []
        for job in jobs:
            end = self.predicted_end(job)
            if end is None:
                unpredicted.append(job)
                latest = self.latest_end(job)
                if latest is not None:  # nearly done by its progress: not later than it can end
                    waits.append(latest + margin - now)
            elif end + margin > now:
                ends.append(end)
            else:
                waits.append(OVERDUE_FRACTION * (now - job.started_at))
        if ends:
            # Ends close together are caught by one check after the last of them: a check at the first
            # would find the others still running and could not ask again for a minimum interval.
            first = min(ends)
            typical = self._typical_total() or 0.0
            window = max(self.min_interval, min(GROUP_INTERVALS * self.min_interval, GROUP_FRACTION * typical))
            waits.append(max(end for end in ends if end <= first + window) + margin - now)
        if unpredicted:
            wait = self._wait_without_progress(now, unpredicted)
            if wait is None:  # nothing learned yet: intervals growing with the oldest job's age
                wait = max(
                    UNKNOWN_MIN_INTERVALS * self.min_interval,
                    UNKNOWN_FRACTION * max(now - job.started_at for job in unpredicted),
                )
            waits.append(wait)
        waits += [t - now for t in deadlines]
        self.next_at = now + min(self.max_interval, max(self.min_interval, min(waits)))

    # -- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        self.dirty = False
        return {
            "queue_times": list(self.queue_times),
            "total_times": list(self.total_times),
            "reports_progress": self.reports_progress,
            "updated_is_status_change": self.updated_is_status_change,
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
        self.updated_is_status_change = bool(data.get("updated_is_status_change", True))


def default_min_interval(is_loopback: bool) -> float:
    return LOOPBACK_MIN_INTERVAL if is_loopback else REMOTE_MIN_INTERVAL
