"""A simulated openEO backend on a simulated clock, for running the real Scheduler at scale.

:class:`SimClock` is the one clock of a simulation (wall and monotonic at once). A
:class:`SimBackend` keeps jobs whose queue and run times are drawn when they start and whose
status follows the clock; :meth:`SimBackend.connection_factory` gives the engine's
:class:`core.backends.Backend` a connection that answers from it, in the shapes of the openEO
API (``GET /jobs`` pages with ``next`` links, ``GET /jobs/{id}``, ``POST /jobs``,
``POST /jobs/{id}/results``, ``DELETE /jobs/{id}/results``). Each answer goes through the
Backend's session hooks, so the engine counts requests and bytes exactly as over HTTP.
Requests take no simulated time.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

PROCESS = {
    "id": "sim_process",
    "parameters": [{"name": "geometry", "description": "", "schema": {"type": "object", "subtype": "geojson"}}],
}


class SimClock:
    """Seconds since the epoch, moved only by :meth:`advance` / :meth:`advance_to`."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self.start = start

    def __call__(self) -> float:
        return self.t

    def advance_to(self, t: float) -> None:
        self.t = max(self.t, t)


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class SimJob:
    id: str
    title: str
    description: str
    created: float
    started: Optional[float] = None
    queue_time: float = 0.0
    run_time: float = 0.0
    canceled_at: Optional[float] = None

    @property
    def end(self) -> Optional[float]:
        return None if self.started is None else self.started + self.queue_time + self.run_time

    def state(self, t: float, progress: bool) -> dict[str, Any]:
        status, prog, updated = "created", None, self.created
        if self.started is not None:
            run_start = self.started + self.queue_time
            if self.canceled_at is not None and self.canceled_at <= t:
                status, updated = "canceled", self.canceled_at
            elif t < run_start:
                status, prog, updated = "queued", 0.0, self.started
            elif t < run_start + self.run_time:
                status, updated = "running", run_start
                prog = round(100.0 * (t - run_start) / self.run_time, 1) if progress else None
            else:
                status, prog, updated = "finished", 100.0, run_start + self.run_time
        job = {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "status": status,
            "created": rfc3339(self.created),
            "updated": rfc3339(updated),
        }
        if prog is not None:
            job["progress"] = prog
        return job


class _Response:
    def __init__(self, data: Any, status: int = 200) -> None:
        self._data = data
        self.content = json.dumps(data).encode() if data is not None else b""
        self.status_code = status
        self.headers = {"Content-Length": str(len(self.content))}
        self.elapsed = dt.timedelta(0)

    def json(self) -> Any:
        return self._data


class _JobRef:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id


class SimBackend:
    """Jobs of one user on one simulated backend (see the module docstring)."""

    def __init__(
        self,
        name: str,
        clock: SimClock,
        queue_time: Callable[[random.Random], float],
        run_time: Callable[[random.Random], float],
        *,
        progress: bool = True,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.clock = clock
        self.queue_time = queue_time
        self.run_time = run_time
        self.progress = progress
        self.rng = random.Random(seed)
        self.jobs: dict[str, SimJob] = {}
        self.order: list[str] = []  # newest first
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.bytes: dict[str, int] = {}

    def connection_factory(self, url: str, session: Any = None, **_: Any) -> SimConnection:
        return SimConnection(self, url, session)

    def count(self, key: str, response: _Response) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        self.bytes[key] = self.bytes.get(key, 0) + len(response.content)

    def tracking_requests(self) -> int:
        return self.counts.get("GET /jobs", 0) + self.counts.get("GET /jobs/{job_id}", 0)

    def tracking_bytes(self) -> int:
        return self.bytes.get("GET /jobs", 0) + self.bytes.get("GET /jobs/{job_id}", 0)


class SimConnection:
    """The part of ``openeo.Connection`` the engine uses, answered by a :class:`SimBackend`."""

    def __init__(self, backend: SimBackend, url: str, session: Any) -> None:
        self.sim = backend
        self.root_url = url.rstrip("/")
        self.session = session
        self.auth = None

    def _answer(self, key: str, data: Any, status: int = 200) -> _Response:
        response = _Response(data, status)
        with self.sim.lock:
            self.sim.count(key, response)
        if self.session is not None:
            for hook in self.session.hooks.get("response", []):
                hook(response)
        return response

    def capabilities(self) -> dict:
        return self._answer("GET /", {"api_version": "1.2.0"}).json()

    def describe_process(self, process_id: str) -> dict:
        return self._answer("GET /processes", PROCESS).json()

    def create_job(self, process_graph: Any, title: str = "", description: str = "", **_: Any) -> _JobRef:
        with self.sim.lock:
            jid = f"j-{self.sim.name}-{len(self.sim.jobs) + 1:06d}"
            self.sim.jobs[jid] = SimJob(jid, title or "", description or "", self.sim.clock())
            self.sim.order.insert(0, jid)
        self._answer("POST /jobs", None, 201)
        return _JobRef(jid)

    def post(self, path: str, expected_status: Optional[int] = None, **_: Any) -> _Response:
        jid = path.split("/")[2]
        with self.sim.lock:
            job = self.sim.jobs[jid]
            if job.started is None:
                job.started = self.sim.clock()
                job.queue_time = self.sim.queue_time(self.sim.rng)
                job.run_time = self.sim.run_time(self.sim.rng)
        return self._answer("POST /jobs/{job_id}/results", None, 202)

    def delete(self, path: str, expected_status: Optional[int] = None, **_: Any) -> _Response:
        jid = path.split("/")[2]
        with self.sim.lock:
            self.sim.jobs[jid].canceled_at = self.sim.clock()
        return self._answer("DELETE /jobs/{job_id}/results", None, 204)

    def get(self, path: str, params: Optional[dict] = None, expected_status: Optional[int] = None, **_: Any) -> Any:
        parsed = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        query.update({k: str(v) for k, v in (params or {}).items()})
        parts = parsed.path.rstrip("/").split("/")
        now = self.sim.clock()
        if parts[-1] == "jobs":
            limit, offset = int(query.get("limit", 100)), int(query.get("offset", 0))
            with self.sim.lock:
                ids = self.sim.order[offset : offset + limit]
                jobs = [self.sim.jobs[j].state(now, self.sim.progress) for j in ids]
                more = offset + limit < len(self.sim.order)
            for job in jobs:
                job.pop("description", None)  # a listing has no description (the title holds the token)
            links = (
                [{"rel": "next", "href": f"{self.root_url}/jobs?limit={limit}&offset={offset + limit}"}] if more else []
            )
            return self._answer("GET /jobs", {"jobs": jobs, "links": links})
        if parts[-1] == "logs":
            return self._answer("GET /jobs/{job_id}/logs", {"logs": []})
        with self.sim.lock:
            job = self.sim.jobs[parts[-1]].state(now, self.sim.progress)
        return self._answer("GET /jobs/{job_id}", job)
