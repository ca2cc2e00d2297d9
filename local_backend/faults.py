"""Fault injection (misbehaviour on purpose) and the per-endpoint request counter."""

from __future__ import annotations

import fnmatch
import random
import threading
from collections import Counter

from .config import FaultConfig


class FaultInjector:
    """Draws, per request, whether to add latency, drop the connection or answer an error."""

    def __init__(self, config: FaultConfig):
        self._lock = threading.Lock()
        self._config = config
        self._random = random.Random(config.seed)

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config

    def set(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._random = random.Random(config.seed)

    def draw(self, endpoint: str) -> tuple[float, str | None]:
        """(latency seconds, action) with action one of None, "drop", "500", "502", "503", "429"."""
        with self._lock:
            config = self._config
            if config.endpoints and not any(fnmatch.fnmatchcase(endpoint, p) for p in config.endpoints):
                return 0.0, None
            r = self._random.random()
        acc = 0.0
        for action, p in (
            ("drop", config.drop_connection),
            ("500", config.error_500),
            ("502", config.error_502),
            ("503", config.error_503),
            ("429", config.rate_limit),
        ):
            acc += p
            if r < acc:
                return config.latency, action
        return config.latency, None

    def job_fails(self) -> bool:
        with self._lock:
            p = self._config.job_error
            return p > 0 and self._random.random() < p


class RequestCounter:
    """Requests received per endpoint key such as ``"GET /jobs/{job_id}"`` (faulted ones included)
    and the bytes of the response bodies sent for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._bytes: Counter[str] = Counter()

    def add(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def add_bytes(self, key: str, size: int) -> None:
        with self._lock:
            self._bytes[key] += size

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def bytes_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._bytes)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._bytes.clear()
