"""SQLite store under the data directory: jobs, job logs, user-defined processes, token hashes.

One connection guarded by a lock (every statement is sub-millisecond; WAL keeps the file
consistent if the process dies). The job listing uses the ``(user_id, seq)`` index and keyset
pagination, so it stays cheap with many thousands of jobs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    title TEXT,
    description TEXT,
    process TEXT NOT NULL,
    plan TEXT,
    budget REAL,
    log_level TEXT NOT NULL DEFAULT 'info',
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    queued_at REAL,
    started_at REAL,
    finished_at REAL,
    attempt INTEGER NOT NULL DEFAULT 0,
    progress REAL,
    usage TEXT,
    costs REAL,
    results TEXT
);
CREATE INDEX IF NOT EXISTS jobs_user_seq ON jobs (user_id, seq);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    time TEXT NOT NULL,
    code TEXT
);
CREATE INDEX IF NOT EXISTS logs_job_seq ON logs (job_id, seq);
CREATE TABLE IF NOT EXISTS udps (
    user_id TEXT NOT NULL,
    id TEXT NOT NULL,
    definition TEXT NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    expires REAL NOT NULL
);
"""

LOG_LEVELS = ("debug", "info", "warning", "error")
ACTIVE = ("queued", "running")
LIST_COLUMNS = "seq, id, status, title, description, created, updated, progress, usage, costs, plan, budget"


