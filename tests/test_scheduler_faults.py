"""The fault matrix: the Local demo backend misbehaves on purpose; every run completes, nothing crashes."""

from __future__ import annotations

import collections
import logging

import pytest
from engine_crash_worker import listing, make_db, make_scheduler, run_engine

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.backends import BackendProfile, Credentials
from openeo_tile_jobs.core.events import RecordingListener

LocalBackend = pytest.importorskip("openeo_tile_jobs.local_backend").LocalBackend

FAST = {"backoff_base": 0.1, "backoff_cap": 1.0, "download_attempts": 8, "concurrent_limit_wait": 0.5}

CASES = {
    "5xx": ({"faults": {"error_500": 0.15, "error_502": 0.1, "error_503": 0.1, "retry_after": 1, "seed": 1}}, {}),
    "429": ({"faults": {"rate_limit": 0.25, "retry_after": 1, "seed": 2}}, {}),
    "dropped_connections": ({"faults": {"drop_connection": 0.2, "seed": 3}}, {}),
    "latency": ({"faults": {"latency": 0.2, "seed": 4}}, {}),
    "failing_jobs": ({"faults": {"job_error": 0.4, "seed": 5}}, {"max_attempts": 3}),
    "concurrent_job_limit": (
        {"max_concurrent_jobs_per_user": 2, "over_limit": "refuse", "min_run_time": 0.3},
        {"parallel_jobs": 4},
    ),
    "expired_tokens": ({"auth": "basic", "token_lifetime": 2, "min_run_time": 0.4}, {"auth": "basic"}),
    "everything": (
        {
            "auth": "basic",
            "token_lifetime": 3,
            "max_concurrent_jobs_per_user": 2,
            "over_limit": "refuse",
            "faults": {
                "error_500": 0.05,
                "error_503": 0.05,
                "rate_limit": 0.05,
                "retry_after": 1,
                "drop_connection": 0.05,
                "latency": 0.05,
                "job_error": 0.2,
                "seed": 6,
            },
        },
        {"auth": "basic", "max_attempts": 3, "parallel_jobs": 3, "two_backends": True},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fault_matrix_run_completes(case, tmp_path, caplog):
    server_kw, engine_kw = CASES[case]
    engine_kw = dict(engine_kw)
    auth = engine_kw.pop("auth", "none")
    two = engine_kw.pop("two_backends", False)
    parallel = engine_kw.pop("parallel_jobs", 3)
    servers = [
        LocalBackend(data_dir=tmp_path / f"b{i}", port=0, workers=2, pixel_size=200, **server_kw).start()
        for i in range(2 if two else 1)
    ]
    try:
        db = make_db(tmp_path / "run.gpkg", cols=3, rows=2)
        profiles = [
            BackendProfile(name=f"local{i + 1}", url=s.url, auth=auth, parallel_jobs=parallel, request_timeout=10)
            for i, s in enumerate(servers)
        ]
        rec = RecordingListener()
        sched = make_scheduler(
            db,
            [s.url for s in servers],
            servers[0].demo_process_url,
            tmp_path / "out",
            profiles=profiles,
            credentials=lambda profile: Credentials(username="demo", password="demo"),
            listeners=(rec,),
            **FAST,
            **engine_kw,
        )
        with caplog.at_level(logging.WARNING):
            report = run_engine(sched, poll_interval=0.1, max_seconds=90)
        sched.stop()
        assert report.done, db.count_by_status()
        rows = db.all_rows(columns=["tile_id", "status", "attempts", "result_status", "last_error"])
        assert not [r for r in rows if r["status"] in statuses.ACTIVE_STATUSES]
        allowed = {statuses.FINISHED, statuses.ERROR} if "job_error" in str(server_kw) else {statuses.FINISHED}
        assert {r["status"] for r in rows} <= allowed, rows
        assert all(r["result_status"] == "downloaded" for r in rows if r["status"] == statuses.FINISHED)
        assert "Engine round failed" not in caplog.text  # no exception escaped a round
        # no tile got more jobs than attempts (nothing created twice, even when a POST /jobs was lost)
        basic = ("demo", "demo") if auth == "basic" else None
        jobs = []
        for s in servers:
            s.set_faults()  # our own check must not meet injected faults
            jobs += listing(s.url, basic)
        per_tile = collections.Counter(j["title"].split(" [")[0].rsplit(" ", 1)[-1] for j in jobs)
        attempts = {r["tile_id"]: r["attempts"] for r in rows}
        assert all(per_tile[t] <= attempts[t] for t in per_tile), (per_tile, attempts)
        assert sum(per_tile.values()) >= len(rows)
        states = " ".join(f"{st}: {detail}" for _, st, detail in rec.backend_states)
        if case in ("5xx", "dropped_connections"):
            assert "backoff" in states  # the faults were met, and backed off from
        if case == "429":
            assert "rate limited" in states
        if case == "concurrent_job_limit":
            assert any("concurrent job limit" in line.message for line in rec.logs)
            assert not any(r["status"] == statuses.START_FAILED for r in rows)
        if case in ("expired_tokens", "everything"):
            logins = sum(s.request_counts().get("GET /credentials/basic", 0) for s in servers)
            assert logins > len(servers)  # signed in again after tokens expired
            assert not rec.sign_in  # never asked the user
    finally:
        for s in servers:
            s.stop()


def test_timeouts_back_off_then_recover(tmp_path):
    """Requests that time out put the backend in backoff (state event); the run completes once it answers."""
    server = LocalBackend(
        data_dir=tmp_path / "b", port=0, pixel_size=200, faults={"latency": 1.5, "endpoints": ["GET /jobs"]}
    ).start()
    try:
        db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
        profiles = [BackendProfile(name="slow", url=server.url, parallel_jobs=2, request_timeout=0.5)]

        class Heal(RecordingListener):
            def on_backend_state(self, backend, state, detail):
                super().on_backend_state(backend, state, detail)
                if state == "backoff" and len([s for s in self.backend_states if s[1] == "backoff"]) >= 2:
                    server.set_faults()

        rec = Heal()
        sched = make_scheduler(
            db, [], server.demo_process_url, tmp_path / "out", profiles=profiles, listeners=(rec,), **FAST
        )
        report = run_engine(sched, poll_interval=0.1, max_seconds=60)
        assert report.done
        assert any(s[1] == "backoff" and "timed out" in s[2].lower() for s in rec.backend_states)
        assert rec.backend_states[-1][1] == "ok"
        assert {r["status"] for r in db.all_rows(columns=["status"])} == {statuses.FINISHED}
    finally:
        server.stop()
