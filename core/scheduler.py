"""The job engine: one openEO batch job per tile, on several backends, crash-safe, step by step.

``Scheduler.step()`` does one bounded round and never sleeps (the caller decides the cadence:
a QgsTask every ~1 s, or :meth:`Scheduler.run` in scripts):

1. apply finished downloads;
2. per backend: connect / refresh the token when due (skipped while backing off or while
   the backend needs sign-in);
3. **track**: one ``GET /jobs`` listing per backend, following ``next`` links only while
   some tracked job is still missing, matched by job id (and by client token, for jobs
   whose creation was interrupted); ``GET /jobs/{id}`` only for jobs the listing lacks;
4. react: running -> ``running_start_time``; finished -> download queued; error -> error
   logs into ``last_error`` and ``job_<id>/errors.json``, automatic retry while attempts
   remain; jobs running longer than the limit are canceled;
5. **start**: new jobs up to each backend's capacity (``parallel_jobs``, ``queueing_limit``),
   first backend first; jobs left ``created`` are started;
6. queue downloads on the worker pool.

Crash safety: before ``POST /jobs`` the tile is written ``created`` with a fresh
``client_token`` and no job id (one transaction for the round's intents); the token is in
the job's title and description. A tile ``created`` without a job id is an interrupted
creation: it is matched against the listing by token and adopted, or, when the listing
does not have it, reverted to ``not_started`` -- so no job is created twice. After a
restart, tiles left ``created`` / ``queued_for_start`` whose job is still ``created`` on the
backend are started again; downloads left ``downloading`` are queued again (``.part`` files
are never results).

Errors follow :mod:`.retry`: transient failures back the backend off (with jitter), 429
honours Retry-After, ConcurrentJobLimit postpones starts, authentication failures refresh
or put the backend in "needs sign-in" (its tiles wait), a 4xx on create makes that tile
``start_failed`` with the backend's message. No exception ends a round or the loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from openeo.util import rfc3339

from . import retry, statuses
from .backends import (
    Backend,
    BackendPool,
    SignInRequiredError,
)
from .downloads import (
    DOWNLOADED,
    DOWNLOADING,
    FAILED,
    PENDING,
    BackendAccess,
    Downloader,
    DownloadResult,
    DownloadTask,
    UnsafeNameError,
    atomic_write_json,
    job_dir_of,
)
from .events import EngineListener, EventHub, LogLine, Progress, StatusChange
from .jobspec import (
    ENGINE_COLUMNS,
    JobSpec,
    JobSpecError,
    ResolvedProcess,
    build_job_request,
    find_client_token,
    new_client_token,
)
from .redact import install_log_redaction, redact, redact_obj

_log = logging.getLogger(__name__)

CREATED = statuses.CREATED
QUEUED_FOR_START = statuses.QUEUED_FOR_START
QUEUED = statuses.QUEUED
RUNNING = statuses.RUNNING
FINISHED = statuses.FINISHED
ERROR = statuses.ERROR
CANCELED = statuses.CANCELED
NOT_STARTED = statuses.NOT_STARTED
START_FAILED = statuses.START_FAILED

#: Tile statuses whose job lives (or is being created) on a backend.
TRACKED = (CREATED, QUEUED_FOR_START, QUEUED, RUNNING)
REMOTE_STATUSES = frozenset({CREATED, QUEUED, RUNNING, FINISHED, ERROR, CANCELED})
ERRORS_FILENAME = "errors.json"

_ROW_COLUMNS = [
    "fid",
    "tile_id",
    "status",
    "id",
    "backend_name",
    "client_token",
    "start_time",
    "running_start_time",
    "attempts",
    "costs",
    "progress",
    "result_status",
]


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
    #: run(): seconds between rounds.
    poll_interval: float = 1.0
    #: Backoff of a backend after transient failures.
    backoff_base: float = 1.0
    backoff_cap: float = 60.0

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}

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
    listing_requests: dict[str, int] = field(default_factory=dict)
    fallback_requests: dict[str, int] = field(default_factory=dict)
    downloads_queued: int = 0
    downloads_finished: int = 0
    progress: Optional[Progress] = None
    done: bool = False
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


class _Round:
    """Row updates of one round, flushed in one transaction, plus what changed (for events)."""

    def __init__(self) -> None:
        self.updates: dict[int, dict[str, Any]] = {}
        self.status_moves: list[tuple[int, Any, str, str]] = []  # fid, tile_id, old, new
        self.result_moves: list[tuple[int, Any, Optional[str], str]] = []
        self.cost_deltas: dict[str, float] = defaultdict(float)
        self.backend_of: dict[int, Optional[str]] = {}

    def set(self, fid: int, **values: Any) -> None:
        self.updates.setdefault(int(fid), {}).update(values)
        if "backend_name" in values:
            self.backend_of[int(fid)] = values["backend_name"]


def _utc_now() -> str:
    return rfc3339.now_utc()


def _parse_utc(value: Any) -> Optional[float]:
    if not value:
        return None
    try:
        dt = rfc3339.parse_datetime(str(value), with_timezone=True)
    except Exception:  # noqa: BLE001 - unparsable timestamps are treated as unknown
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _net_moves(
    moves: Iterable[tuple[int, Any, Optional[str], str]],
    prior: Optional[Callable[[int, Optional[str]], Optional[str]]] = None,
) -> dict[int, tuple[Any, Optional[str], str]]:
    """Per fid: (tile id, status before the round, status after), from a round's moves in order.

    ``prior(fid, old)`` gives the status known before the round where it may differ from ``old``."""
    final: dict[int, tuple[Any, Optional[str], str]] = {}
    for fid, tid, old, new in moves:
        first_old = final[fid][1] if fid in final else (prior(fid, old) if prior else old)
        final[fid] = (tid, first_old, new)
    return final


def _count_moves(
    final: dict[int, tuple[Any, Optional[str], str]], counts: dict[Any, int]
) -> dict[str, list[tuple[int, Any]]]:
    """Apply net moves to ``counts``; the (fid, tile id) pairs that really changed, by new status."""
    by_new: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for fid, (tid, old, new) in final.items():
        if old == new:
            continue
        if old is not None:
            counts[old] = counts.get(old, 0) - 1
        counts[new] = counts.get(new, 0) + 1
        by_new[new].append((fid, tid))
    return by_new


def _emit_changes(
    by_new: dict[str, list[tuple[int, Any]]],
    report: Optional[dict[str, list[Any]]],
    emit: Callable[[StatusChange], None],
) -> None:
    for status, items in by_new.items():
        change = StatusChange(status=status, tile_ids=tuple(t for _, t in items), fids=tuple(f for f, _ in items))
        if report is not None:
            report[status] = list(change.tile_ids)
        emit(change)


def _usage_text(job: dict, key: str) -> Optional[str]:
    usage = job.get("usage")
    if not isinstance(usage, dict) or key not in usage:
        return None
    item = usage[key]
    if isinstance(item, dict):
        return f"{item.get('value', 0)} {item.get('unit', '')}".strip()
    return str(item)


class StoppedError(Exception):
    """Raised inside a round when :meth:`Scheduler.stop` was called; ends the round quietly."""


class Scheduler:
    """Runs one job per tile of a job database on a pool of backends (see module docstring).

    :param db: the run's :class:`core.jobdb.JobDB` (any object with its API).
    :param spec: what each tile runs.
    :param backends: the run's backends, in priority order.
    :param config: :class:`EngineConfig`.
    :param listeners: :class:`EngineListener` objects (more with :meth:`subscribe`).
    """

    def __init__(
        self,
        db: Any,
        spec: JobSpec,
        backends: BackendPool | Sequence[Backend],
        config: EngineConfig,
        listeners: Iterable[EngineListener] = (),
        *,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.spec = spec
        self.backends = backends if isinstance(backends, BackendPool) else BackendPool(list(backends))
        if not len(self.backends):
            raise ValueError("A run needs at least one backend.")
        self.config = config
        install_log_redaction()  # tokens and passwords never reach a log record of this process
        self.events = EventHub(list(listeners))
        self._wall = wall_clock
        self._clock = clock
        self._resolved: Optional[ResolvedProcess] = None
        self._spec_error: Optional[str] = None
        self._downloader = Downloader(
            config.output_dir,
            self._backend_access,
            workers=config.download_workers,
            max_attempts=config.download_attempts,
            retry_base=config.download_retry_base,
        )
        self._started_up = False
        self._download_pending: set[int] = set()
        self._download_meta: dict[int, tuple[Any, str, str]] = {}  # fid -> tile_id, job id, backend
        self._counts: dict[str, int] = {}
        self._result_counts: dict[str, int] = {}
        self._total = 0
        self._start_sent_at: dict[int, float] = {}
        self._cancel_sent_at: dict[int, float] = {}
        self._start_blocked_until: dict[str, float] = {}
        self._intent_failed_at: dict[int, float] = {}
        self._unknown_backend_warned: set[str] = set()
        self._costs_by_backend: dict[str, float] = {}
        self._result_of: dict[int, str] = {}  # result_status of tiles pending/downloading
        self._active_per_backend: dict[str, int] = {}
        self._step_lock = threading.Lock()
        self._executor: Optional[ThreadPoolExecutor] = None
        self._deferred_lock = threading.Lock()
        self._deferred_states: list[tuple[str, str, str]] = []
        self._cancel_requested: set[int] = set()
        self._retry_requested: set[int] = set()
        self._resolve_backoff = retry.Backoff(base=config.backoff_base, cap=config.backoff_cap)
        self._retry_downloads_requested = False
        self._user_canceled: set[int] = set()
        self._step_thread: Optional[int] = None
        self._io_seconds = 0.0
        self._stop_event = threading.Event()
        self._run_idle = threading.Event()
        self._run_idle.set()
        self._columns = set(getattr(db, "columns", _ROW_COLUMNS))
        self.rounds = 0
        #: Test hook: called with a point name ("after_intent", "after_create", "after_start") and the fid.
        self.checkpoint: Optional[Callable[[str, int], None]] = None
        for b in self.backends:
            b.on_state = self._on_backend_state

    # ------------------------------------------------------------------ public API

    def subscribe(self, listener: EngineListener) -> None:
        self.events.subscribe(listener)

    def unsubscribe(self, listener: EngineListener) -> None:
        self.events.unsubscribe(listener)

    @property
    def downloader(self) -> Downloader:
        return self._downloader

    def step(self) -> StepReport:
        """One bounded round of work (never sleeps); returns what changed. Never raises."""
        report = StepReport()
        if self._stop_event.is_set() or not self._step_lock.acquire(blocking=False):
            report.skipped = True
            return report
        t0 = time.perf_counter()
        req0 = self._request_total()
        http0 = self._http_total()
        self._step_thread = threading.get_ident()
        self._io_seconds = 0.0
        cpu0 = time.thread_time()
        try:
            self._round(report)
        except StoppedError:
            pass
        except Exception as e:  # noqa: BLE001 - no exception ends the loop
            _log.exception("Engine round failed")
            self._emit_log(logging.ERROR, f"Engine round failed: {e}")
        finally:
            self._step_lock.release()
        self.rounds += 1
        report.requests = self._request_total() - req0
        report.http_seconds = self._http_total() - http0
        report.io_seconds = self._io_seconds
        report.cpu_seconds = time.thread_time() - cpu0
        report.duration = time.perf_counter() - t0
        return report

    def run(
        self,
        poll_interval: Optional[float] = None,
        *,
        until_done: bool = True,
        max_seconds: Optional[float] = None,
        on_round: Optional[Callable[[StepReport], None]] = None,
    ) -> StepReport:
        """Call :meth:`step` every ``poll_interval`` seconds until done, :meth:`stop` or ``max_seconds``."""
        interval = self.config.poll_interval if poll_interval is None else poll_interval
        deadline = None if max_seconds is None else self._clock() + max_seconds
        self._run_idle.clear()
        report = StepReport(skipped=True)
        try:
            while not self._stop_event.is_set():
                report = self.step()
                if on_round is not None:
                    try:
                        on_round(report)
                    except Exception:  # noqa: BLE001
                        _log.exception("on_round callback failed")
                if until_done and (report.done or self._stalled()):
                    break
                if deadline is not None and self._clock() >= deadline:
                    break
                self._stop_event.wait(interval)
        finally:
            self._run_idle.set()
        return report

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop rounds and downloads; returns within ``timeout`` (True if everything had stopped).

        In-flight downloads are abandoned (only ``.part`` files remain; they are queued again
        on the next start). Jobs keep running on their backends and are tracked again later.
        """
        t0 = self._clock()
        self._stop_event.set()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._downloader.stop(timeout=max(0.0, timeout * 0.5))
        remaining = max(0.0, timeout - (self._clock() - t0))
        idle = self._run_idle.wait(remaining)
        if idle:
            remaining = max(0.0, timeout - (self._clock() - t0))
            if self._step_lock.acquire(timeout=remaining):
                self._step_lock.release()
                return True
        return False

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def progress(self) -> Progress:
        return self._progress()

    def total_costs(self) -> float:
        """Sum of the costs the backends reported for the tiles' jobs (backend currency)."""
        return float(sum(self._costs_by_backend.values()))

    def is_done(self) -> bool:
        """No tile active (on a usable backend) and no download pending or in flight."""
        active = sum(self._counts.get(s, 0) for s in statuses.ACTIVE_STATUSES)
        return active == 0 and not self._download_pending and self._downloader.in_flight() == 0

    def _stalled(self) -> bool:
        """Nothing can progress: jobs cannot be built, and nothing is tracked or downloading."""
        if not self._spec_error:
            return False
        tracked = sum(self._counts.get(s, 0) for s in TRACKED)
        return tracked == 0 and not self._download_pending and self._downloader.in_flight() == 0

    def cancel_tiles(self, fids: Iterable[int]) -> None:
        """Cancel these tiles in the next round: jobs on a backend are stopped (they end ``canceled``),
        tiles not started yet become ``canceled`` right away. Thread-safe; no network here."""
        with self._deferred_lock:
            self._cancel_requested.update(int(f) for f in fids)

    def retry_tiles(self, fids: Iterable[int]) -> None:
        """Put these tiles back to not_started in the next round if they ended error / start_failed /
        canceled (attempts start again from 0). Thread-safe; no I/O here."""
        with self._deferred_lock:
            self._retry_requested.update(int(f) for f in fids)

    def retry_failed_downloads(self) -> None:
        """Download the results of tiles whose download failed again, from the next round on."""
        with self._deferred_lock:
            self._retry_downloads_requested = True

    def _apply_retry_requests(self, rnd: _Round) -> None:
        with self._deferred_lock:
            fids, self._retry_requested = self._retry_requested, set()
            downloads, self._retry_downloads_requested = self._retry_downloads_requested, False
        if fids:
            for r in self.db.get_many(fids, columns=self._row_columns()):
                if r["status"] in (ERROR, START_FAILED, CANCELED):
                    self._move(
                        rnd, r, NOT_STARTED, id=None, backend_name=None, client_token=None, attempts=0, progress=None
                    )
        if downloads:
            for r in self._rows_by_result_status([FAILED]):
                if r.get("id") and r.get("status") == FINISHED:
                    fid = int(r["fid"])
                    self._result_of[fid] = FAILED
                    self._result_move(rnd, r, PENDING)
                    self._download_pending.add(fid)
                    self._download_meta[fid] = (r.get("tile_id"), r["id"], r.get("backend_name") or "")
        self._flush(rnd)

    def close(self) -> None:
        self.stop(timeout=1.0)

    # ------------------------------------------------------------------ the round

    def _check_stop(self) -> None:
        if self._stop_event.is_set():
            raise StoppedError()

    def _round(self, report: StepReport) -> None:
        if not self._started_up:
            self._startup()
        rnd = _Round()
        self._apply_retry_requests(rnd)
        self._apply_download_results(rnd, report)
        for backend in self.backends:
            self._check_stop()
            self._prepare_backend(backend)
        self._emit_backend_states()
        active = self.db.get_by_status(TRACKED, columns=self._row_columns())
        by_backend: dict[str, list[dict]] = defaultdict(list)
        for row in active:
            by_backend[row.get("backend_name") or ""].append(row)
        self._warn_unknown_backends(by_backend)
        for backend in self.backends:
            self._check_stop()
            rows = by_backend.get(backend.name, [])
            if rows and backend.ready() and backend.connection is not None:
                self._track(backend, rows, rnd, report)
        self._flush(rnd)
        self._cancel_requested_jobs(by_backend, rnd)
        self._flush(rnd)
        self._check_stop()
        self._start_new(by_backend, rnd, report)
        self._flush(rnd)
        self._queue_downloads(rnd, report)
        self._flush(rnd)
        self._emit_backend_states()
        self._emit_round(rnd, report)
        self._counts = dict(self.db.count_by_status())  # cheap (kept by the database); also sees others' edits
        self._total = sum(self._counts.values())
        report.blocked = self._spec_error
        self._active_per_backend = self._count_active(by_backend, rnd)
        report.progress = self._progress()
        report.done = self.is_done()
        self.events.on_progress(report.progress)

    @staticmethod
    def _count_active(by_backend: dict[str, list[dict]], rnd: _Round) -> dict[str, int]:
        final = {fid: new for fid, _t, _o, new in rnd.status_moves}
        seen: set[int] = set()
        out: dict[str, int] = defaultdict(int)
        for name, rows in by_backend.items():
            for r in rows:
                fid = int(r["fid"])
                seen.add(fid)
                if final.get(fid, r["status"]) in TRACKED:
                    out[rnd.backend_of.get(fid) or name] += 1
        for fid, new in final.items():
            if new in TRACKED and fid not in seen:
                out[rnd.backend_of.get(fid) or ""] += 1
        return dict(out)

    def _row_columns(self) -> list[str]:
        return [c for c in _ROW_COLUMNS if c in self._columns]

    def _startup(self) -> None:
        """Once per engine: counts, downloads left pending/downloading, costs."""
        self._recount()
        rnd = _Round()
        for r in self._rows_by_result_status([PENDING, DOWNLOADING]):
            if r.get("status") != FINISHED or not r.get("id"):
                continue
            self._result_of[int(r["fid"])] = r.get("result_status")
            if r.get("result_status") == DOWNLOADING:
                self._result_move(rnd, r, PENDING)
            self._download_pending.add(int(r["fid"]))
            self._download_meta[int(r["fid"])] = (r.get("tile_id"), r["id"], r.get("backend_name") or "")
        self._flush(rnd)
        self._emit_round(rnd)
        self._costs_by_backend = self.db.sum_costs()[1]  # once; then kept up to date in memory
        self._started_up = True

    def _recount(self) -> None:
        self._counts = dict(self.db.count_by_status())
        self._total = sum(self._counts.values())
        self._result_counts = self.db.count_by("result_status")

    # ------------------------------------------------------------------ backends

    def _on_backend_state(self, backend: Backend, state: str, detail: str) -> None:
        # May be called from a job-creating thread or from sign_in() in the caller's thread:
        # queued, and emitted by the round's thread (listeners see one thread only).
        with self._deferred_lock:
            self._deferred_states.append((backend.name, state, detail))

    def _emit_backend_states(self) -> None:
        with self._deferred_lock:
            pending, self._deferred_states = self._deferred_states, []
        for name, state, detail in pending:
            self.events.on_backend_state(name, state, detail)
            if state == "needs_sign_in":
                self.events.on_needs_sign_in(name, detail)
            level = logging.INFO if state == "ok" else logging.WARNING
            self._emit_log(level, f"Backend {name}: {state} ({detail})", backend=name)

    def _prepare_backend(self, backend: Backend) -> None:
        if not backend.ready():
            return
        t0 = time.perf_counter()
        try:
            if backend.connection is None:
                backend.connect()
            else:
                backend.ensure_token_fresh()
        except SignInRequiredError:
            pass
        except Exception as e:  # noqa: BLE001
            backend.record_failure(e, "connecting")
        finally:
            self._add_io(t0)

    def _backend_access(self, name: str) -> BackendAccess:
        backend = self.backends.get(name)
        if backend is None:
            raise RuntimeError(f"unknown backend {name!r}")
        return BackendAccess(
            root_url=backend.root_url,
            auth=backend.auth,
            new_session=backend.new_session,
            timeout=backend.profile.request_timeout,
            on_auth_failure=backend.request_reauth,
        )

    def _warn_unknown_backends(self, by_backend: dict[str, list[dict]]) -> None:
        for name, rows in by_backend.items():
            if self.backends.get(name) is None and name not in self._unknown_backend_warned:
                self._unknown_backend_warned.add(name)
                self._emit_log(
                    logging.WARNING,
                    f"{len(rows)} tile(s) have jobs on backend {name!r}, which is not part of this run: "
                    "they are not tracked until it is added again.",
                )

    def _request_total(self) -> int:
        return sum(b.request_count for b in self.backends)

    def _http_total(self) -> float:
        return sum(getattr(b, "http_seconds", 0.0) for b in self.backends)

    def _call(self, backend: Backend, context: str, fn: Callable[[], Any]) -> tuple[bool, Any, Optional[str]]:
        """Run one request; on failure update the backend's health. Returns (ok, value, kind).

        An authentication failure is retried once right away when re-authentication worked.
        """
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                value = fn()
                self._add_io(t0)
                backend.record_success()
                return True, value, None
            except Exception as e:  # noqa: BLE001 - classified
                self._add_io(t0)
                kind = retry.classify(e)
                if kind == retry.AUTH and attempt == 1 and backend.reauthenticate(reason=str(e)):
                    continue
                if kind in (retry.CLIENT, retry.NOT_FOUND, retry.CONCURRENT_LIMIT):
                    return False, e, kind
                backend.record_failure(e, context)
                return False, e, kind
        return False, None, retry.OTHER  # pragma: no cover

    def _add_io(self, t0: float) -> None:
        if threading.get_ident() == self._step_thread:
            self._io_seconds += time.perf_counter() - t0

    # ------------------------------------------------------------------ tracking

    def _list_jobs(
        self, backend: Backend, want_ids: set[str], want_tokens: set[str], report: StepReport
    ) -> tuple[dict[str, dict], dict[str, dict], bool, bool]:
        """Walk the listing: (jobs by id, jobs by token, complete?, ok?)."""
        conn = backend.connection
        assert conn is not None
        found: dict[str, dict] = {}
        by_token: dict[str, dict] = {}
        url, params = "/jobs", {"limit": self.config.listing_page_size}
        pages = 0
        complete = False
        while True:
            self._check_stop()
            ok, resp, _ = self._call(
                backend, "listing jobs", lambda u=url, p=params: conn.get(u, params=p, expected_status=200).json()
            )
            pages += 1
            report.listing_requests[backend.name] = report.listing_requests.get(backend.name, 0) + 1
            if not ok or not isinstance(resp, dict):
                return found, by_token, False, False
            max_pages = self.config.max_listing_pages
            if want_tokens:
                # Interrupted creations must be resolved: walk (much) further for them.
                max_pages = max(max_pages, 200)
            for job in resp.get("jobs") or []:
                if not isinstance(job, dict):
                    continue
                jid = job.get("id")
                if jid in want_ids:
                    found[jid] = job
                if want_tokens:
                    token = find_client_token(job.get("title"), job.get("description"))
                    if token in want_tokens:
                        by_token[token] = job
            missing = want_ids - set(found)
            links = [link for link in resp.get("links") or [] if isinstance(link, dict) and link.get("rel") == "next"]
            if not links or not links[0].get("href"):
                complete = True
                break
            if not missing and not (set(want_tokens) - set(by_token)):
                break
            if pages >= max_pages:
                break
            url, params = links[0]["href"], None
        return found, by_token, complete, True

    def _track(self, backend: Backend, rows: list[dict], rnd: _Round, report: StepReport) -> None:
        with_id = {r["id"]: r for r in rows if r.get("id")}
        intents = {r["client_token"]: r for r in rows if not r.get("id") and r.get("client_token")}
        found, by_token, complete, ok = self._list_jobs(backend, set(with_id), set(intents), report)
        if not ok:
            return
        # Interrupted creations: adopt the job, or revert the tile when the job was never made.
        for token, row in intents.items():
            job = by_token.get(token)
            if job is not None and job.get("id"):
                rnd.set(row["fid"], id=job["id"])
                row = {**row, "id": job["id"]}
                with_id[job["id"]] = row
                found[job["id"]] = job
                self._emit_log(
                    logging.INFO,
                    f"Tile {row['tile_id']}: adopted job {job['id']} created before an interruption",
                    backend=backend.name,
                    tile_id=row["tile_id"],
                    job_id=job["id"],
                )
            elif complete and self._intent_expired(row):
                self._move(
                    rnd,
                    row,
                    NOT_STARTED,
                    client_token=None,
                    backend_name=None,
                    attempts=max(0, int(row.get("attempts") or 1) - 1),
                )
        # Jobs the listing lacks: ask for them one by one (bounded).
        missing = [jid for jid in with_id if jid not in found]
        for jid in missing[: self.config.max_fallback_gets]:
            self._check_stop()
            ok, job, kind = self._call(
                backend, "job status", lambda j=jid: backend.connection.get(f"/jobs/{j}", expected_status=200).json()
            )
            report.fallback_requests[backend.name] = report.fallback_requests.get(backend.name, 0) + 1
            if ok and isinstance(job, dict):
                found[jid] = job
            elif kind == retry.NOT_FOUND:
                found[jid] = {"id": jid, "status": ERROR, "_gone": True}
            elif not ok and kind not in (retry.CLIENT,):
                break
        error_logs_budget = self.config.max_error_logs_per_round
        for jid, row in with_id.items():
            job = found.get(jid)
            if job is None:
                continue
            error_logs_budget -= self._apply_remote(backend, row, job, rnd, error_logs_budget)

    def _intent_expired(self, row: dict) -> bool:
        fid = int(row["fid"])
        failed_at = self._intent_failed_at.get(fid)
        if failed_at is not None:
            return self._clock() - failed_at >= self.config.intent_grace
        started = _parse_utc(row.get("start_time"))
        return started is None or self._wall() - started >= self.config.intent_grace

    def _apply_remote(self, backend: Backend, row: dict, job: dict, rnd: _Round, error_budget: int) -> int:
        """Apply a job's remote state to its tile; returns how many error-log fetches were used."""
        fid = int(row["fid"])
        old = row["status"]
        new = job.get("status")
        if new not in REMOTE_STATUSES:
            return 0
        values: dict[str, Any] = {}
        if job.get("progress") is not None and job.get("progress") != row.get("progress"):
            values["progress"] = job["progress"]
        if job.get("costs") is not None and job.get("costs") != row.get("costs"):
            values["costs"] = job["costs"]
            try:
                rnd.cost_deltas[backend.name] += float(job["costs"]) - float(row.get("costs") or 0.0)
            except (TypeError, ValueError):
                pass
        for key in ("cpu", "memory", "duration"):
            text = _usage_text(job, key)
            if text is not None and key in self._columns:
                values[key] = text
        used = 0
        if new == CREATED:
            if old == QUEUED_FOR_START and not self._start_is_stale(fid):
                if values:
                    rnd.set(fid, **values)
                return 0
            # Created but not (or no longer known to be) started: start it in this round.
            if old != CREATED:
                self._move(rnd, row, CREATED, **values)
            elif values:
                rnd.set(fid, **values)
            self._start_sent_at.pop(fid, None)
            return 0
        if new == RUNNING and not row.get("running_start_time"):
            values["running_start_time"] = _utc_now()
        if new == ERROR and old != ERROR:
            if error_budget <= 0:
                return 0  # seen again next round
            used = 1
            self._handle_job_error(backend, row, job, rnd, values)
            return used
        if new == CANCELED and fid in self._cancel_sent_at and fid not in self._user_canceled:
            values["last_error"] = (
                f"canceled by the engine after running longer than {self.config.cancel_running_after:g} s"
            )
        if new != old:
            self._move(rnd, row, new, **values)
            if new == FINISHED and self.config.download:
                self._result_move(rnd, row, PENDING)
                self._download_pending.add(fid)
                self._download_meta[fid] = (row.get("tile_id"), row["id"], backend.name)
        elif values:
            rnd.set(fid, **values)
        if new == RUNNING:
            self._maybe_cancel(backend, row, values.get("running_start_time") or row.get("running_start_time"))
        if new in (FINISHED, ERROR, CANCELED):
            self._start_sent_at.pop(fid, None)
            self._cancel_sent_at.pop(fid, None)
            self._user_canceled.discard(fid)
        return used

    def _start_is_stale(self, fid: int) -> bool:
        sent = self._start_sent_at.get(fid)
        return sent is None or self._clock() - sent >= self.config.restart_stale_start_after

    def _handle_job_error(self, backend: Backend, row: dict, job: dict, rnd: _Round, values: dict) -> None:
        fid = int(row["fid"])
        jid = row["id"]
        if job.get("_gone"):
            logs: list[Any] = [{"level": "error", "message": f"job {jid} no longer exists on {backend.name}"}]
        else:
            ok, logs, _ = self._call(
                backend,
                "error logs",
                lambda: backend.connection.get(
                    f"/jobs/{jid}/logs", params={"level": "error"}, expected_status=200
                ).json(),
            )
            if ok and isinstance(logs, dict):
                logs = logs.get("logs") or []
            elif not ok:
                logs = [{"level": "error", "message": "the job ended in error; its logs could not be read"}]
        logs = redact_obj([entry for entry in logs if isinstance(entry, dict)])
        message = "; ".join(str(e.get("message", "")) for e in logs[:3] if e.get("message")) or "job ended in error"
        message = redact(message)[:1000]
        try:
            atomic_write_json(job_dir_of(self.config.output_dir, jid) / ERRORS_FILENAME, logs)
        except (OSError, UnsafeNameError) as e:
            self._emit_log(logging.WARNING, f"Cannot write the error log of job {jid}: {e}", job_id=jid)
        attempts = int(row.get("attempts") or 1)
        values["last_error"] = message
        if attempts < self.config.max_attempts:
            self._emit_log(
                logging.WARNING,
                f"Tile {row['tile_id']}: job {jid} failed ({message}); retrying (attempt {attempts + 1} of "
                f"{self.config.max_attempts})",
                backend=backend.name,
                tile_id=row["tile_id"],
                job_id=jid,
            )
            self._move(rnd, row, NOT_STARTED, id=None, backend_name=None, client_token=None, **values)
        else:
            self._emit_log(
                logging.ERROR,
                f"Tile {row['tile_id']}: job {jid} failed: {message}",
                backend=backend.name,
                tile_id=row["tile_id"],
                job_id=jid,
            )
            self._move(rnd, row, ERROR, **values)
        self._start_sent_at.pop(fid, None)

    def _maybe_cancel(self, backend: Backend, row: dict, running_since: Any) -> None:
        limit = self.config.cancel_running_after
        if limit is None:
            return
        since = _parse_utc(running_since)
        if since is None or self._wall() - since < limit:
            return
        fid = int(row["fid"])
        sent = self._cancel_sent_at.get(fid)
        if sent is not None and self._clock() - sent < 30.0:
            return
        ok, _, _ = self._call(
            backend, "cancel", lambda: backend.connection.delete(f"/jobs/{row['id']}/results", expected_status=204)
        )
        if ok:
            self._cancel_sent_at[fid] = self._clock()
            self._emit_log(
                logging.WARNING,
                f"Tile {row['tile_id']}: canceling job {row['id']}, running longer than {limit:g} s",
                backend=backend.name,
                tile_id=row["tile_id"],
                job_id=row["id"],
            )

    def _cancel_requested_jobs(self, by_backend: dict[str, list[dict]], rnd: _Round) -> None:
        with self._deferred_lock:
            wanted, self._cancel_requested = self._cancel_requested, set()
        if not wanted:
            return
        tracked = {int(r["fid"]): (name, r) for name, rows in by_backend.items() for r in rows}
        moved = {fid: new for fid, _t, _o, new in rnd.status_moves}
        leftover = set()
        for fid in sorted(wanted):
            if fid in tracked and moved.get(fid, tracked[fid][1]["status"]) in TRACKED:
                name, row = tracked[fid]
                backend = self.backends.get(name)
                if not row.get("id") or backend is None or backend.connection is None or not backend.ready():
                    leftover.add(fid)  # being created / backend unreachable: try again next round
                    continue
                ok, _, kind = self._call(
                    backend,
                    "canceling a job",
                    lambda b=backend, j=row["id"]: b.connection.delete(f"/jobs/{j}/results", expected_status=204),
                )
                if ok or kind == retry.NOT_FOUND:
                    self._cancel_sent_at[fid] = self._clock()
                    self._user_canceled.add(fid)
                    rnd.set(fid, last_error="canceled by the user")
                else:
                    leftover.add(fid)
        not_started = [r for r in self.db.get_many(wanted - set(tracked), columns=self._row_columns())]
        for r in not_started:
            if r["status"] == NOT_STARTED:
                self._move(rnd, r, CANCELED, last_error="canceled by the user")
        if leftover:
            with self._deferred_lock:
                self._cancel_requested |= leftover

    # ------------------------------------------------------------------ starting

    def _resolve(self) -> Optional[ResolvedProcess]:
        if self._resolved is not None:
            return self._resolved
        backend = next((b for b in self.backends if b.connection is not None and b.ready()), None)
        if backend is None or not self._resolve_backoff.ready(self._clock()):
            return None
        t0 = time.perf_counter()
        try:
            from .jobspec import resolve_process

            self._resolved = resolve_process(
                self.spec,
                connection=backend.connection,
                session=backend.session,
                timeout=backend.profile.request_timeout,
            )
            self._spec_error = None
            if self._resolved.geometry_parameter is None:
                self._emit_log(
                    logging.WARNING,
                    f"Process {self._resolved.process_id!r} has no parameter that takes a geometry: "
                    "every tile runs the same process graph.",
                )
        except JobSpecError as e:
            msg = redact(e)
            if msg != self._spec_error:
                self._emit_log(logging.ERROR, f"Cannot start jobs: {msg}")
            self._spec_error = msg
        except Exception as e:  # noqa: BLE001 - network trouble: retried after a backoff
            delay = self._resolve_backoff.fail(self._clock())
            self._emit_log(logging.WARNING, f"Cannot read the process definition yet ({e}); retrying in {delay:.1f} s")
        finally:
            self._add_io(t0)
        return self._resolved

    def _capacity(self, backend: Backend, rows: list[dict]) -> int:
        active = len(rows)
        waiting = sum(1 for r in rows if r["status"] in (QUEUED, QUEUED_FOR_START))
        p = backend.profile
        return max(0, min(p.parallel_jobs - active, p.queueing_limit - waiting, self.config.max_starts_per_round))

    def _start_new(self, by_backend: dict[str, list[dict]], rnd: _Round, report: StepReport) -> None:
        now = self._clock()
        # Rows re-read after tracking: statuses may have changed in this round.
        moved = {fid: new for fid, _tid, _old, new in rnd.status_moves}
        plan: list[tuple[Backend, int]] = []
        restart: list[tuple[Backend, dict]] = []
        for backend in self.backends:
            rows = [r for r in by_backend.get(backend.name, []) if moved.get(int(r["fid"]), r["status"]) in TRACKED]
            rows = [{**r, "status": moved.get(int(r["fid"]), r["status"])} for r in rows]
            blocked = now < self._start_blocked_until.get(backend.name, 0)
            usable = backend.ready() and backend.connection is not None and not blocked
            if not usable:
                continue
            for r in rows:
                if r["status"] == CREATED and r.get("id"):
                    restart.append((backend, r))
            plan.append((backend, self._capacity(backend, rows)))
        for backend, row in restart:
            self._check_stop()
            if now < self._start_blocked_until.get(backend.name, 0) or not backend.ready():
                continue
            self._send_start(backend, row, rnd)
        total = sum(n for _, n in plan)
        if total <= 0:
            return
        if self._resolve() is None:
            return
        candidates = self.db.get_by_status([NOT_STARTED], max=total, columns=self._candidate_columns())
        if not candidates:
            return
        tiles = self._tile_inputs(candidates)
        # 1. record every intent of this round in one transaction, BEFORE any POST /jobs
        assigned: list[tuple[Backend, dict, Any]] = []
        it = iter(candidates)
        for backend, n in plan:
            for _ in range(n):
                row = next(it, None)
                if row is None:
                    break
                token = new_client_token()
                try:
                    req = build_job_request(self._resolved, self.spec, tiles[int(row["fid"])], client_token=token)
                except JobSpecError as e:
                    self._move(rnd, row, START_FAILED, last_error=redact(e)[:1000])
                    continue
                self._move(
                    rnd,
                    row,
                    CREATED,
                    id=None,
                    client_token=token,
                    backend_name=backend.name,
                    title=req.title,
                    description=req.description,
                    start_time=_utc_now(),
                    running_start_time=None,
                    progress=None,
                    attempts=int(row.get("attempts") or 0) + 1,
                )
                self._intent_failed_at.pop(int(row["fid"]), None)
                attempts = int(row.get("attempts") or 0) + 1
                assigned.append((backend, {**row, "client_token": token, "status": CREATED, "attempts": attempts}, req))
        self._flush(rnd)
        for _backend, row, _req in assigned:
            self._hook("after_intent", int(row["fid"]))
        # 2. create and start: backends in parallel (HTTP only in the pool), each one sequentially,
        #    stopping on a backend at its first failure that is not the tile's own fault
        per_backend: dict[str, list[tuple[dict, Any]]] = defaultdict(list)
        by_name = {}
        for backend, row, req in assigned:
            per_backend[backend.name].append((row, req))
            by_name[backend.name] = backend
        futures = [
            (by_name[name], self._pool().submit(self._create_and_start, by_name[name], items))
            for name, items in per_backend.items()
        ]
        for backend, future in futures:
            t0 = time.perf_counter()
            outcomes = future.result()
            self._add_io(t0)
            for row, outcome in outcomes:
                self._apply_create_outcome(backend, row, outcome, rnd, report)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=max(1, len(self.backends)), thread_name_prefix="otj-create")
        return self._executor

    def _create_and_start(self, backend: Backend, items: list[tuple[dict, Any]]) -> list[tuple[dict, tuple]]:
        """POST /jobs then POST /jobs/{id}/results for each tile of one backend (runs in the pool: HTTP only)."""
        out: list[tuple[dict, tuple]] = []
        halted = False
        for row, req in items:
            fid = int(row["fid"])
            if halted or self._stop_event.is_set() or not backend.ready():
                out.append((row, ("not_sent",)))
                continue
            ok, value, kind = self._call(backend, "creating a job", lambda r=req: self._post_job(backend, r))
            if not ok:
                out.append((row, ("create_failed", value, kind)))
                halted = kind not in (retry.CLIENT, retry.NOT_FOUND)
                continue
            job_id = value
            self._hook("after_create", fid)
            started = self._post_start(backend, job_id)
            self._hook("after_start", fid)
            out.append((row, ("created", job_id, started)))
            if not started[0] and started[2] != retry.CLIENT:
                halted = True  # e.g. ConcurrentJobLimit: do not create jobs that cannot start
        return out

    def _apply_create_outcome(
        self, backend: Backend, row: dict, outcome: tuple, rnd: _Round, report: StepReport
    ) -> None:
        fid = int(row["fid"])
        what = outcome[0]
        if what == "not_sent":
            # Not sent: undo the intent (no job exists for it).
            self._move(rnd, row, NOT_STARTED, client_token=None, backend_name=None, attempts=row["attempts"] - 1)
        elif what == "created":
            _, job_id, started = outcome
            rnd.set(fid, id=job_id)
            report.started += 1
            self._apply_start(backend, {**row, "id": job_id}, rnd, *started)
        else:
            _, err, kind = outcome
            if kind in (retry.CLIENT, retry.NOT_FOUND):
                # e.g. ProcessGraphInvalid, CollectionNotFound: this tile's request is wrong.
                msg = redact(f"the backend refused the job: {_error_message(err)}")[:1000]
                self._move(rnd, row, START_FAILED, last_error=msg)
                self._emit_log(
                    logging.ERROR, f"Tile {row['tile_id']}: {msg}", backend=backend.name, tile_id=row["tile_id"]
                )
            elif kind in (retry.CONCURRENT_LIMIT, retry.RATE_LIMITED, retry.AUTH):
                # Refused before anything was created: undo the intent and try later.
                self._move(rnd, row, NOT_STARTED, client_token=None, backend_name=None, attempts=row["attempts"] - 1)
                if kind == retry.CONCURRENT_LIMIT:
                    self._start_blocked_until[backend.name] = self._clock() + self.config.concurrent_limit_wait
            else:
                # Transient: the job may or may not exist; the listing decides next round.
                self._intent_failed_at[fid] = self._clock()

    def _candidate_columns(self) -> list[str]:
        """Bookkeeping columns, plus the user's own attribute columns (parameter values by name or mapping)."""
        cols = self._row_columns() + ["row", "col"]
        cols += [c for c in self.spec.column_map.values() if c in self._columns]
        cols += [c for c in self._columns if c not in ENGINE_COLUMNS]
        return [c for c in dict.fromkeys(cols) if c in self._columns]

    def _tile_inputs(self, rows: list[dict]) -> dict[int, dict]:
        fids = [int(r["fid"]) for r in rows]
        need_bbox = self._resolved is not None and self._resolved.geometry_kind == "bbox"
        geoms = self.db.geometries_4326(fids) if not need_bbox else {}
        out = {}
        for r in rows:
            fid = int(r["fid"])
            tile = dict(r)
            if need_bbox:
                bbox = self.db.bbox(fid, crs=self.db.crs)
                crs = bbox.get("crs")
                if isinstance(crs, str) and crs.upper().startswith("EPSG:"):
                    bbox["crs"] = int(crs.split(":", 1)[1])
                tile["bbox"] = bbox
            else:
                tile["geometry"] = geoms.get(fid)
            out[fid] = tile
        return out

    @staticmethod
    def _post_job(backend: Backend, req: Any) -> str:
        job = backend.connection.create_job(
            req.process_graph,
            title=req.title,
            description=req.description,
            job_options=req.job_options,
            validate=False,
        )
        return job.job_id

    def _post_start(self, backend: Backend, jid: str) -> tuple[bool, Any, Optional[str]]:
        return self._call(
            backend, "starting a job", lambda: backend.connection.post(f"/jobs/{jid}/results", expected_status=202)
        )

    def _send_start(self, backend: Backend, row: dict, rnd: _Round) -> None:
        self._apply_start(backend, row, rnd, *self._post_start(backend, row["id"]))

    def _apply_start(self, backend: Backend, row: dict, rnd: _Round, ok: bool, err: Any, kind: Optional[str]) -> None:
        fid = int(row["fid"])
        jid = row["id"]
        if ok:
            self._start_sent_at[fid] = self._clock()
            self._move(rnd, row, QUEUED_FOR_START)
            return
        if kind == retry.CONCURRENT_LIMIT:
            self._start_blocked_until[backend.name] = self._clock() + self.config.concurrent_limit_wait
            self._emit_log(
                logging.INFO,
                f"{backend.name}: concurrent job limit reached; starting job {jid} later",
                backend=backend.name,
                job_id=jid,
            )
        elif kind == retry.CLIENT:
            msg = redact(f"the backend refused to start job {jid}: {_error_message(err)}")[:1000]
            self._move(rnd, row, START_FAILED, last_error=msg)
            self._emit_log(logging.ERROR, f"Tile {row['tile_id']}: {msg}", backend=backend.name, tile_id=row["tile_id"])
        elif kind == retry.NOT_FOUND:
            self._move(rnd, row, NOT_STARTED, id=None, client_token=None, backend_name=None)
        # transient/auth: stays created; started in a later round

    # ------------------------------------------------------------------ downloads

    def _queue_downloads(self, rnd: _Round, report: StepReport) -> None:
        if not self.config.download or self._downloader.stopped:
            return
        in_flight = self._downloader.in_flight_fids()
        for fid in sorted(self._download_pending - in_flight):
            tile_id, jid, bname = self._download_meta.get(fid, (None, None, None))
            backend = self.backends.get(bname or "")
            if not jid or backend is None or backend.connection is None or not backend.ready():
                continue
            if self._downloader.submit(DownloadTask(fid=fid, tile_id=tile_id, job_id=jid, backend=bname)):
                self._result_move(rnd, {"fid": fid, "tile_id": tile_id}, DOWNLOADING)
                report.downloads_queued += 1

    def _apply_download_results(self, rnd: _Round, report: StepReport) -> None:
        for res in self._downloader.poll():
            self._apply_download_result(res, rnd)
            report.downloads_finished += 1

    def _apply_download_result(self, res: DownloadResult, rnd: _Round) -> None:
        t = res.task
        row = {"fid": t.fid, "tile_id": t.tile_id}
        if res.canceled:
            self._result_move(rnd, row, PENDING)
            return
        self._download_pending.discard(t.fid)
        self._download_meta.pop(t.fid, None)
        files = [str(Path(res.result_dir) / name) for name in res.files]
        if res.ok:
            self._result_move(rnd, row, DOWNLOADED, result_dir=res.result_dir, result_files=json.dumps(files))
            self._emit_log(
                logging.INFO,
                f"Tile {t.tile_id}: downloaded {len(files)} file(s) of job {t.job_id}",
                tile_id=t.tile_id,
                job_id=t.job_id,
                backend=t.backend,
            )
        else:
            msg = redact(f"download failed: {res.error}")[:1000]
            self._result_move(
                rnd, row, FAILED, result_dir=res.result_dir or None, result_files=json.dumps(files), last_error=msg
            )
            self._emit_log(
                logging.ERROR, f"Tile {t.tile_id}: {msg}", tile_id=t.tile_id, job_id=t.job_id, backend=t.backend
            )

    # ------------------------------------------------------------------ bookkeeping

    def _move(self, rnd: _Round, row: dict, new: str, **values: Any) -> None:
        fid = int(row["fid"])
        old = row.get("status")
        # A tile may move twice in one round (e.g. created -> queued_for_start): count from the latest.
        for i in range(len(rnd.status_moves) - 1, -1, -1):
            if rnd.status_moves[i][0] == fid:
                old = rnd.status_moves[i][3]
                break
        rnd.set(fid, status=new, **values)
        if old != new:
            rnd.status_moves.append((fid, row.get("tile_id"), old, new))

    def _result_move(self, rnd: _Round, row: dict, new: str, **values: Any) -> None:
        fid = int(row["fid"])
        rnd.set(fid, result_status=new, **values)
        rnd.result_moves.append((fid, row.get("tile_id"), row.get("result_status"), new))

    def _flush(self, rnd: _Round) -> None:
        """Write the round's pending updates in one transaction (kept for the next try on failure)."""
        if not rnd.updates:
            return
        updates = {fid: {k: v for k, v in vals.items() if k in self._columns} for fid, vals in rnd.updates.items()}
        self.db.update_many(updates)
        rnd.updates = {}

    def _emit_round(self, rnd: _Round, report: Optional[StepReport] = None) -> None:
        by_status = _count_moves(_net_moves(rnd.status_moves), self._counts)
        _emit_changes(by_status, report.changes if report else None, self.events.on_status_changed)
        rfinal = _net_moves(rnd.result_moves, self._result_of.get)
        for fid, (_tid, _old, new) in rfinal.items():
            self._result_of[fid] = new
        by_result = _count_moves(rfinal, self._result_counts)
        _emit_changes(by_result, report.result_changes if report else None, self.events.on_result_status_changed)
        for fid, (_tid, _old, new) in rfinal.items():
            if new in (DOWNLOADED, FAILED):
                self._result_of.pop(fid, None)
        if rnd.cost_deltas:
            for name, delta in rnd.cost_deltas.items():
                self._costs_by_backend[name] = self._costs_by_backend.get(name, 0.0) + delta
            self.events.on_costs(self.total_costs(), dict(self._costs_by_backend))

    def _progress(self) -> Progress:
        counts = {k: v for k, v in self._counts.items() if v}
        return Progress(
            counts=counts,
            total=self._total,
            downloads={k: v for k, v in self._result_counts.items() if v and k},
            active_per_backend=dict(self._active_per_backend),
        )

    def _hook(self, point: str, fid: int) -> None:
        if self.checkpoint is not None:
            self.checkpoint(point, fid)

    def _emit_log(self, level: int, message: str, **kw: Any) -> None:
        message = redact(message)
        _log.log(level, message)
        self.events.on_log(LogLine(level=level, message=message, **kw))

    def _rows_by_result_status(self, wanted: Sequence[str]) -> list[dict]:
        cols = [c for c in ("fid", "tile_id", "status", "id", "backend_name", "result_status") if c in self._columns]
        return self.db.get_where("result_status", wanted, columns=cols)


def _error_message(err: Any) -> str:
    message = getattr(err, "message", None)
    code = getattr(err, "code", None)
    if isinstance(message, str) and message:
        return f"{code}: {message}" if code else message
    return str(err)
