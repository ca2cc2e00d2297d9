"""Configuration of the Local demo backend (see the package docstring for every knob)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .durations import Duration

AUTH_MODES = ("none", "basic", "oidc", "basic+oidc")
OVER_LIMIT_MODES = ("queue", "refuse")
COMPUTE_MODES = ("processes", "threads")
ALIASES = {"min_queue_time": "queue_time", "min_run_time": "run_time"}  # the names before distributions


@dataclass
class FaultConfig:
    """Misbehaviour on purpose. Probabilities are per request (or per job for ``job_error``)."""

    error_500: float = 0.0
    error_502: float = 0.0
    error_503: float = 0.0
    rate_limit: float = 0.0  # HTTP 429 with a Retry-After header
    retry_after: int = 1  # seconds, in the Retry-After header of a 429/503
    drop_connection: float = 0.0  # close the socket without any response
    latency: float = 0.0  # seconds added before answering
    job_error: float = 0.0  # a started job ends in error (with an error log entry)
    endpoints: list[str] = field(default_factory=list)  # fnmatch patterns like "GET /jobs*"; empty = every endpoint
    seed: int | None = None  # makes the random draws reproducible

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> FaultConfig:
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown fault settings {unknown}; known: {sorted(names)}")
        faults = cls(**values)
        for name in ("error_500", "error_502", "error_503", "rate_limit", "drop_connection", "job_error"):
            p = float(getattr(faults, name))
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
            setattr(faults, name, p)
        if faults.latency < 0:
            raise ValueError("latency must be >= 0")
        faults.endpoints = [str(e) for e in faults.endpoints]
        return faults

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BackendConfig:
    """Everything the backend can be told at start-up."""

    workers: int = 2
    compute: str = "processes"  # worker processes; "threads" computes in the server's process
    pixel_size: float = 10.0  # metres, synthetic SENTINEL2_L2A
    max_concurrent_jobs_per_user: int = 0  # queued + running; 0 = unlimited
    over_limit: str = "queue"  # "queue": wait for a free slot; "refuse": 400 ConcurrentJobLimit
    queue_time: Duration = field(default_factory=Duration)  # a started job stays "queued" at least this long
    run_time: Duration = field(default_factory=Duration)  # a job stays "running" at least this long (it computes)
    duration_seed: int = 0  # queue and run times are drawn per job from this seed (see durations.py)
    report_progress: bool = True  # False: job metadata has no "progress" (as on many real backends)
    offer_estimate: bool = True  # False: GET /jobs/{id}/estimate answers 501 and is not listed (as on many backends)
    auth: str = "none"
    users: dict[str, str] = field(default_factory=lambda: {"demo": "demo"})  # user -> password
    token_lifetime: float = 3600.0  # seconds, access tokens (basic and OIDC)
    refresh_token_lifetime: float = 30 * 24 * 3600.0
    oidc_auto_approve_after: float | None = None  # seconds; None = only the approval endpoint approves
    oidc_auto_approve_user: str = "demo"
    oidc_poll_interval: int = 1  # seconds, told to device-flow clients
    namespace_timeout: float = 5.0  # seconds, fetching a remote process definition
    cost_per_million_values: float = 0.05  # credits per million loaded values (see costs.py)
    max_pixels_per_job: int = 0  # 0 = unlimited; a job loading more pixels (x * y) fails like an executor OOM
    sync_max_pixel_dates: int = 2_000_000  # POST /result: pixels x dates at most (else ProcessGraphComplexity)
    faults: FaultConfig = field(default_factory=FaultConfig)
    host: str = "127.0.0.1"

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> BackendConfig:
        names = {f.name for f in dataclasses.fields(cls)} | set(ALIASES)
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown LocalBackend settings {unknown}; known: {sorted(names)}")
        for old, new in ALIASES.items():
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"give {new} or {old}, not both")
                kwargs[new] = kwargs.pop(old)
        faults = kwargs.pop("faults", None)
        for name in ("queue_time", "run_time"):
            if name in kwargs:
                kwargs[name] = Duration.parse(kwargs[name])
        config = cls(**kwargs)
        config.faults = faults if isinstance(faults, FaultConfig) else FaultConfig.from_dict(faults)
        config.validate()
        return config

    def validate(self) -> None:
        if self.auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}, got {self.auth!r}")
        if self.over_limit not in OVER_LIMIT_MODES:
            raise ValueError(f"over_limit must be one of {OVER_LIMIT_MODES}, got {self.over_limit!r}")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.compute not in COMPUTE_MODES:
            raise ValueError(f"compute must be one of {COMPUTE_MODES}, got {self.compute!r}")
        if self.max_pixels_per_job < 0 or self.sync_max_pixel_dates < 0:
            raise ValueError("max_pixels_per_job and sync_max_pixel_dates must be >= 0")
        if self.pixel_size <= 0:
            raise ValueError("pixel_size must be > 0")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be > 0")

    @property
    def basic_enabled(self) -> bool:
        return self.auth in ("basic", "basic+oidc")

    @property
    def oidc_enabled(self) -> bool:
        return self.auth in ("oidc", "basic+oidc")
