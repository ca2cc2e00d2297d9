"""The user's requests to a running engine: cancel tiles, retry tiles, retry downloads, check now.

The public methods are thread-safe and do no network I/O: they leave the request in an inbox
that the next round applies in the engine's own thread. :func:`reset_for_retry` is the one
way a failed tile is put back to ``not_started`` (the engine's inbox and the panel, when no
run is going, both use it); :meth:`Inbox._cancel_job` is the one way a job is canceled on
its backend (the user's cancel, the running-time limit and "cancel remote jobs").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from . import retry, statuses
from .backends import Backend
from .downloads import FAILED
from .round_updates import CallResult, RoundUpdates

_log = logging.getLogger("openeo_tile_jobs.core.scheduler")

#: Column values of a tile put back to ``not_started`` for a retry, besides its status (attempts from 0).
RETRY_RESET: dict[str, Any] = {
    "id": None,
    "backend_name": None,
    "client_token": None,
    "attempts": 0,
    "progress": None,
}


def retryable_rows(db: Any, fids: Iterable[int]) -> list[dict]:
    """The rows of ``fids`` that a retry resets (their job failed, could not start or was canceled)."""
    wanted = sorted({int(f) for f in fids})
    if not wanted:
        return []
    rows = db.get_many(wanted, columns=["fid", "tile_id", "status"])
    return [r for r in rows if r.get("status") in statuses.FAILED_STATUSES]


def reset_for_retry(db: Any, fids: Iterable[int]) -> int:
    """Put the failed tiles among ``fids`` back to ``not_started`` (no run going); returns how many."""
    rows = retryable_rows(db, fids)
    if rows:
        db.update_many({int(r["fid"]): {"status": statuses.NOT_STARTED, **RETRY_RESET} for r in rows})
    return len(rows)


class Inbox:
    """Part of :class:`core.scheduler.Scheduler`: the user's requests (see the module docstring)."""

    def cancel_tiles(self, fids: Iterable[int]) -> None:
        """Cancel these tiles in the next round: jobs on a backend are stopped (they end ``canceled``),
        tiles not started yet become ``canceled`` right away. Thread-safe; no network here."""
        with self._deferred_lock:
            self._cancel_requested.update(int(f) for f in fids)

    def retry_tiles(self, fids: Iterable[int]) -> int:
        """Put these tiles back to not_started in the next round if they ended error / start_failed /
        canceled (attempts start again from 0); returns how many will be retried. Thread-safe."""
        rows = retryable_rows(self.db, fids)
        with self._deferred_lock:
            self._retry_requested.update(int(r["fid"]) for r in rows)
        return len(rows)

    def retry_failed_downloads(self) -> None:
        """Download the results of tiles whose download failed again, from the next round on."""
        with self._deferred_lock:
            self._retry_downloads_requested = True

    def check_now(self) -> None:
        """Ask every backend about its jobs in the next round, whatever the polling policy planned."""
        with self._deferred_lock:
            self._check_now_requested = True

    def _apply_requests(self, rnd: RoundUpdates) -> None:
        with self._deferred_lock:
            fids, self._retry_requested = self._retry_requested, set()
            downloads, self._retry_downloads_requested = self._retry_downloads_requested, False
            check_now, self._check_now_requested = self._check_now_requested, False
        if fids:
            for r in self.db.get_many(fids, columns=self._row_columns()):
                if r["status"] in statuses.FAILED_STATUSES:
                    self._move(rnd, r, statuses.NOT_STARTED, **RETRY_RESET)
        if downloads:
            self._pending_from_db(rnd, [FAILED])
        if check_now:
            for policy in self._policies.values():
                policy.check_now(self._wall())
        self._flush(rnd)

    def _cancel_job(self, backend: Backend, job_id: str) -> CallResult:
        """``DELETE /jobs/{id}/results``: the one way this engine cancels a job on its backend."""
        if backend.connection is None:
            return CallResult(False, RuntimeError(f"{backend.name} is not connected"), retry.OTHER)
        result = self._call(
            backend,
            "canceling a job",
            lambda: backend.connection.delete(f"/jobs/{job_id}/results", expected_status=204),
        )
        if result.ok or result.kind == retry.NOT_FOUND:
            self._policies[backend.name].on_started(self._wall())  # see it canceled soon
        return result

    def _cancel_requested_jobs(self, by_backend: dict[str, list[dict]], rnd: RoundUpdates) -> None:
        with self._deferred_lock:
            wanted, self._cancel_requested = self._cancel_requested, set()
        if not wanted:
            return
        tracked = {int(r["fid"]): (name, r) for name, rows in by_backend.items() for r in rows}
        moved = rnd.status_now()
        leftover = set()
        for fid in sorted(wanted):
            if fid in tracked and moved.get(fid, tracked[fid][1]["status"]) in statuses.TRACKED_STATUSES:
                name, row = tracked[fid]
                backend = self.backends.get(name)
                if not row.get("id") or backend is None or backend.connection is None or not backend.ready():
                    leftover.add(fid)  # being created / backend unreachable: try again next round
                    continue
                result = self._cancel_job(backend, row["id"])
                if result.ok or result.kind == retry.NOT_FOUND:
                    self._cancel_sent_at[fid] = self._clock()
                    self._user_canceled.add(fid)
                    rnd.set(fid, last_error="canceled by the user")
                else:
                    leftover.add(fid)
        for r in self.db.get_many(wanted - set(tracked), columns=self._row_columns()):
            if r["status"] == statuses.NOT_STARTED:
                self._move(rnd, r, statuses.CANCELED, last_error="canceled by the user")
        if leftover:
            with self._deferred_lock:
                self._cancel_requested |= leftover

    def cancel_remote_jobs(self, timeout: float = 10.0) -> int:
        """Ask the backends to cancel this run's jobs that are still alive there; returns how many were asked.

        For a stopped run (no round going): the job database is not changed; the next round
        (after a resume) tracks them as canceled."""
        rows = self.db.get_by_status(sorted(statuses.REMOTE_ACTIVE_STATUSES), columns=["id", "backend_name"])
        deadline = time.monotonic() + timeout
        asked = 0
        for row in rows:
            if not row.get("id") or time.monotonic() > deadline:
                continue
            backend = self.backends.get(row.get("backend_name") or "")
            if backend is None:
                continue
            try:
                backend.connect()
            except Exception as exc:  # noqa: BLE001 (one failure must not stop the others)
                _log.warning("Cannot cancel job %s on %s: %s", row["id"], backend.name, exc)
                continue
            result = self._cancel_job(backend, row["id"])
            if result.ok:
                asked += 1
            else:
                _log.warning("Cannot cancel job %s on %s: %s", row["id"], backend.name, result.error)
        return asked
