"""Authentication, "needs sign-in", proxies, Retry-After and secret hygiene against the Local demo backend."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from engine_crash_worker import make_db, make_scheduler, run_engine

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.backends import Backend, BackendProfile, Credentials
from openeo_tile_jobs.core.events import RecordingListener
from openeo_tile_jobs.core.redact import install_log_redaction

LocalBackend = pytest.importorskip("openeo_tile_jobs.local_backend").LocalBackend

PASSWORD = "correct-horse-battery-42"


def test_missing_credentials_put_the_backend_in_needs_sign_in_without_failing_tiles(tmp_path):
    server = LocalBackend(
        data_dir=tmp_path / "b", port=0, pixel_size=200, auth="basic", users={"ann": PASSWORD}
    ).start()
    try:
        db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
        store: dict[str, Credentials] = {}
        profile = BackendProfile(name="secure", url=server.url, auth="basic", parallel_jobs=2)
        rec = RecordingListener()
        sched = make_scheduler(
            db,
            [],
            server.demo_process_url,
            tmp_path / "out",
            profiles=[profile],
            credentials=lambda p: store.get(p.name),
            listeners=(rec,),
        )
        for _ in range(3):
            report = sched.step()
        assert not report.done
        assert rec.sign_in and rec.sign_in[0][0] == "secure"
        assert db.count_by_status() == {statuses.NOT_STARTED: 2}  # waiting, not failed
        # the user enters credentials (the QGIS side: QgsAuthManager) and signs in
        store["secure"] = Credentials(username="ann", password=PASSWORD)
        sched.backends.get("secure").sign_in()
        assert run_engine(sched, poll_interval=0.1, max_seconds=60).done
        assert db.count_by_status() == {statuses.FINISHED: 2}
    finally:
        server.stop()


def test_wrong_password_needs_sign_in_and_is_never_stored(tmp_path, caplog):
    server = LocalBackend(
        data_dir=tmp_path / "b", port=0, pixel_size=200, auth="basic", users={"ann": PASSWORD}
    ).start()
    try:
        db = make_db(tmp_path / "run.gpkg", cols=1, rows=1)
        profile = BackendProfile(name="secure", url=server.url, auth="basic")
        rec = RecordingListener()
        sched = make_scheduler(
            db,
            [],
            server.demo_process_url,
            tmp_path / "out",
            profiles=[profile],
            credentials=lambda p: Credentials(username="ann", password="wrong-password-123"),
            listeners=(rec,),
        )
        with caplog.at_level(logging.DEBUG):
            sched.step()
        assert rec.sign_in and "refused" in rec.sign_in[0][1]
        assert "wrong-password-123" not in caplog.text
        assert "wrong-password-123" not in json.dumps([line.message for line in rec.logs])
    finally:
        server.stop()


def test_oidc_device_flow_then_proactive_refresh_and_refresh_token_reuse(tmp_path, caplog):
    install_log_redaction()
    server = LocalBackend(
        data_dir=tmp_path / "b",
        port=0,
        pixel_size=200,
        auth="oidc",
        token_lifetime=4,
        oidc_auto_approve_after=0.5,
        min_run_time=1.6,
    ).start()
    try:
        kept: dict[str, str] = {}
        profile = BackendProfile(name="oidc", url=server.url, auth="oidc_device", parallel_jobs=1)
        backend = Backend(
            profile,
            credentials=lambda p: Credentials(refresh_token=kept.get(p.name)) if kept.get(p.name) else None,
            refresh_token_sink=lambda p, token: kept.__setitem__(p.name, token),
        )
        from openeo_tile_jobs.core.backends import SignInRequiredError

        with pytest.raises(SignInRequiredError):
            backend.connect()  # no refresh token yet: the engine never starts a device flow by itself
        assert backend.needs_sign_in
        shown: list[str] = []
        backend.sign_in(display=shown.append, max_poll_time=30)
        assert any("/oidc/device" in s for s in shown)  # the URL and code the user must visit
        assert not backend.needs_sign_in and kept.get("oidc")

        db = make_db(tmp_path / "run.gpkg", cols=2, rows=2)
        from engine_crash_worker import TEMPORAL_EXTENT

        from openeo_tile_jobs.core.jobspec import JobSpec
        from openeo_tile_jobs.core.scheduler import EngineConfig, Scheduler

        spec = JobSpec(namespace=server.demo_process_url, parameters={"temporal_extent": TEMPORAL_EXTENT})
        rec = RecordingListener()
        sched = Scheduler(db, spec, [backend], EngineConfig(output_dir=tmp_path / "out"), listeners=(rec,))
        server.reset_counts()
        refused = []
        backend.session.hooks["response"].append(
            lambda r, *a, **k: refused.append(r.url) if r.status_code in (401, 403) else None
        )
        t0 = time.time()
        with caplog.at_level(logging.DEBUG):
            report = run_engine(sched, poll_interval=0.2, max_seconds=60)
        assert report.done and db.count_by_status() == {statuses.FINISHED: 4}
        counts = server.request_counts()
        # the run outlived its 4-second tokens: refreshed ahead of expiry (never refused), never asked the user
        assert time.time() - t0 > 6
        assert counts.get("POST /oidc/token", 0) >= 1
        assert not refused
        assert not rec.sign_in
        bearer = backend.auth.bearer
        access = bearer.split("/")[-1]

        # a new engine (QGIS restarted) signs in from the kept refresh token alone
        backend2 = Backend(profile, credentials=lambda p: Credentials(refresh_token=kept["oidc"]))
        backend2.connect()
        assert backend2.connection.describe_account()["user_id"]

        # no token in the job database, its WAL, the logs or the events
        for f in tmp_path.glob("run.gpkg*"):
            blob = f.read_bytes()
            assert access.encode() not in blob and kept["oidc"].encode() not in blob
        assert access not in caplog.text and kept["oidc"] not in caplog.text
        assert access not in json.dumps([line.message for line in rec.logs] + [s[2] for s in rec.backend_states])
    finally:
        server.stop()


def test_retry_after_is_honoured(tmp_path):
    server = LocalBackend(data_dir=tmp_path / "b", port=0, faults={"rate_limit": 1.0, "retry_after": 3}).start()
    try:
        backend = Backend(BackendProfile(name="busy", url=server.url))
        with pytest.raises(Exception) as info:
            backend.connect()
        kind = backend.record_failure(info.value, "connecting")
        assert kind == "rate_limited"
        assert 2.5 <= backend.seconds_until_ready() <= 3.0
        assert not backend.ready()
    finally:
        server.stop()


class ForwardProxy:
    """A minimal HTTP forward proxy that counts what passes through it."""

    def __init__(self):
        self.count = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                proxy.count += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
                resp = requests.request(self.command, self.path, data=body, headers=headers, timeout=30)
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_every_request_goes_through_the_callers_proxy(tmp_path):
    server = LocalBackend(data_dir=tmp_path / "b", port=0, pixel_size=200).start()
    proxy = ForwardProxy()
    try:
        db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
        profile = BackendProfile(name="p", url=server.url, parallel_jobs=2)
        from engine_crash_worker import TEMPORAL_EXTENT

        from openeo_tile_jobs.core.jobspec import JobSpec
        from openeo_tile_jobs.core.scheduler import EngineConfig, Scheduler

        backend = Backend(profile, proxies={"http": proxy.url, "https": proxy.url})
        spec = JobSpec(namespace=server.demo_process_url, parameters={"temporal_extent": TEMPORAL_EXTENT})
        sched = Scheduler(db, spec, [backend], EngineConfig(output_dir=tmp_path / "out"))
        server.reset_counts()
        t0 = time.time()
        assert run_engine(sched, poll_interval=0.1, max_seconds=60).done
        assert time.time() - t0 < 60
        served = sum(server.request_counts().values())
        assert served > 0
        # listing, creation, start, process definition, results and downloads: all through the proxy
        assert proxy.count >= served
        assert db.count_by_status() == {statuses.FINISHED: 2}
    finally:
        proxy.close()
        server.stop()
