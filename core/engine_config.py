"""How the engine runs (:class:`EngineConfig`) and what one round did (:class:`StepReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .events import Progress
from .retile import DEFAULT_SIZE_ERROR_CODES, DEFAULT_SIZE_LOG_PATTERNS, SizeErrorRules


@dataclass
class EngineConfig:
    """How the engine runs. Times in seconds."""

    output_dir: Path | str
    #: Total job attempts per tile; a job in error is retried while attempts remain (1 = no retry).
    max_attempts: int = 1
    #: Cancel jobs running longer than this (None: never).
    cancel_running_after: Optional[float] = None
    download: bool = True
    download_workers: int = 2
    download_attempts: int = 3
    download_retry_base: float = 1.0
    #: ``limit`` of a ``GET /jobs`` page.
    listing_page_size: int = 100
    #: Listing pages per backend per round; jobs still missing then are asked for one by one.
    max_listing_pages: int = 10
    #: ``GET /jobs/{id}`` fallbacks per backend per round.
    max_fallback_gets: int = 20
    #: New jobs per backend per round (bounds a round when capacity is large).
    max_starts_per_round: int = 20
    #: Error-log fetches per round (jobs beyond wait for the next round).
    max_error_logs_per_round: int = 10
    #: Wait before starting again on a backend that said ConcurrentJobLimit.
    concurrent_limit_wait: float = 10.0
    #: A queued_for_start job still "created" on the backend after this long is started again.
    restart_stale_start_after: float = 60.0
    #: An interrupted creation younger than this is not reverted yet (its POST may still land).
    intent_grace: float = 2.0
    #: Fewest seconds between two checks of one backend's jobs (None: 1 s on loopback, 5 s remote).
    poll_min: Optional[float] = None
    #: Most seconds between two checks of one backend's jobs while it has jobs.
    poll_max: float = 120.0
    #: Backoff of a backend after transient failures (given to every backend of the run).
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    #: Adaptive re-tiling (:mod:`core.retile`): how many times a tile whose job failed for its size
    #: is split into 4 (0: never; 2: a tile and its children are split, its grandchildren are not).
    split_levels: int = 2
    #: Error-log codes that mean the job was too big (exact, case-insensitive).
    split_error_codes: tuple[str, ...] = DEFAULT_SIZE_ERROR_CODES
    #: Regular expressions (case-insensitive) that mean the job was too big when found in an error log.
    split_log_patterns: tuple[str, ...] = DEFAULT_SIZE_LOG_PATTERNS

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.split_levels < 0:
            raise ValueError("split_levels must be 0 or more")
        self.split_error_codes = tuple(str(c) for c in self.split_error_codes)  # JSON gives lists back
        self.split_log_patterns = tuple(str(p) for p in self.split_log_patterns)
        SizeErrorRules(self.split_error_codes, self.split_log_patterns)  # a bad pattern: ValueError now

    def size_error_rules(self) -> SizeErrorRules:
        return SizeErrorRules(self.split_error_codes, self.split_log_patterns)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in self.__dict__.items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> EngineConfig:
        values = {k: v for k, v in {**data, **overrides}.items() if k in cls.__dataclass_fields__}
        return cls(**values)


@dataclass
class StepReport:
    """What one round did."""

    changes: dict[str, list[Any]] = field(default_factory=dict)  # status -> tile ids
    result_changes: dict[str, list[Any]] = field(default_factory=dict)  # result_status -> tile ids
    started: int = 0
    requests: int = 0
    #: Bytes of the API responses of this round (downloads not included).
    bytes: int = 0
    listing_requests: dict[str, int] = field(default_factory=dict)
    fallback_requests: dict[str, int] = field(default_factory=dict)
    #: ``GET /jobs/{id}`` sent as the round's tracking (the policy found them cheaper than the listing).
    job_requests: dict[str, int] = field(default_factory=dict)
    downloads_queued: int = 0
    downloads_finished: int = 0
    progress: Optional[Progress] = None
    done: bool = False
    #: Nothing can progress: jobs cannot be built, and nothing is tracked or downloading.
    stalled: bool = False
    duration: float = 0.0
    http_seconds: float = 0.0  # waiting for responses, summed over threads
    #: Time the round's own thread spent waiting on the network (its requests, and the pool's).
    #: ``duration - io_seconds`` is the engine's own time.
    io_seconds: float = 0.0
    #: CPU time of the round's own thread.
    cpu_seconds: float = 0.0
    skipped: bool = False  # another round was in progress, or the engine is stopped
    #: Why no job can be started (e.g. the process definition cannot be read); None when fine.
    blocked: Optional[str] = None

    def tracking_requests(self) -> int:
        """Requests this round sent to learn job statuses (listing pages and per-job GETs)."""
        return (
            sum(self.listing_requests.values()) + sum(self.fallback_requests.values()) + sum(self.job_requests.values())
        )
