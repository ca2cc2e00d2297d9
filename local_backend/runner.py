"""The worker pool: takes queued jobs in order, runs them, records status, usage, costs and logs.

A worker claims the oldest queued job whose owner is below the per-user running limit and
whose queue time has passed, marks it running (with a new ``attempt`` number) and
computes it. Every final status update is guarded by ``status = 'running' AND attempt = n``,
so a job canceled (or restarted) meanwhile is never overwritten by a stale worker.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path

from . import compute
from .config import BackendConfig
from .costs import job_credits
from .errors import JobError
from .faults import FaultInjector
from .geotiff import WrittenAsset
from .pool import ComputePool
from .store import JobStore

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self,
        config: BackendConfig,
        store: JobStore,
        results_dir: Path,
        faults: FaultInjector,
        lookup_process: Callable[[str, str, str | None], dict],  # (user, process_id, namespace)
        pool: ComputePool,
    ):
        self.config = config
        self.store = store
        self.results_dir = results_dir
        self.faults = faults
        self.lookup_process = lookup_process
        self.pool = pool
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._recover()
        for i in range(self.config.workers):
            t = threading.Thread(target=self._loop, name=f"local-backend-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self.wake()
        deadline = time.monotonic() + timeout
        self.pool.stop(timeout)
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _recover(self) -> None:
        """Jobs that were running when the server stopped are queued again, with a log entry."""
        for job in self.store.jobs_with_status(["running"]):
            self.store.update_job(job["id"], status="queued", queued_at=time.time(), progress=0)
            self.store.add_log(
                job["id"], "warning", "The backend restarted while this job was running; it was queued again."
            )

    # -- claiming ----------------------------------------------------------------------------
    def _claim(self) -> tuple[dict | None, float]:
        """(job, seconds to wait before anything could become claimable)."""
        now = time.time()
        wait = 1.0
        limit = self.config.max_concurrent_jobs_per_user
        running = self.store.running_per_user()
        for row in self.store.queued_jobs():
            ready_at = (row["queued_at"] or now) + self._queue_time(row["seq"])
            if ready_at > now:
                wait = min(wait, ready_at - now)
                continue
            if limit and running.get(row["user_id"], 0) >= limit:
                continue
            attempt = int(row["attempt"]) + 1
            claimed = self.store.update_job(
                row["id"],
                where="status = 'queued'",
                status="running",
                started_at=now,
                attempt=attempt,
                progress=0,
            )
            if claimed:
                job = self.store.get_job(row["id"])
                if job is not None:
                    return job, 0.0
        return None, max(0.01, wait)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._cond:
                    job, wait = self._claim()
                    if job is None:
                        self._cond.wait(wait)
                        continue
                self._run(job)
            except (sqlite3.ProgrammingError, sqlite3.OperationalError):
                if self._stopping.is_set():
                    return
                log.exception("job store error in worker")
                time.sleep(0.2)
            except Exception:
                log.exception("worker error")
                time.sleep(0.2)

    # -- running -----------------------------------------------------------------------------
    def _guard(self, attempt: int) -> tuple[str, tuple]:
        return "status = 'running' AND attempt = ?", (attempt,)

    def _run(self, job: dict) -> None:
        job_id, attempt = job["id"], int(job["attempt"])
        out_dir = self.results_dir / job_id
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.store.add_log(job_id, "info", f"Job started (attempt {attempt}).")
        t0 = time.time()
        try:
            outcome = self._compute(job, out_dir)
        except (CancelledError, RuntimeError):
            if self._stopping.is_set():
                return  # the server stops: the job stays "running" and is queued again at the next start
            raise
        if self._stopping.is_set():
            return
        for level, message in outcome.logs:
            self.store.add_log(job_id, level, message)
        if outcome.error is not None:
            self._fail(job_id, attempt, t0, outcome)
            return
        try:
            self._hold_running(job_id, attempt, t0, int(job["seq"]))
        except _Interrupted:
            return
        usage, costs = self._usage(t0, outcome)
        where, params = self._guard(attempt)
        done = self.store.update_job(
            job_id,
            where=where,
            where_params=params,
            status="finished",
            finished_at=time.time(),
            progress=100,
            usage=usage,
            costs=costs,
            results={"assets": [_asset_record(a) for a in outcome.assets], "bbox": outcome.lonlat_bbox},
        )
        if done:
            self.store.add_log(
                job_id, "info", f"Job finished: {len(outcome.assets)} asset(s) in {usage['duration']['value']} s."
            )
        elif self.store.get_job(job_id) is not None and not self._is_current(job_id, attempt):
            pass  # restarted meanwhile: the new attempt owns the folder
        else:
            shutil.rmtree(out_dir, ignore_errors=True)  # canceled or deleted meanwhile

    def _compute(self, job: dict, out_dir: Path) -> compute.Outcome:
        """The job's computation in a worker (process); its errors come back in the outcome."""
        user = job["user_id"]
        try:
            if self.faults.job_fails():
                raise JobError("Injected fault: this job fails on purpose (fault injection 'job_error').", "Internal")
            process = job["process"] or {}
            definitions = compute.resolve_definitions(process, lambda pid, ns: self.lookup_process(user, pid, ns))
            work = compute.Work(
                job["id"],
                process,
                self.config.pixel_size,
                definitions,
                out_dir,
                job.get("log_level") or "info",
                self.config.max_pixels_per_job,
            )
            return self.pool.run(compute.run, work)
        except JobError as exc:
            return compute.Outcome(error=(str(exc), exc.code))

    def _is_current(self, job_id: str, attempt: int) -> bool:
        job = self.store.get_job(job_id)
        return job is not None and int(job["attempt"]) == attempt

    def _queue_time(self, seq: int) -> float:
        return self.config.queue_time.sample(self.config.duration_seed, seq, "queue")

    def _hold_running(self, job_id: str, attempt: int, t0: float, seq: int) -> None:
        """Honour ``run_time``: stay running (progress creeping up) after computing."""
        min_run = self.config.run_time.sample(self.config.duration_seed, seq, "run")
        where, params = self._guard(attempt)
        while True:
            if self._stopping.is_set():
                raise _Interrupted()
            elapsed = time.time() - t0
            if elapsed >= min_run:
                return
            progress = round(min(99.0, 100.0 * elapsed / min_run), 1)
            if not self.store.update_job(job_id, where=where, where_params=params, progress=progress):
                return  # canceled: the caller's guarded update will notice
            time.sleep(min(0.1, min_run - elapsed))

    def _usage(self, t0: float, outcome: compute.Outcome) -> tuple[dict, float]:
        duration = round(time.time() - t0, 3)
        memory = round(max(outcome.peak_bytes, 1) / 1e6 * duration, 3)
        usage = {
            "cpu": {"value": outcome.cpu, "unit": "cpu-seconds"},
            "memory": {"value": memory, "unit": "mb-seconds"},
            "duration": {"value": duration, "unit": "seconds"},
            "input_pixel": {"value": round(outcome.volume.values / 1e6, 6), "unit": "mega-pixel"},
        }
        return usage, job_credits(outcome.volume, self.config.cost_per_million_values)

    def _fail(self, job_id: str, attempt: int, t0: float, outcome: compute.Outcome) -> None:
        usage, costs = self._usage(t0, outcome)
        where, params = self._guard(attempt)
        message, code = outcome.error or ("The job failed.", "Internal")
        if self.store.update_job(
            job_id, where=where, where_params=params, status="error", finished_at=time.time(), usage=usage, costs=costs
        ):
            self.store.add_log(job_id, "error", message, code=code)


class _Interrupted(Exception):  # noqa: N818 - a signal, not an error
    """The server is stopping while a job holds its run time."""


def _asset_record(asset: WrittenAsset) -> dict:
    return {
        "name": asset.name,
        "type": asset.media_type,
        "size": asset.size,
        "checksum": asset.checksum,
        "epsg": asset.epsg,
        "shape": list(asset.shape),
        "bounds": list(asset.bounds),
        "bands": asset.bands,
        "date": asset.date,
    }
