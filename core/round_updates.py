"""The book-keeping of one round: row updates flushed in one transaction, status moves counted and emitted.

:class:`RoundUpdates` collects what a round changes; :class:`RoundBook` (a part of
:class:`core.scheduler.Scheduler`) records moves into it, flushes it to the job database and
turns the net moves into events. :class:`CallResult` is the typed outcome of one request.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from openeo.util import rfc3339

from .downloads import DOWNLOADED, FAILED
from .engine_config import StepReport
from .events import LogLine, Progress, StatusChange
from .redact import redact

_log = logging.getLogger("openeo_tile_jobs.core.scheduler")

#: Net move of one tile in a round: (tile id, status before the round, status after).
NetMove = tuple[Any, Optional[str], str]


class StoppedError(Exception):
    """Raised inside a round when :meth:`Scheduler.stop` was called; ends the round quietly."""


@dataclass(frozen=True)
class CallResult:
    """The outcome of one request: its value, or the error and its kind (see :mod:`.retry`)."""

    ok: bool
    value: Any = None
    kind: Optional[str] = None

    @property
    def error(self) -> Any:
        return None if self.ok else self.value


class RoundUpdates:
    """Row updates of one round, flushed in one transaction, plus what changed (for events)."""

    def __init__(self) -> None:
        self.updates: dict[int, dict[str, Any]] = {}
        self.status_moves: list[tuple[int, Any, Optional[str], str]] = []  # fid, tile_id, old, new
        self.result_moves: list[tuple[int, Any, Optional[str], str]] = []
        self.cost_deltas: dict[str, float] = defaultdict(float)
        self.backend_of: dict[int, Optional[str]] = {}

    def set(self, fid: int, **values: Any) -> None:
        self.updates.setdefault(int(fid), {}).update(values)
        if "backend_name" in values:
            self.backend_of[int(fid)] = values["backend_name"]

    def status_now(self) -> dict[int, str]:
        """The status each moved tile has after this round's moves so far."""
        return {fid: new for fid, _tid, _old, new in self.status_moves}


def utc_text(t: float) -> str:
    """RFC 3339 (UTC, milliseconds) of ``t`` seconds since the epoch."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_utc(value: Any) -> Optional[float]:
    """Seconds since the epoch of an RFC 3339 timestamp; None when absent or unreadable."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))  # fast; RFC 3339 as backends write it
    except ValueError:
        try:
            dt = rfc3339.parse_datetime(str(value), with_timezone=True)
        except Exception:  # noqa: BLE001 - unparsable timestamps are treated as unknown
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def net_moves(
    moves: Iterable[tuple[int, Any, Optional[str], str]],
    prior: Optional[Callable[[int, Optional[str]], Optional[str]]] = None,
) -> dict[int, NetMove]:
    """Per fid: (tile id, status before the round, status after), from a round's moves in order.

    ``prior(fid, old)`` gives the status known before the round where it may differ from ``old``."""
    final: dict[int, NetMove] = {}
    for fid, tid, old, new in moves:
        first_old = final[fid][1] if fid in final else (prior(fid, old) if prior else old)
        final[fid] = (tid, first_old, new)
    return final


def count_moves(final: dict[int, NetMove], counts: dict[Any, int]) -> dict[str, list[tuple[int, Any]]]:
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


def emit_changes(
    by_new: dict[str, list[tuple[int, Any]]],
    report: Optional[dict[str, list[Any]]],
    emit: Callable[[StatusChange], None],
) -> None:
    for status, items in by_new.items():
        change = StatusChange(status=status, tile_ids=tuple(t for _, t in items), fids=tuple(f for f, _ in items))
        if report is not None:
            report[status] = list(change.tile_ids)
        emit(change)


def usage_text(job: dict, key: str) -> Optional[str]:
    usage = job.get("usage")
    if not isinstance(usage, dict) or key not in usage:
        return None
    item = usage[key]
    if isinstance(item, dict):
        return f"{item.get('value', 0)} {item.get('unit', '')}".strip()
    return str(item)


def error_message(err: Any) -> str:
    message = getattr(err, "message", None)
    code = getattr(err, "code", None)
    if isinstance(message, str) and message:
        return f"{code}: {message}" if code else message
    return str(err)


class RoundBook:
    """Part of :class:`core.scheduler.Scheduler`: moves, flushes and the events they make."""

    def _move(self, rnd: RoundUpdates, row: dict, new: str, **values: Any) -> None:
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

    def _result_move(self, rnd: RoundUpdates, row: dict, new: str, **values: Any) -> None:
        fid = int(row["fid"])
        rnd.set(fid, result_status=new, **values)
        rnd.result_moves.append((fid, row.get("tile_id"), row.get("result_status"), new))

    def _flush(self, rnd: RoundUpdates) -> None:
        """Write the round's pending updates in one transaction (kept for the next try on failure)."""
        if not rnd.updates:
            return
        updates = {fid: {k: v for k, v in vals.items() if k in self._columns} for fid, vals in rnd.updates.items()}
        self.db.update_many(updates)
        rnd.updates = {}

    def _emit_round(self, rnd: RoundUpdates, report: Optional[StepReport] = None) -> None:
        by_status = count_moves(net_moves(rnd.status_moves), self._counts)
        emit_changes(by_status, report.changes if report else None, self.events.on_status_changed)
        rfinal = net_moves(rnd.result_moves, self._result_of.get)
        for fid, (_tid, _old, new) in rfinal.items():
            self._result_of[fid] = new
        by_result = count_moves(rfinal, self._result_counts)
        emit_changes(by_result, report.result_changes if report else None, self.events.on_result_status_changed)
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
            next_check_in=self.next_check_in(),
        )

    def _utc_now(self) -> str:
        """Now on the engine's wall clock, as the job database writes times."""
        return utc_text(self._wall())

    def _hook(self, point: str, fid: int) -> None:
        if self.checkpoint is not None:
            self.checkpoint(point, fid)

    def _emit_log(self, level: int, message: str, **kw: Any) -> None:
        message = redact(message)
        _log.log(level, message)
        self.events.on_log(LogLine(level=level, message=message, **kw))
