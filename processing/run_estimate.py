"""``run_jobs``'s estimate: asked before the jobs start, refined in feedback lines while they run.

Before the first start the backend's ``GET /jobs/{id}/estimate`` for the typical tile (its job
is that tile's job: :func:`core.estimate_job.request_estimate`); the figures become the
algorithm's ``ESTIMATED_CREDITS``, ``ESTIMATED_SECONDS`` and ``ESTIMATE`` outputs (without the
endpoint, or on a resume, the numbers are empty and the text says why). During the run a
feedback line gives the estimate refined from the finished tiles whenever more finished, at
most every :data:`REFINE_EVERY_S`.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from ..core import statuses
from ..core.estimate import ESTIMATE_KEY, RunEstimate, describe, time_left_at_pace
from ..core.estimate_job import parallel_of, refined_estimate, request_estimate, tile_areas
from ..core.jobdb import JobDB
from .common import tr

#: Fewest seconds between two feedback lines of the refined estimate.
REFINE_EVERY_S = 10.0


class RunEstimates:
    """The estimate of one ``run_jobs`` call (the algorithm's thread)."""

    def __init__(self, path: str, scheduler: Any) -> None:
        self.path = path
        self.scheduler = scheduler
        self.parallel = parallel_of(scheduler)
        self.before: Optional[RunEstimate] = None
        self.reason = tr("the run had started before")
        self.last: Optional[RunEstimate] = None
        self._areas: Optional[dict[int, float]] = None
        self._start: Optional[tuple[int, float]] = None  # done, monotonic at the first round
        self._finished = -1
        self._at = -1e18

    def ask(self, feedback: Any) -> None:
        """Before the run: the backend's estimate when tiles wait to start (pushes what it found)."""
        db = self.scheduler.db
        if not db.count_by_status([statuses.NOT_STARTED]).get(statuses.NOT_STARTED):
            return
        try:
            outcome = request_estimate(self.scheduler, feedback)
        except RuntimeError as exc:
            self.reason = str(exc)
            feedback.pushWarning(tr("No estimate before the start: {error}").format(error=exc))
            return
        self.reason = outcome.reason
        if outcome.estimate is not None:
            self.before = outcome.estimate
            db.update_run_record({ESTIMATE_KEY: {**outcome.estimate.to_dict(), "fid": outcome.fid}})

    def on_round(self, progress: Any, feedback: Any) -> None:
        """A round's progress: a feedback line with the refined estimate when tiles finished."""
        if progress is None or not progress.total:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = (progress.done, now)
        finished = progress.counts.get(statuses.FINISHED, 0)
        if not finished or finished == self._finished or now - self._at < REFINE_EVERY_S:
            return
        self._finished, self._at = finished, now
        left = time_left_at_pace(progress.done - self._start[0], now - self._start[1], progress.total - progress.done)
        with JobDB.open(self.path) as db:  # a reader of its own: the engine's connection is the round's
            if self._areas is None:
                self._areas = tile_areas(db, None)
            self.last = refined_estimate(db, self._areas, left, self.parallel)
        feedback.pushInfo(tr("Estimate now: {text}").format(text=describe(self.last)))

    def outputs(self) -> dict[str, Any]:
        """``ESTIMATED_CREDITS``, ``ESTIMATED_SECONDS`` and ``ESTIMATE``: the estimate before the start."""
        estimate = self.before
        if estimate is None:
            text = tr("no estimate before the start: {reason}").format(reason=self.reason)
            return {"ESTIMATED_CREDITS": None, "ESTIMATED_SECONDS": None, "ESTIMATE": text}
        cost = estimate.credits.value if estimate.credits is not None else None
        seconds = estimate.seconds.value if estimate.seconds is not None else None
        return {"ESTIMATED_CREDITS": cost, "ESTIMATED_SECONDS": seconds, "ESTIMATE": describe(estimate)}
