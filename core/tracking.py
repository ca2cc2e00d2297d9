"""Tracking: what the backends say about this run's jobs, and what the tiles do about it.

Per backend and round, only when its :class:`core.polling.PollingPolicy` says a check is due
(or an interrupted creation waits to be resolved): either the ``GET /jobs`` listing (following
``next`` links only while some tracked job is still missing; matched by job id, and by client
token for jobs whose creation was interrupted) or one ``GET /jobs/{id}`` per active job,
whichever :class:`.request_costs.RequestCosts` measured cheaper on that backend. Then each job's state is
applied to its tile: running -> ``running_start_time``; finished -> download queued; error ->
error logs into ``last_error`` and ``job_<id>/errors.json``, a split when it was too big
(:mod:`.splitting`), else retries while attempts remain; jobs running too long are canceled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from . import retry, statuses
from .backends import Backend
from .downloads import PENDING, UnsafeNameError, atomic_write_json, job_dir_of
from .engine_config import StepReport
from .jobspec import find_client_token
from .polling import JobView
from .redact import redact, redact_obj
from .request_costs import MODE_JOBS, MODE_LISTING
from .round_updates import RoundUpdates, StoppedError, parse_utc, usage_text

CREATED, QUEUED_FOR_START = statuses.CREATED, statuses.QUEUED_FOR_START
RUNNING, FINISHED, ERROR, CANCELED = statuses.RUNNING, statuses.FINISHED, statuses.ERROR, statuses.CANCELED
NOT_STARTED = statuses.NOT_STARTED
REMOTE_STATUSES = frozenset({CREATED, statuses.QUEUED, RUNNING, FINISHED, ERROR, CANCELED})
ERRORS_FILENAME = "errors.json"


@dataclass(frozen=True)
class Listing:
    """What a walk through ``GET /jobs`` found."""

    ok: bool
    by_id: dict[str, dict] = field(default_factory=dict)
    by_token: dict[str, dict] = field(default_factory=dict)
    complete: bool = False  # the walk reached the last page


class Tracker:
    """Part of :class:`core.scheduler.Scheduler`: tracking (see the module docstring)."""

    def _tracking_due(self, backend: Backend, rows: list[dict]) -> bool:
        policy = self._policies[backend.name]
        now = self._wall()
        if policy.due(now):
            return True
        has_intent = any(not r.get("id") and r.get("client_token") for r in rows)
        last = policy.last_check
        return has_intent and (last is None or now - last >= policy.min_interval)

    def _measured(self, backend: Backend, fn: Any) -> tuple[Any, float, int]:
        """Run ``fn`` (a CallResult-returning request); its result, seconds and response bytes."""
        t0, b0 = time.perf_counter(), backend.bytes_received
        result = fn()
        return result, time.perf_counter() - t0, backend.bytes_received - b0

    def _list_jobs(self, backend: Backend, want_ids: set[str], want_tokens: set[str], report: StepReport) -> Listing:
        """Walk the listing until every wanted job is found (bounded)."""
        conn = backend.connection
        assert conn is not None
        costs = self._costs[backend.name]
        found: dict[str, dict] = {}
        by_token: dict[str, dict] = {}
        url, params = "/jobs", {"limit": self.config.listing_page_size}
        pages = 0
        complete = False
        while True:
            self._check_stop()
            res, seconds, nbytes = self._measured(
                backend,
                lambda u=url, p=params: self._call(
                    backend, "listing jobs", lambda: conn.get(u, params=p, expected_status=200).json()
                ),
            )
            pages += 1
            report.listing_requests[backend.name] = report.listing_requests.get(backend.name, 0) + 1
            page = res.value
            if not res.ok or not isinstance(page, dict):
                return Listing(ok=False, by_id=found, by_token=by_token)
            jobs = [job for job in page.get("jobs") or [] if isinstance(job, dict)]
            costs.note_listing_page(seconds, nbytes, len(jobs))
            max_pages = self.config.max_listing_pages
            if want_tokens:
                # Interrupted creations must be resolved: walk (much) further for them.
                max_pages = max(max_pages, 200)
            for job in jobs:
                jid = job.get("id")
                if jid in want_ids:
                    found[jid] = job
                if want_tokens:
                    token = find_client_token(job.get("title"), job.get("description"))
                    if token in want_tokens:
                        by_token[token] = job
            missing = want_ids - set(found)
            links = [link for link in page.get("links") or [] if isinstance(link, dict) and link.get("rel") == "next"]
            if not links or not links[0].get("href"):
                complete = True
                break
            if not missing and not (set(want_tokens) - set(by_token)):
                break
            if pages >= max_pages:
                break
            url, params = links[0]["href"], None
        if not want_tokens:
            costs.listing_pages = float(pages)
        return Listing(ok=True, by_id=found, by_token=by_token, complete=complete)

    def _get_jobs(self, backend: Backend, job_ids: list[str], counter: dict[str, int]) -> dict[str, dict]:
        """``GET /jobs/{id}`` for each job (a gone job is reported as an error); stops at a transient failure."""
        found: dict[str, dict] = {}
        costs = self._costs[backend.name]
        for jid in job_ids:
            self._check_stop()
            res, seconds, nbytes = self._measured(
                backend,
                lambda j=jid: self._call(
                    backend, "job status", lambda: backend.connection.get(f"/jobs/{j}", expected_status=200).json()
                ),
            )
            counter[backend.name] = counter.get(backend.name, 0) + 1
            if res.ok and isinstance(res.value, dict):
                costs.note_job(seconds, nbytes)
                found[jid] = res.value
            elif res.kind == retry.NOT_FOUND:
                found[jid] = {"id": jid, "status": ERROR, "_gone": True}
            elif res.kind != retry.CLIENT:
                break
        return found

    def _track(self, backend: Backend, rows: list[dict], rnd: RoundUpdates, report: StepReport) -> None:
        with_id = {r["id"]: r for r in rows if r.get("id")}
        intents = {r["client_token"]: r for r in rows if not r.get("id") and r.get("client_token")}
        mode = MODE_LISTING if intents else self._costs[backend.name].choose(len(with_id))
        if mode == MODE_JOBS:
            found = self._get_jobs(backend, list(with_id), report.job_requests)
            if not found and with_id:
                return
        else:
            listing = self._list_jobs(backend, set(with_id), set(intents), report)
            if not listing.ok:
                return
            found = dict(listing.by_id)
            self._resolve_intents(backend, intents, listing, with_id, found, rnd)
            # Jobs the listing lacks: ask for them one by one (bounded).
            missing = [jid for jid in with_id if jid not in found][: self.config.max_fallback_gets]
            found.update(self._get_jobs(backend, missing, report.fallback_requests))
        error_logs_budget = self.config.max_error_logs_per_round
        for jid, row in with_id.items():
            job = found.get(jid)
            if job is not None:
                error_logs_budget -= self._apply_remote(backend, row, job, rnd, error_logs_budget)
        self._plan_next_check(backend, with_id, found, rnd)

    def _resolve_intents(
        self,
        backend: Backend,
        intents: dict[str, dict],
        listing: Listing,
        with_id: dict[str, dict],
        found: dict[str, dict],
        rnd: RoundUpdates,
    ) -> None:
        """Interrupted creations: adopt the job, or revert the tile when the job was never made."""
        for token, row in intents.items():
            job = listing.by_token.get(token)
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
            elif listing.complete and self._intent_expired(row):
                attempts = max(0, int(row.get("attempts") or 1) - 1)
                self._move(rnd, row, NOT_STARTED, client_token=None, backend_name=None, attempts=attempts)

    def _plan_next_check(
        self, backend: Backend, with_id: dict[str, dict], found: dict[str, dict], rnd: RoundUpdates
    ) -> None:
        """Tell the backend's polling policy what this check saw; it decides when to ask next."""
        policy = self._policies[backend.name]
        now = self._wall()
        moved = rnd.status_now()
        views, deadlines = [], []
        limit = self.config.cancel_running_after
        for jid, row in with_id.items():
            job = found.get(jid) or {}
            status = moved.get(int(row["fid"]), row["status"])
            started_at = parse_utc(row.get("start_time")) or now
            if job.get("status") == FINISHED:
                policy.record_end(now, jid, started_at, parse_utc(job.get("updated")))
            elif status in statuses.TRACKED_STATUSES:
                progress = job.get("progress")
                running = job.get("status", status) == RUNNING
                progress = progress if isinstance(progress, (int, float)) else None
                view = JobView(jid, started_at, running, progress, parse_utc(job.get("updated")))
                policy.observe(now, view)
                views.append(view)
                running_since = parse_utc(rnd.updates.get(int(row["fid"]), {}).get("running_start_time"))
                running_since = running_since or parse_utc(row.get("running_start_time"))
                if limit is not None and running and running_since is not None:
                    deadlines.append(running_since + limit)
            else:
                policy.forget(jid)
        policy.plan(now, views, deadlines)

    def _intent_expired(self, row: dict) -> bool:
        fid = int(row["fid"])
        failed_at = self._intent_failed_at.get(fid)
        if failed_at is not None:
            return self._clock() - failed_at >= self.config.intent_grace
        started = parse_utc(row.get("start_time"))
        return started is None or self._wall() - started >= self.config.intent_grace

    def _remote_values(self, backend: Backend, row: dict, job: dict, rnd: RoundUpdates) -> dict[str, Any]:
        """Columns a job's metadata updates (progress, costs, usage)."""
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
            text = usage_text(job, key)
            if text is not None and key in self._columns:
                values[key] = text
        return values

    def _apply_remote(self, backend: Backend, row: dict, job: dict, rnd: RoundUpdates, error_budget: int) -> int:
        """Apply a job's remote state to its tile; returns how many error-log fetches were used."""
        fid = int(row["fid"])
        old = row["status"]
        new = job.get("status")
        if new not in REMOTE_STATUSES:
            return 0
        values = self._remote_values(backend, row, job, rnd)
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
            values["running_start_time"] = self._utc_now()
        if new == ERROR and old != ERROR:
            if error_budget <= 0:
                return 0  # seen again next round
            self._handle_job_error(backend, row, job, rnd, values)
            return 1
        if new == CANCELED and fid in self._cancel_sent_at and fid not in self._user_canceled:
            values["last_error"] = (
                f"canceled by the engine after running longer than {self.config.cancel_running_after:g} s"
            )
        if new != old:
            self._move(rnd, row, new, **values)
            if new == FINISHED and self.config.download:
                self._result_move(rnd, row, PENDING)
                self._mark_download_pending(int(row["fid"]), row.get("tile_id"), row["id"], backend.name)
        elif values:
            rnd.set(fid, **values)
        if new == RUNNING:
            self._maybe_cancel(backend, row, values.get("running_start_time") or row.get("running_start_time"))
        if new in (FINISHED, ERROR, CANCELED):
            self._start_sent_at.pop(fid, None)
            self._cancel_sent_at.pop(fid, None)
            self._user_canceled.discard(fid)
        return 0

    def _start_is_stale(self, fid: int) -> bool:
        sent = self._start_sent_at.get(fid)
        return sent is None or self._clock() - sent >= self.config.restart_stale_start_after

    def _error_logs(self, backend: Backend, jid: str, job: dict) -> list[dict]:
        if job.get("_gone"):
            return [{"level": "error", "message": f"job {jid} no longer exists on {backend.name}"}]
        res = self._call(
            backend,
            "error logs",
            lambda: backend.connection.get(f"/jobs/{jid}/logs", params={"level": "error"}, expected_status=200).json(),
        )
        if res.ok and isinstance(res.value, dict):
            logs = res.value.get("logs") or []
        elif res.ok and isinstance(res.value, list):
            logs = res.value
        else:
            logs = [{"level": "error", "message": "the job ended in error; its logs could not be read"}]
        return redact_obj([entry for entry in logs if isinstance(entry, dict)])

    def _handle_job_error(self, backend: Backend, row: dict, job: dict, rnd: RoundUpdates, values: dict) -> None:
        fid = int(row["fid"])
        jid = row["id"]
        logs = self._error_logs(backend, jid, job)
        message = "; ".join(str(e.get("message", "")) for e in logs[:3] if e.get("message")) or "job ended in error"
        message = redact(message)[:1000]
        try:
            atomic_write_json(job_dir_of(self.config.output_dir, jid) / ERRORS_FILENAME, logs)
        except (OSError, UnsafeNameError) as e:
            self._emit_log(logging.WARNING, f"Cannot write the error log of job {jid}: {e}", job_id=jid)
        attempts = int(row.get("attempts") or 1)
        message = self._split_if_too_big(backend, row, logs, message, values, rnd)
        if message is None:  # split (core.splitting): the children carry the tile's work
            return
        values["last_error"] = message
        where = {"backend": backend.name, "tile_id": row["tile_id"], "job_id": jid}
        if attempts < self.config.max_attempts:
            self._emit_log(
                logging.WARNING,
                f"Tile {row['tile_id']}: job {jid} failed ({message}); retrying (attempt {attempts + 1} of "
                f"{self.config.max_attempts})",
                **where,
            )
            self._move(rnd, row, NOT_STARTED, id=None, backend_name=None, client_token=None, **values)
        else:
            self._emit_log(logging.ERROR, f"Tile {row['tile_id']}: job {jid} failed: {message}", **where)
            self._move(rnd, row, ERROR, **values)
        self._start_sent_at.pop(fid, None)

    def _maybe_cancel(self, backend: Backend, row: dict, running_since: Any) -> None:
        limit = self.config.cancel_running_after
        if limit is None:
            return
        since = parse_utc(running_since)
        if since is None or self._wall() - since < limit:
            return
        fid = int(row["fid"])
        sent = self._cancel_sent_at.get(fid)
        if sent is not None and self._clock() - sent < 30.0:
            return
        if self._cancel_job(backend, row["id"]).ok:
            self._cancel_sent_at[fid] = self._clock()
            self._emit_log(
                logging.WARNING,
                f"Tile {row['tile_id']}: canceling job {row['id']}, running longer than {limit:g} s",
                backend=backend.name,
                tile_id=row["tile_id"],
                job_id=row["id"],
            )

    def _check_stop(self) -> None:
        if self._stop_event.is_set():
            raise StoppedError()
