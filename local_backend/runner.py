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
from pathlib import Path

from . import engine
from .config import BackendConfig
from .errors import ApiError, JobError
from .faults import FaultInjector
from .geotiff import WrittenAsset
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
    ):
        self.config = config
        self.store = store
        self.results_dir = results_dir
        self.faults = faults
        self.lookup_process = lookup_process
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
        job_id, attempt, user = job["id"], int(job["attempt"]), job["user_id"]
        out_dir = self.results_dir / job_id
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        level = job.get("log_level") or "info"
        self.store.add_log(job_id, "info", f"Job started (attempt {attempt}).")

        def job_log(lvl: str, message: str) -> None:
            if _level_rank(lvl) >= _level_rank(level):
                self.store.add_log(job_id, lvl, message)

        ctx = engine.JobContext(
            job_id=job_id,
            user_id=user,
            out_dir=out_dir,
            pixel_size=self.config.pixel_size,
            log=job_log,
            lookup_process=lambda pid, ns: self.lookup_process(user, pid, ns),
        )
        t0, cpu0 = time.time(), time.thread_time()
        try:
            if self.faults.job_fails():
                raise JobError("Injected fault: this job fails on purpose (fault injection 'job_error').", "Internal")
            assets = engine.execute(job["process"] or {}, ctx)
            self._hold_running(job_id, attempt, t0, int(job["seq"]))
        except _Interrupted:
            return  # the server stops: the job stays "running" and is queued again at the next start
        except (JobError, ApiError) as exc:
            self._fail(job_id, attempt, t0, cpu0, ctx, str(getattr(exc, "message", exc)), exc.code)
            return
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            self._fail(job_id, attempt, t0, cpu0, ctx, f"{type(exc).__name__}: {exc}", "Internal")
            return
        usage, costs = self._usage(t0, cpu0, ctx)
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
            results={"assets": [_asset_record(a) for a in assets], "bbox": _lonlat_bbox(ctx)},
        )
        if done:
            self.store.add_log(
                job_id, "info", f"Job finished: {len(assets)} asset(s) in {usage['duration']['value']} s."
            )
        elif self.store.get_job(job_id) is not None and not self._is_current(job_id, attempt):
            pass  # restarted meanwhile: the new attempt owns the folder
        else:
            shutil.rmtree(out_dir, ignore_errors=True)  # canceled or deleted meanwhile

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

    def _usage(self, t0: float, cpu0: float, ctx: engine.JobContext) -> tuple[dict, float]:
        duration = round(time.time() - t0, 3)
        cpu = round(time.thread_time() - cpu0, 3)
        memory = round(max(ctx.peak_bytes, 1) / 1e6 * duration, 3)
        usage = {
            "cpu": {"value": cpu, "unit": "cpu-seconds"},
            "memory": {"value": memory, "unit": "mb-seconds"},
            "duration": {"value": duration, "unit": "seconds"},
        }
        return usage, round(cpu * self.config.cost_per_cpu_second, 6)

    def _fail(self, job_id: str, attempt: int, t0: float, cpu0: float, ctx, message: str, code: str) -> None:
        usage, costs = self._usage(t0, cpu0, ctx)
        where, params = self._guard(attempt)
        if self.store.update_job(
            job_id, where=where, where_params=params, status="error", finished_at=time.time(), usage=usage, costs=costs
        ):
            self.store.add_log(job_id, "error", message, code=code)


class _Interrupted(Exception):  # noqa: N818 - a signal, not an error
    """The server is stopping while a job holds its run time."""


_LEVELS = ("debug", "info", "warning", "error")


def _level_rank(level: str) -> int:
    return _LEVELS.index(level) if level in _LEVELS else 1


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


def _lonlat_bbox(ctx: engine.JobContext) -> list[float] | None:
    """Footprint of the job in EPSG:4326 (the STAC item's bbox)."""
    return [round(v, 7) for v in ctx.grid.lonlat_bbox] if ctx.grid is not None else None