def rfc3339(ts: float | None = None) -> str:
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class JobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- low level -------------------------------------------------------------------------
    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def _one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchone()

    def _page(
        self, sql: str, params: list[Any], op: str, seq: int | None, order: str, limit: int | None
    ) -> list[sqlite3.Row]:
        """Keyset page of ``sql``: rows with ``seq <op> seq`` (if given), ordered by seq, at most ``limit``."""
        if seq is not None:
            sql += f" AND seq {op} ?"
            params = [*params, seq]
        sql += f" ORDER BY seq {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, limit]
        return self._all(sql, params)

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, tuple(params)).rowcount

    # -- jobs ------------------------------------------------------------------------------
    def create_job(self, job_id: str, user_id: str, process: dict, **fields: Any) -> dict:
        now = rfc3339()
        self._exec(
            "INSERT INTO jobs (id, user_id, status, title, description, process, plan, budget, log_level,"
            " created, updated) VALUES (?, ?, 'created', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                user_id,
                fields.get("title"),
                fields.get("description"),
                json.dumps(process),
                fields.get("plan"),
                fields.get("budget"),
                fields.get("log_level") or "info",
                now,
                now,
            ),
        )
        return self.get_job(job_id)

    def get_job(self, job_id: str, user_id: str | None = None) -> dict | None:
        if user_id is None:
            row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        else:
            row = self._one("SELECT * FROM jobs WHERE id = ? AND user_id = ?", (job_id, user_id))
        return _job_dict(row) if row else None

    def list_jobs(self, user_id: str, limit: int | None, before_seq: int | None) -> list[dict]:
        """Newest first; ``before_seq`` continues a previous page (keyset pagination)."""
        sql = f"SELECT {LIST_COLUMNS} FROM jobs WHERE user_id = ?"
        return [_job_dict(r) for r in self._page(sql, [user_id], "<", before_seq, "DESC", limit)]

    def update_job(self, job_id: str, where: str = "", where_params: Iterable[Any] = (), **fields: Any) -> bool:
        """Set columns (JSON-encoding dicts); ``where`` adds a guard like ``status = 'running'``.

        ``updated`` is the time of the last status change, as the openEO API describes it: a client
        can tell from it when a job began running (progress and costs do not move it)."""
        if "status" in fields:
            fields["updated"] = rfc3339()
        cols = ", ".join(f"{k} = ?" for k in fields)
        values = [json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()]
        sql = f"UPDATE jobs SET {cols} WHERE id = ?" + (f" AND ({where})" if where else "")
        return self._exec(sql, [*values, job_id, *where_params]) > 0

    def cancel_if_active(self, job_id: str) -> bool:
        """Mark a queued or running job canceled; False if it was neither."""
        return self.update_job(job_id, where=f"status IN ({_marks(ACTIVE)})", where_params=ACTIVE, status="canceled")

    def delete_job(self, job_id: str) -> None:
        """Remove a job and its logs in one transaction (no orphan logs if the process dies between)."""
        with self._lock, self._db:  # the connection commits on success, rolls back on error
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            self._db.execute("DELETE FROM logs WHERE job_id = ?", (job_id,))

    def jobs_with_status(self, statuses: Iterable[str]) -> list[dict]:
        statuses = list(statuses)
        rows = self._all(f"SELECT * FROM jobs WHERE status IN ({_marks(statuses)}) ORDER BY seq", statuses)
        return [_job_dict(r) for r in rows]

    def count_active(self, user_id: str, statuses: Iterable[str] = ACTIVE) -> int:
        statuses = list(statuses)
        sql = f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ({_marks(statuses)})"
        row = self._one(sql, [user_id, *statuses])
        return int(row[0])

    def queued_jobs(self) -> list[sqlite3.Row]:
        return self._all("SELECT seq, id, user_id, queued_at, attempt FROM jobs WHERE status = 'queued' ORDER BY seq")

    def running_per_user(self) -> dict[str, int]:
        rows = self._all("SELECT user_id, COUNT(*) FROM jobs WHERE status = 'running' GROUP BY user_id")
        return {r[0]: int(r[1]) for r in rows}

    # -- logs ------------------------------------------------------------------------------
    def add_log(self, job_id: str, level: str, message: str, code: str | None = None) -> None:
        self._exec(
            "INSERT INTO logs (job_id, level, message, time, code) VALUES (?, ?, ?, ?, ?)",
            (job_id, level, message, rfc3339(), code),
        )

    def logs(self, job_id: str, min_level: str, after: int | None, limit: int | None) -> list[dict]:
        levels = LOG_LEVELS[LOG_LEVELS.index(min_level) :]
        sql = f"SELECT seq, level, message, time, code FROM logs WHERE job_id = ? AND level IN ({_marks(levels)})"
        return [dict(r) for r in self._page(sql, [job_id, *levels], ">", after, "ASC", limit)]

    # -- user-defined processes --------------------------------------------------------------
    def put_udp(self, user_id: str, udp_id: str, definition: dict) -> None:
        self._exec(
            "INSERT OR REPLACE INTO udps (user_id, id, definition) VALUES (?, ?, ?)",
            (user_id, udp_id, json.dumps(definition)),
        )

    def get_udp(self, user_id: str, udp_id: str) -> dict | None:
        row = self._one("SELECT definition FROM udps WHERE user_id = ? AND id = ?", (user_id, udp_id))
        return json.loads(row[0]) if row else None

    def list_udps(self, user_id: str) -> list[dict]:
        return [
            json.loads(r[0]) for r in self._all("SELECT definition FROM udps WHERE user_id = ? ORDER BY id", (user_id,))
        ]

    def delete_udp(self, user_id: str, udp_id: str) -> bool:
        return self._exec("DELETE FROM udps WHERE user_id = ? AND id = ?", (user_id, udp_id)) > 0

    # -- tokens (only their SHA-256 hashes are stored) ---------------------------------------
    def put_token(self, token_hash: str, kind: str, user_id: str, expires: float) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tokens WHERE expires < ?", (time.time() - 86400,))
            self._db.execute(
                "INSERT OR REPLACE INTO tokens (hash, kind, user_id, expires) VALUES (?, ?, ?, ?)",
                (token_hash, kind, user_id, expires),
            )

    def get_token(self, token_hash: str) -> sqlite3.Row | None:
        return self._one("SELECT kind, user_id, expires FROM tokens WHERE hash = ?", (token_hash,))


def _marks(values: Iterable[Any]) -> str:
    """``?, ?, ?`` for an SQL ``IN (...)`` list of these values."""
    return ", ".join("?" for _ in values)


def _job_dict(row: sqlite3.Row) -> dict:
    job = dict(row)
    for key in ("process", "usage", "results"):
        if job.get(key):
            job[key] = json.loads(job[key])
    return job
