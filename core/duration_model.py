"""How long a backend's jobs take, as the polling policy expects it: a log-normal fitted to the
durations learned so far.

Job durations are positive and skewed (most near a typical time, a few much longer), which a
log-normal describes with two numbers. A handful of samples says little about the spread, so
the fitted spread is pulled towards :data:`PRIOR_LOG_SPREAD` as if that had been seen
:data:`PRIOR_WEIGHT` times: three jobs that happened to end within two seconds of each other
do not make the policy expect every job to end in those two seconds. The spread is widened
further for the uncertainty of the mean (the predictive distribution of the next job).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

#: The spread (standard deviation of the log of the duration) assumed before any is measured:
#: 0.5 is a job taking between 0.6x and 1.6x the typical time two times in three.
PRIOR_LOG_SPREAD = 0.5
#: How many samples the prior spread counts for.
PRIOR_WEIGHT = 2.0


def quantile(values: Sequence[float], q: float) -> Optional[float]:
    """The ``q`` quantile of ``values`` (linear interpolation); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * min(1.0, max(0.0, q))
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class DurationModel:
    """A log-normal distribution of job durations (seconds)."""

    log_mean: float
    log_spread: float

    @classmethod
    def fit(cls, durations: Sequence[float]) -> Optional[DurationModel]:
        """The model of ``durations`` (None without any positive one)."""
        logs = [math.log(d) for d in durations if d > 0]
        n = len(logs)
        if not n:
            return None
        mean = sum(logs) / n
        squares = sum((x - mean) ** 2 for x in logs)
        variance = (squares + PRIOR_WEIGHT * PRIOR_LOG_SPREAD**2) / (n - 1 + PRIOR_WEIGHT)
        return cls(mean, math.sqrt(variance * (1.0 + 1.0 / n)))

    def survival(self, t: float) -> float:
        """The share of jobs still running at ``t`` seconds."""
        if t <= 0:
            return 1.0
        return 0.5 * math.erfc((math.log(t) - self.log_mean) / (self.log_spread * math.sqrt(2.0)))

    def end_chance(self, age: float, wait: float) -> float:
        """The chance that a job ``age`` seconds old (not ended yet) ends within ``wait`` seconds."""
        alive = self.survival(age)
        if alive <= 0.0:  # far beyond anything the model expects: as likely any time
            return 1.0
        return 1.0 - self.survival(age + wait) / alive

    def typical(self) -> float:
        """The median duration."""
        return math.exp(self.log_mean)
