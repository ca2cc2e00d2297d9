"""Starting: new jobs up to each backend's capacity, crash-safe.

First backend first, up to ``parallel_jobs`` (and ``queueing_limit`` waiting); jobs left
``created`` are started again. Before ``POST /jobs`` every tile of the round is written
``created`` with a fresh ``client_token`` and no job id, in one transaction; the token is in
the job's title and description, so tracking can adopt or revert an interrupted creation and
no job is ever created twice. Creating and starting runs per backend in a small thread pool
(HTTP only there); the outcomes come back as :data:`CreateOutcome` values.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Union

from . import retry, statuses
from .backends import Backend
from .engine_config import StepReport
from .jobspec import (
    ENGINE_COLUMNS,
    JobSpecError,
    ResolvedProcess,
    build_job_request,
    new_client_token,
    resolve_process,
)
from .redact import redact
from .round_updates import CallResult, RoundUpdates, error_message

CREATED, QUEUED_FOR_START, QUEUED = statuses.CREATED, statuses.QUEUED_FOR_START, statuses.QUEUED
NOT_STARTED, START_FAILED = statuses.NOT_STARTED, statuses.START_FAILED


@dataclass(frozen=True)
class NotSent:
    """The request was not sent (the backend failed earlier in the round, or the engine stopped)."""


@dataclass(frozen=True)
class Created:
    """``POST /jobs`` made ``job_id``; ``start`` is the outcome of ``POST /jobs/{id}/results``."""

    job_id: str
    start: CallResult


@dataclass(frozen=True)
class CreateFailed:
    """``POST /jobs`` failed (``kind`` from :mod:`.retry`)."""

    error: Any
    kind: Optional[str]


CreateOutcome = Union[NotSent, Created, CreateFailed]


def tile_inputs(db: Any, resolved: Optional[ResolvedProcess], rows: list[dict]) -> dict[int, dict]:
    """Each row (by fid) with what its job request needs of the tile: ``bbox`` in the tiling CRS when the
    process takes a bounding box, else ``geometry`` as EPSG:4326 GeoJSON (shared by the preview)."""
    fids = [int(r["fid"]) for r in rows]
    need_bbox = resolved is not None and resolved.geometry_kind == "bbox"
    geoms = db.geometries_4326(fids) if not need_bbox else {}
    out = {}
    for r in rows:
        fid = int(r["fid"])
        tile = dict(r)
        if need_bbox:
            bbox = db.bbox(fid, crs=db.crs)
            crs = bbox.get("crs")
            if isinstance(crs, str) and crs.upper().startswith("EPSG:"):
                bbox["crs"] = int(crs.split(":", 1)[1])
            tile["bbox"] = bbox
        else:
            tile["geometry"] = geoms.get(fid)
        out[fid] = tile
    return out


class Starter:
    """Part of :class:`core.scheduler.Scheduler`: starting (see the module docstring)."""

    def _resolve(self) -> Optional[ResolvedProcess]:
        if self._resolved is not None:
            return self._resolved
        backend = next((b for b in self.backends if b.connection is not None and b.ready()), None)
        if backend is None or not self._resolve_backoff.ready(self._clock()):
            return None
        t0 = time.perf_counter()
        try:
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

    def _start_new(self, by_backend: dict[str, list[dict]], rnd: RoundUpdates, report: StepReport) -> None:
        now = self._clock()
        # Rows re-read after tracking: statuses may have changed in this round.
        moved = rnd.status_now()
        plan: list[tuple[Backend, int]] = []
        restart: list[tuple[Backend, dict]] = []
        for backend in self.backends:
            rows = [
                r
                for r in by_backend.get(backend.name, [])
                if moved.get(int(r["fid"]), r["status"]) in statuses.TRACKED_STATUSES
            ]
            rows = [{**r, "status": moved.get(int(r["fid"]), r["status"])} for r in rows]
            blocked = now < self._start_blocked_until.get(backend.name, 0)
            if not backend.ready() or backend.connection is None or blocked:
                continue
            restart += [(backend, r) for r in rows if r["status"] == CREATED and r.get("id")]
            plan.append((backend, self._capacity(backend, rows)))
        for backend, row in restart:
            self._check_stop()
            if now < self._start_blocked_until.get(backend.name, 0) or not backend.ready():
                continue
            self._apply_start(backend, row, rnd, self._post_start(backend, row["id"]))
        if sum(n for _, n in plan) <= 0 or self._resolve() is None:
            return
        assigned = self._record_intents(plan, rnd)
        self._flush(rnd)
        for _backend, row, _req in assigned:
            self._hook("after_intent", int(row["fid"]))
        self._create_all(assigned, rnd, report)

    def _record_intents(self, plan: list[tuple[Backend, int]], rnd: RoundUpdates) -> list[tuple[Backend, dict, Any]]:
        """Write every intent of this round (status ``created``, a fresh client token), BEFORE any POST /jobs."""
        total = sum(n for _, n in plan)
        if self.only_fids is not None:  # a pilot: only these tiles start
            rows = self.db.get_many(sorted(self.only_fids), columns=self._candidate_columns())
            candidates = [r for r in rows if r["status"] == NOT_STARTED][:total]
        else:
            candidates = self.db.get_by_status([NOT_STARTED], max=total, columns=self._candidate_columns())
        if not candidates:
            return []
        return self._write_intents(plan, candidates, rnd)

    def _write_intents(
        self, plan: list[tuple[Backend, int]], candidates: list[dict], rnd: RoundUpdates
    ) -> list[tuple[Backend, dict, Any]]:
        tiles = self._tile_inputs(candidates)
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
                attempts = int(row.get("attempts") or 0) + 1
                self._move(
                    rnd,
                    row,
                    CREATED,
                    id=None,
                    client_token=token,
                    backend_name=backend.name,
                    title=req.title,
                    description=req.description,
                    start_time=self._utc_now(),
                    running_start_time=None,
                    progress=None,
                    attempts=attempts,
                )
                self._intent_failed_at.pop(int(row["fid"]), None)
                assigned.append((backend, {**row, "client_token": token, "status": CREATED, "attempts": attempts}, req))
        return assigned

    def first_backend(self) -> Backend:
        """The first backend of the run that answers, connected (blocking); RuntimeError when none does."""
        for backend in self.backends:
            self._prepare_backend(backend)
            if backend.connection is not None and backend.ready():
                return backend
        raise RuntimeError("No backend of the run can be reached.")

    def create_job(self, fid: int) -> tuple[Backend, str]:
        """Create, but do not start, the job of one not-started tile on the run's first usable backend.

        Recorded exactly like a start (the intent first, then ``POST /jobs``), so the tile is
        ``created`` with its job id and the engine starts that job when it runs: the job made to
        ask for an estimate is the tile's job. Blocking (not on the GUI thread). Raises
        ``RuntimeError`` with the reason when no job was made.
        """
        backend = self.first_backend()
        if self._resolve() is None:
            raise RuntimeError(self._spec_error or "The process definition cannot be read.")
        row = self.db.get(fid, columns=self._candidate_columns())
        if row is None or row["status"] != NOT_STARTED:
            raise RuntimeError(f"Tile {fid} is not waiting to start.")
        rnd = RoundUpdates()
        assigned = self._write_intents([(backend, 1)], [{**row, "fid": fid}], rnd)
        self._flush(rnd)
        if not assigned:
            raise RuntimeError(f"No job can be built for tile {row['tile_id']}.")
        _backend, row, req = assigned[0]
        res = self._call(backend, "creating a job", lambda: self._post_job(backend, req))
        if res.ok:
            rnd.set(fid, id=res.value)
        else:  # as a round would: start_failed for a refusal, undone or resolved by tracking otherwise
            self._apply_create_outcome(backend, row, CreateFailed(res.error, res.kind), rnd, StepReport())
        self._flush(rnd)
        if not res.ok:
            raise RuntimeError(f"The backend did not create the job: {error_message(res.error)}")
        return backend, res.value

    def _create_all(self, assigned: list[tuple[Backend, dict, Any]], rnd: RoundUpdates, report: StepReport) -> None:
        """Create and start: backends in parallel (HTTP only in the pool), each one sequentially."""
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

    def _create_and_start(self, backend: Backend, items: list[tuple[dict, Any]]) -> list[tuple[dict, CreateOutcome]]:
        """POST /jobs then POST /jobs/{id}/results for each tile of one backend (in the pool: HTTP only).

        Stops on a backend at its first failure that is not the tile's own fault."""
        out: list[tuple[dict, CreateOutcome]] = []
        halted = False
        for row, req in items:
            fid = int(row["fid"])
            if halted or self._stop_event.is_set() or not backend.ready():
                out.append((row, NotSent()))
                continue
            res = self._call(backend, "creating a job", lambda r=req: self._post_job(backend, r))
            if not res.ok:
                out.append((row, CreateFailed(res.error, res.kind)))
                halted = res.kind not in (retry.CLIENT, retry.NOT_FOUND)
                continue
            self._hook("after_create", fid)
            started = self._post_start(backend, res.value)
            self._hook("after_start", fid)
            out.append((row, Created(res.value, started)))
            if not started.ok and started.kind != retry.CLIENT:
                halted = True  # e.g. ConcurrentJobLimit: do not create jobs that cannot start
        return out

    def _undo_intent(self, rnd: RoundUpdates, row: dict) -> None:
        """No job exists for this intent: the tile is not started again."""
        self._move(rnd, row, NOT_STARTED, client_token=None, backend_name=None, attempts=row["attempts"] - 1)

    def _apply_create_outcome(
        self, backend: Backend, row: dict, outcome: CreateOutcome, rnd: RoundUpdates, report: StepReport
    ) -> None:
        fid = int(row["fid"])
        if isinstance(outcome, NotSent):
            self._undo_intent(rnd, row)
        elif isinstance(outcome, Created):
            rnd.set(fid, id=outcome.job_id)
            report.started += 1
            self._apply_start(backend, {**row, "id": outcome.job_id}, rnd, outcome.start)
        elif outcome.kind in (retry.CLIENT, retry.NOT_FOUND):
            # e.g. ProcessGraphInvalid, CollectionNotFound: this tile's request is wrong.
            msg = redact(f"the backend refused the job: {error_message(outcome.error)}")[:1000]
            self._move(rnd, row, START_FAILED, last_error=msg)
            self._emit_log(logging.ERROR, f"Tile {row['tile_id']}: {msg}", backend=backend.name, tile_id=row["tile_id"])
        elif outcome.kind in (retry.CONCURRENT_LIMIT, retry.RATE_LIMITED, retry.AUTH):
            # Refused before anything was created: undo the intent and try later.
            self._undo_intent(rnd, row)
            if outcome.kind == retry.CONCURRENT_LIMIT:
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
        return tile_inputs(self.db, self._resolved, rows)

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

    def _post_start(self, backend: Backend, jid: str) -> CallResult:
        return self._call(
            backend, "starting a job", lambda: backend.connection.post(f"/jobs/{jid}/results", expected_status=202)
        )

    def _apply_start(self, backend: Backend, row: dict, rnd: RoundUpdates, started: CallResult) -> None:
        fid = int(row["fid"])
        jid = row["id"]
        if started.ok:
            self._start_sent_at[fid] = self._clock()
            self._move(rnd, row, QUEUED_FOR_START)
            self._policies[backend.name].on_started(self._wall())
            return
        if started.kind == retry.CONCURRENT_LIMIT:
            self._start_blocked_until[backend.name] = self._clock() + self.config.concurrent_limit_wait
            self._emit_log(
                logging.INFO,
                f"{backend.name}: concurrent job limit reached; starting job {jid} later",
                backend=backend.name,
                job_id=jid,
            )
        elif started.kind == retry.CLIENT:
            msg = redact(f"the backend refused to start job {jid}: {error_message(started.error)}")[:1000]
            self._move(rnd, row, START_FAILED, last_error=msg)
            self._emit_log(logging.ERROR, f"Tile {row['tile_id']}: {msg}", backend=backend.name, tile_id=row["tile_id"])
        elif started.kind == retry.NOT_FOUND:
            self._move(rnd, row, NOT_STARTED, id=None, client_token=None, backend_name=None)
        # transient/auth: stays created; started in a later round
