"""`make demo BACKEND_URL=... AUTH=... PROCESS_URL=... AOI=...`: the demo pointed at a backend it did
not start (a Local demo backend run by the test, reached only over HTTP, standing in for a real
one). OIDC: the device flow prints where to sign in, the refresh token goes to the openeo
client's own store and the next run needs no browser. Basic: from the environment, never printed
or written anywhere. One tile each (a small AOI in EPSG:4326)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.tests.test_demo import run_demo

AOI = "4.40,51.20,4.44,51.23"  # about 2.8 x 3.3 km near Antwerp: one 5 km tile


def remote_args(backend, auth: str, *extra: str) -> list[str]:
    return [
        "--backend-url",
        backend.url,
        "--auth",
        auth,
        "--process-url",
        backend.demo_process_url,
        "--aoi",
        AOI,
        "--params",
        '{"temporal_extent": ["2024-06-01", "2024-07-01"]}',
        *extra,
    ]


def every_text(folder: Path) -> str:
    """Everything the demo wrote that a secret could leak into (text files and the run record)."""
    parts = []
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".txt", ".qgs", ".xml"):
            parts.append(path.read_text(errors="replace"))
    with JobDB.open(folder / "demo_run.gpkg") as db:
        parts.append(json.dumps(db.run_record()))
        parts.append(json.dumps(db.all_rows(), default=str))
    return "\n".join(parts)


def test_oidc_device_flow_then_the_stored_refresh_token(tmp_path, local_backend_factory) -> None:
    backend = local_backend_factory(auth="oidc", oidc_auto_approve_after=1.0)
    first = run_demo(tmp_path, *remote_args(backend, "oidc"), timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "needs you to sign in (OpenID Connect device flow)" in out
    assert backend.url + "/oidc/device" in out or "user code" in out.lower()  # where to go, and the code
    assert "signed in" in out
    summary = json.loads((tmp_path / "demo_output" / "summary.json").read_text())
    assert summary["tiles"] == {statuses.FINISHED: 1} and summary["backend"] == backend.url
    assert summary["http_requests"] > 0  # counted by the engine: the demo did not start this backend

    store = tmp_path / "home" / ".local" / "share" / "openeo-python-client" / "refresh-tokens.json"
    assert store.is_file() and stat.S_IMODE(store.stat().st_mode) == 0o600
    tokens = [
        client["refresh_token"]
        for clients in json.loads(store.read_text()).values()
        if isinstance(clients, dict)
        for client in clients.values()
        if isinstance(client, dict) and "refresh_token" in client
    ]
    assert len(tokens) == 1
    assert tokens[0] not in out + first.stderr
    assert tokens[0] not in every_text(tmp_path / "demo_output")

    again = run_demo(tmp_path, *remote_args(backend, "oidc", "--fresh"), timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "device flow" not in again.stdout  # the stored refresh token signed it in
    assert json.loads((tmp_path / "demo_output" / "summary.json").read_text())["tiles"] == {statuses.FINISHED: 1}


def test_basic_from_the_environment_never_written(tmp_path, local_backend_factory, monkeypatch) -> None:
    password = "s3cret-Pw-9271"
    backend = local_backend_factory(auth="basic", users={"alice": password})
    without = run_demo(tmp_path, *remote_args(backend, "basic"), timeout=60)
    assert without.returncode == 1
    assert "OPENEO_USERNAME and OPENEO_PASSWORD" in without.stdout

    monkeypatch.setenv("OPENEO_USERNAME", "alice")
    monkeypatch.setenv("OPENEO_PASSWORD", password)
    done = run_demo(tmp_path, *remote_args(backend, "basic", "--fresh"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    with JobDB.open(tmp_path / "demo_output" / "demo_run.gpkg") as db:
        assert db.count_by_status() == {statuses.FINISHED: 1}
    assert password not in done.stdout + done.stderr
    assert password not in every_text(tmp_path / "demo_output")
    assert password not in os.fspath(tmp_path / "demo_output" / "demo_state.json")


def test_sign_in_expiring_during_the_run_asks_again_and_goes_on(tmp_path, local_backend_factory) -> None:
    """Access token and refresh token both expire while the job runs: the device flow runs again, the run ends."""
    backend = local_backend_factory(
        auth="oidc", oidc_auto_approve_after=1.0, token_lifetime=2, refresh_token_lifetime=1, min_run_time=5
    )
    done = run_demo(tmp_path, *remote_args(backend, "oidc", "--no-token-store"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "needs you to sign in again" in done.stdout
    assert "signed in, the run goes on" in done.stdout
    assert json.loads((tmp_path / "demo_output" / "summary.json").read_text())["tiles"] == {statuses.FINISHED: 1}
    assert not (tmp_path / "home" / ".local" / "share" / "openeo-python-client" / "refresh-tokens.json").exists()
