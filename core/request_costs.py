"""What each way of tracking a backend's jobs costs there, measured as the run goes.

The ``GET /jobs`` listing answers for every job in one request but its pages grow with the
user's whole job history (a federation's can be hundreds of kilobytes); one ``GET /jobs/{id}``
per active job is small but one request each. :class:`RequestCosts` keeps moving averages of
both and chooses the cheaper one; it is kept with the polling state in the run record, so a
resumed run starts with what was measured.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

#: One MB of response weighs like one second of waiting when the two ways of tracking are compared.
BYTES_PER_SECOND = 1_000_000.0
#: What every request costs the backend beyond its latency (seconds-equivalent): fewer requests win ties.
REQUEST_OVERHEAD = 0.05

MODE_LISTING = "listing"
MODE_JOBS = "jobs"


@dataclass
class RequestCosts:
    """Measured cost of the two ways to track one backend's jobs (moving averages)."""

    listing_seconds: Optional[float] = None
    listing_bytes: Optional[float] = None
    listing_pages: float = 1.0  # pages a round needed last time
    jobs_per_page: float = 1.0
    job_seconds: Optional[float] = None
    job_bytes: Optional[float] = None

    @staticmethod
    def _avg(old: Optional[float], new: float) -> float:
        return new if old is None else 0.7 * old + 0.3 * new

    def note_listing_page(self, seconds: float, nbytes: int, jobs: int) -> None:
        self.listing_seconds = self._avg(self.listing_seconds, seconds)
        self.listing_bytes = self._avg(self.listing_bytes, float(nbytes))
        self.jobs_per_page = self._avg(self.jobs_per_page, float(max(1, jobs)))

    def note_job(self, seconds: float, nbytes: int) -> None:
        self.job_seconds = self._avg(self.job_seconds, seconds)
        self.job_bytes = self._avg(self.job_bytes, float(nbytes))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COST_FIELDS}

    def load(self, data: Any) -> None:
        """Start from what an earlier session of the run measured (ignoring anything malformed)."""
        if not isinstance(data, dict):
            return
        for name in _COST_FIELDS:
            value = data.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                setattr(self, name, float(value))

    def choose(self, n_jobs: int) -> str:
        """The cheaper way to learn the state of ``n_jobs`` jobs (the listing until it was measured)."""
        if self.listing_seconds is None or self.listing_bytes is None or n_jobs <= 0:
            return MODE_LISTING
        job_seconds = self.job_seconds if self.job_seconds is not None else self.listing_seconds
        job_bytes = self.job_bytes if self.job_bytes is not None else 2 * self.listing_bytes / self.jobs_per_page
        listing = self.listing_pages * (self.listing_seconds + REQUEST_OVERHEAD + self.listing_bytes / BYTES_PER_SECOND)
        jobs = n_jobs * (job_seconds + REQUEST_OVERHEAD + job_bytes / BYTES_PER_SECOND)
        return MODE_JOBS if jobs < listing else MODE_LISTING


_COST_FIELDS = tuple(f.name for f in fields(RequestCosts))


_COST_FIELDS = tuple(f.name for f in fields(RequestCosts))
