"""The error policy as pure functions: what kind of failure an exception is, and how long to wait.

Kinds (see issue 5):

* ``transient``   -- 5xx, connection errors, timeouts: back off exponentially, with jitter, per backend;
* ``rate_limited`` -- 429: wait what Retry-After says (else back off);
* ``concurrent_limit`` -- ConcurrentJobLimit: the backend is full; try the start later, never start_failed;
* ``auth``        -- 401/403 TokenInvalid / AuthenticationRequired: refresh, else "needs sign-in";
* ``not_found``   -- 404 (JobNotFound): the job is gone on the backend;
* ``client``      -- any other 4xx: the request itself is wrong (e.g. a bad process graph);
* ``other``       -- anything else (a bug, a malformed response): treated like transient by callers.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Callable, Optional

import requests

TRANSIENT = "transient"
RATE_LIMITED = "rate_limited"
CONCURRENT_LIMIT = "concurrent_limit"
AUTH = "auth"
NOT_FOUND = "not_found"
CLIENT = "client"
OTHER = "other"

AUTH_CODES = frozenset(
    {"TokenInvalid", "AuthenticationRequired", "AuthenticationSchemeInvalid", "CredentialsInvalid", "Unauthorized"}
)
CONCURRENT_CODES = frozenset({"ConcurrentJobLimit", "ConcurrentJobLimitReached", "TooManyJobs"})


def status_and_code(exc: BaseException) -> tuple[Optional[int], Optional[str]]:
    """HTTP status and openEO error code of an openeo client exception (or a requests HTTPError)."""
    status = getattr(exc, "http_status_code", None)
    code = getattr(exc, "code", None)
    if status is None and isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
    return status, code if isinstance(code, str) else None


def classify(exc: BaseException) -> str:
    """The kind of failure ``exc`` is (one of the module constants)."""
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return TRANSIENT
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return TRANSIENT
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TRANSIENT
    status, code = status_and_code(exc)
    if code in CONCURRENT_CODES:
        return CONCURRENT_LIMIT
    if status is None:
        return OTHER
    if status == 429:
        return RATE_LIMITED
    if code in AUTH_CODES or status == 401:
        return AUTH
    if status >= 500:
        return TRANSIENT
    if status == 404:
        return NOT_FOUND
    if status == 403:
        return AUTH if code in AUTH_CODES else CLIENT
    if 400 <= status < 500:
        return CLIENT
    return OTHER


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``base * 2**(n-1)`` capped at ``cap``, times a factor in [0.5, 1]."""

    base: float = 1.0
    cap: float = 60.0
    #: Longest Retry-After honoured (a misconfigured server must not park a run for a day).
    retry_after_cap: float = 600.0
    failures: int = 0
    until: float = 0.0
    rng: Callable[[], float] = random.random

    def delay(self) -> float:
        raw = min(self.cap, self.base * (2 ** max(0, self.failures - 1)))
        return raw * (0.5 + 0.5 * self.rng())

    def fail(self, now: float, wait: Optional[float] = None) -> float:
        """Count a failure; wait ``wait`` seconds if given (Retry-After), else the backoff delay."""
        self.failures += 1
        d = self.delay() if wait is None else min(max(wait, 0.0), self.retry_after_cap)
        self.until = max(self.until, now + d)
        return d

    def succeed(self) -> None:
        self.failures = 0
        self.until = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.until
