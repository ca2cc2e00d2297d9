"""The job engine: one openEO batch job per tile, on several backends, crash-safe, step by step.

``Scheduler.step()`` does one bounded round and never sleeps (the caller decides the cadence:
:func:`core.run_loop.drive`, for the panel, Processing, the demo and scripts alike):

1. the user's requests (:mod:`.inbox`: retry, retry downloads, check now) and finished downloads;
2. per backend: connect / refresh the token when due (skipped while backing off or while
   the backend needs sign-in);
3. **track** (:mod:`.tracking`) the backends whose polling policy (:mod:`.polling`) says a
   check is due: the listing or per-job requests, whichever is cheaper there; react to what
   changed (downloads queued, error logs, tiles too big split in 4, automatic retries, the
   running-time limit);
4. cancel the jobs the user asked to cancel;
5. **start** (:mod:`.starting`) new jobs up to each backend's capacity, first backend first;
6. queue downloads (:mod:`.download_book`) on the worker pool;
7. emit the round's events (:mod:`.round_updates`) and the progress, with when each
   backend is asked next.

Crash safety: see :mod:`.starting` (intents written before ``POST /jobs``) and
:mod:`.tracking` (interrupted creations adopted or reverted). After a restart, tiles left
``created`` / ``queued_for_start`` whose job is still ``created`` on the backend are started
again; downloads left ``downloading`` are queued again (``.part`` files are never results).

Errors follow :mod:`.retry`: transient failures back the backend off (growing, with jitter,
until every kind of request that failed works again), 429 honours Retry-After,
ConcurrentJobLimit postpones starts, authentication failures refresh or put the backend in
"needs sign-in" (its tiles wait), a 4xx on create makes that tile ``start_failed`` with the
backend's message. No exception ends a round or the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional
from urllib.parse import urlparse

from . import retry, statuses
from .backend_calls import BackendCalls
from .backends import Backend, BackendPool, is_loopback
from .download_book import DownloadBook
from .downloads import DOWNLOADING, PENDING, Downloader
from .engine_config import EngineConfig, StepReport
from .events import EngineListener, EventHub, Progress
from .inbox import Inbox
from .jobspec import JobSpec, ResolvedProcess
from .polling import PollingPolicy, default_min_interval
from .redact import install_log_redaction
from .request_costs import RequestCosts
from .round_updates import RoundBook, RoundUpdates, StoppedError
from .splitting import Splitter
from .starting import Starter
from .tracking import Tracker

__all__ = ["EngineConfig", "Scheduler", "StepReport"]

_log = logging.getLogger(__name__)

#: Run record key of what the polling policies learned (per backend name), with the measured cost of
#: each way of tracking under :data:`REQUEST_COSTS_KEY`.
POLLING_KEY = "polling"
REQUEST_COSTS_KEY = "request_costs"
#: Seconds between two saves of what the polling policies learned.
POLLING_SAVE_INTERVAL = 10.0

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


class Scheduler(RoundBook, BackendCalls, Tracker, Splitter, Starter, DownloadBook, Inbox):
    """Runs one job per tile of a job database on a pool of backends (see module docstring).

    :param db: the run's :class:`core.jobdb.JobDB` (any object with its API).
    :param spec: what each tile runs.
    :param backends: the run's backends, in priority order.
    :param config: :class:`EngineConfig`.
    :param listeners: :class:`EngineListener` objects (more with :meth:`subscribe`).
    :param wall_clock: seconds since the epoch (job timestamps, the polling policy).
    :param clock: monotonic seconds (backoff, waits).
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
        #: When set, only these tiles (fids) start: a pilot runs the typical tile alone.
        self.only_fids: Optional[set[int]] = None
        self._deferred_lock = threading.Lock()
        self._deferred_states: list[tuple[str, str, str]] = []
        self._cancel_requested: set[int] = set()
        self._retry_requested: set[int] = set()
        self._resolve_backoff = retry.Backoff(base=config.backoff_base, cap=config.backoff_cap)
        self._retry_downloads_requested = False
        self._check_now_requested = False
        self._user_canceled: set[int] = set()
        self._step_thread: Optional[int] = None
        self._io_seconds = 0.0
        self._stop_event = threading.Event()
        self._columns = set(getattr(db, "columns", _ROW_COLUMNS))
        self._policies: dict[str, PollingPolicy] = {}
        self._costs: dict[str, RequestCosts] = {}
        self._polling_saved_at = -1e18
        self.rounds = 0
        #: Test hook: called with a point name ("after_intent", "after_create", "after_start", and
        #: :mod:`.splitting`'s "before_split", "split_commit", "after_split") and the fid.
        self.checkpoint: Optional[Callable[[str, int], None]] = None
        self._setup_backends()

    def _setup_backends(self) -> None:
        """Backoff settings, state callbacks, a polling policy (with what earlier sessions learned) each."""
        learned = {}
        try:
            learned = (self.db.run_record() or {}).get(POLLING_KEY) or {}
        except Exception:  # noqa: BLE001 - a database without a run record: nothing learned yet
            _log.debug("no run record to read the polling state from", exc_info=True)
        for b in self.backends:
            b.on_state = self._on_backend_state
            b.backoff.base, b.backoff.cap = self.config.backoff_base, self.config.backoff_cap
            minimum = self.config.poll_min
            if minimum is None:
                minimum = default_min_interval(is_loopback(urlparse(b.profile.url).hostname))
            policy = PollingPolicy(min_interval=minimum, max_interval=max(minimum, self.config.poll_max))
            mine = learned.get(b.name) if isinstance(learned, dict) else None
            policy.load(mine)
            self._policies[b.name] = policy
            self._costs[b.name] = RequestCosts()
            self._costs[b.name].load(mine.get(REQUEST_COSTS_KEY) if isinstance(mine, dict) else None)
        for policy in self._policies.values():
            policy.peers = list(self._policies.values())

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
        req0, http0, bytes0 = self._request_total(), self._http_total(), self._bytes_total()
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
        report.bytes = self._bytes_total() - bytes0
        report.http_seconds = self._http_total() - http0
        report.io_seconds = self._io_seconds
        report.cpu_seconds = time.thread_time() - cpu0
        report.duration = time.perf_counter() - t0
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
        if self._step_lock.acquire(timeout=remaining):
            self._step_lock.release()
            return True
        return False

    def save_learned(self) -> None:
        """Keep what the polling policies learned in the run record now (the run loop calls it when it ends;
        rounds save it every few seconds). A database write: not for the GUI thread."""
        self._save_polling(force=True)

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def progress(self) -> Progress:
        return self._progress()

    def total_costs(self) -> float:
        """Sum of the costs the backends reported for the tiles' jobs (backend currency)."""
        return float(sum(self._costs_by_backend.values()))

    def is_done(self) -> bool:
        """No tile active (on a usable backend) and no download pending or in flight.

        With :attr:`only_fids` (a pilot) the other tiles waiting to start do not count."""
        if self.only_fids is not None:
            tracked = sum(self._counts.get(s, 0) for s in statuses.TRACKED_STATUSES)
            rows = self.db.get_many(self.only_fids, columns=["status"])
            waiting = any(r["status"] == statuses.NOT_STARTED for r in rows)
            return tracked == 0 and not waiting and not self._downloads_busy()
        active = sum(self._counts.get(s, 0) for s in statuses.ACTIVE_STATUSES)
        return active == 0 and not self._downloads_busy()

    def is_stalled(self) -> bool:
        """Nothing can progress: jobs cannot be built, and nothing is tracked or downloading."""
        if not self._spec_error:
            return False
        tracked = sum(self._counts.get(s, 0) for s in statuses.TRACKED_STATUSES)
        return tracked == 0 and not self._downloads_busy()

    def next_check_in(self) -> dict[str, float]:
        """Seconds until each backend with jobs is asked about them again (backoff included)."""
        now = self._wall()
        out = {}
        for b in self.backends:
            wait = self._policies[b.name].seconds_until_due(now)
            if wait is not None and self._active_per_backend.get(b.name):
                out[b.name] = round(max(wait, b.seconds_until_ready()), 1)
        return out

    def seconds_until_next_check(self) -> Optional[float]:
        """Seconds until the first backend with jobs is asked again; None when none has jobs."""
        waits = self.next_check_in().values()
        return min(waits) if waits else None

    def polling_policy(self, backend_name: str) -> PollingPolicy:
        return self._policies[backend_name]

    def request_costs(self, backend_name: str) -> RequestCosts:
        return self._costs[backend_name]

    def close(self) -> None:
        self.stop(timeout=1.0)

    # ------------------------------------------------------------------ the round

    def _round(self, report: StepReport) -> None:
        if not self._started_up:
            self._startup()
        rnd = RoundUpdates()
        self._apply_requests(rnd)
        self._apply_download_results(rnd, report)
        for backend in self.backends:
            self._check_stop()
            self._prepare_backend(backend)
        self._emit_backend_states()
        active = self.db.get_by_status(statuses.TRACKED_STATUSES, columns=self._row_columns())
        by_backend: dict[str, list[dict]] = defaultdict(list)
        for row in active:
            by_backend[row.get("backend_name") or ""].append(row)
        self._warn_unknown_backends(by_backend)
        for backend in self.backends:
            self._check_stop()
            rows = by_backend.get(backend.name, [])
            if rows and backend.ready() and backend.connection is not None and self._tracking_due(backend, rows):
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
        report.stalled = self.is_stalled()
        self._save_polling(force=report.done)
        self.events.on_progress(report.progress)

    @staticmethod
    def _count_active(by_backend: dict[str, list[dict]], rnd: RoundUpdates) -> dict[str, int]:
        final = rnd.status_now()
        seen: set[int] = set()
        out: dict[str, int] = defaultdict(int)
        for name, rows in by_backend.items():
            for r in rows:
                fid = int(r["fid"])
                seen.add(fid)
                if final.get(fid, r["status"]) in statuses.TRACKED_STATUSES:
                    out[rnd.backend_of.get(fid) or name] += 1
        for fid, new in final.items():
            if new in statuses.TRACKED_STATUSES and fid not in seen:
                out[rnd.backend_of.get(fid) or ""] += 1
        return dict(out)

    def _row_columns(self) -> list[str]:
        return [c for c in _ROW_COLUMNS if c in self._columns]

    def _startup(self) -> None:
        """Once per engine: counts, downloads left pending/downloading, costs."""
        self._recount()
        rnd = RoundUpdates()
        self._pending_from_db(rnd, [PENDING, DOWNLOADING])
        self._flush(rnd)
        self._emit_round(rnd)
        self._costs_by_backend = self.db.sum_costs()[1]  # once; then kept up to date in memory
        self._started_up = True

    def _recount(self) -> None:
        self._counts = dict(self.db.count_by_status())
        self._total = sum(self._counts.values())
        self._result_counts = self.db.count_by("result_status")

    def _save_polling(self, force: bool = False) -> None:
        """Keep what the polling policies learned in the run record (a resume starts with it)."""
        if not any(p.dirty for p in self._policies.values()):
            return
        if not force and self._clock() - self._polling_saved_at < POLLING_SAVE_INTERVAL:
            return
        update = getattr(self.db, "update_run_record", None)
        if update is None:
            return
        try:
            learned = {
                name: {**p.to_dict(), REQUEST_COSTS_KEY: self._costs[name].to_dict()}
                for name, p in self._policies.items()
            }
            update({POLLING_KEY: learned})
            self._polling_saved_at = self._clock()
        except Exception as e:  # noqa: BLE001 - losing what was learned costs requests, never the run
            _log.warning("Cannot save the polling state: %s", e)
