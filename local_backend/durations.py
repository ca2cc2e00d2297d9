"""How long a started job stays ``queued`` and ``running`` at least: a fixed number of seconds or a
distribution, sampled per job so tests and benchmarks can run realistic mixes reproducibly.

Accepted forms (command line and Python API alike):

- ``60`` or ``"60"``: always 60 s;
- ``"uniform:40,80"``: uniformly between 40 and 80 s;
- ``"lognormal:60,0.3"``: log-normal with a MEAN of 60 s and sigma 0.3 (of the underlying normal).

A job's draw depends only on the seed, the job's creation number on this backend and whether it
is the queue or the run time, so the same seed and the same order of job creation give the same
durations whatever the timing of the workers.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

KINDS = ("fixed", "uniform", "lognormal")


@dataclass(frozen=True)
class Duration:
    kind: str = "fixed"
    a: float = 0.0  # fixed: seconds; uniform: low; lognormal: mean seconds
    b: float = 0.0  # uniform: high; lognormal: sigma

    @classmethod
    def parse(cls, value: Duration | float | int | str | None) -> Duration:
        """A :class:`Duration` from ``60``, ``"60"``, ``"uniform:40,80"`` or ``"lognormal:60,0.3"``."""
        if value is None:
            return cls()
        if isinstance(value, Duration):
            return value
        if isinstance(value, (int, float)):
            return cls._checked("fixed", float(value), 0.0)
        text = str(value).strip()
        kind, sep, rest = text.partition(":")
        if not sep:
            return cls._checked("fixed", _number(text, text), 0.0)
        kind = kind.strip().lower()
        parts = [p for p in rest.split(",") if p.strip()]
        if kind not in ("uniform", "lognormal") or len(parts) != 2:
            raise ValueError(f"expected seconds, 'uniform:LOW,HIGH' or 'lognormal:MEAN,SIGMA', got {text!r}")
        return cls._checked(kind, _number(parts[0], text), _number(parts[1], text))

    @classmethod
    def _checked(cls, kind: str, a: float, b: float) -> Duration:
        if a < 0 or b < 0:
            raise ValueError(f"durations must not be negative ({kind}: {a:g}, {b:g})")
        if kind == "uniform" and b < a:
            raise ValueError(f"uniform:LOW,HIGH needs LOW <= HIGH, got {a:g},{b:g}")
        return cls(kind, a, b)

    @property
    def mean(self) -> float:
        return (self.a + self.b) / 2 if self.kind == "uniform" else self.a

    def sample(self, seed: int, job_number: int, what: str) -> float:
        """Seconds for job ``job_number`` (its creation number); ``what`` is "queue" or "run"."""
        if self.kind == "fixed" or self.a == 0:
            return self.a
        digest = hashlib.sha256(f"{seed}:{job_number}:{what}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        mu = math.log(self.a) - self.b**2 / 2  # so that the mean is self.a
        return rng.lognormvariate(mu, self.b)

    def __str__(self) -> str:
        return f"{self.a:g}" if self.kind == "fixed" else f"{self.kind}:{self.a:g},{self.b:g}"


def _number(text: str, whole: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a number in duration {whole!r}: {text!r}") from None
