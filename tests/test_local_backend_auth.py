"""Local demo backend authentication with the unchanged openeo client: basic, and the OIDC
device flow (PKCE) with refresh tokens, including an expired access token."""

from __future__ import annotations

import base64
import hashlib
import re
import time

import openeo
import pytest
import requests
from openeo.rest import OpenEoApiError

USERS = {"alice": "wonderland", "bob": "builder"}


@pytest.fixture(autouse=True)
def _private_client_config(tmp_path, monkeypatch):
    """The openeo client stores refresh tokens under the user's folders: keep them in tmp."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def small_job(con):
    box = {"west": 590000, "south": 5660000, "east": 591000, "north": 5661000, "crs": 32631}
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=box, temporal_extent=["2024-06-01", "2024-06-06"])
    return con.create_job(cube.save_result("GTiff"))


def test_basic_auth(local_backend_factory):
    backend = local_backend_factory(auth="basic", users=USERS)
    anonymous = openeo.connect(backend.url)
    with pytest.raises(OpenEoApiError) as exc:
        anonymous.list_jobs()
    assert (exc.value.http_status_code, exc.value.code) == (401, "AuthenticationRequired")
    assert anonymous.list_collection_ids() == ["SENTINEL2_L2A"]  # discovery stays public

    with pytest.raises(OpenEoApiError) as exc:
        openeo.connect(backend.url).authenticate_basic("alice", "wrong")
    assert (exc.value.http_status_code, exc.value.code) == (403, "CredentialsInvalid")

    alice = openeo.connect(backend.url).authenticate_basic("alice", "wonderland")
    assert alice.describe_account()["user_id"] == "alice"
    job = small_job(alice)
    bob = openeo.connect(backend.url).authenticate_basic("bob", "builder")
    assert bob.list_jobs() == []
    with pytest.raises(OpenEoApiError) as exc:
        bob.job(job.job_id).status()
    assert exc.value.code == "JobNotFound"
    assert [j["id"] for j in alice.list_jobs()] == [job.job_id]

    forged = requests.get(f"{backend.url}/me", headers={"Authorization": "Bearer basic//not-a-token"}, timeout=5)
    assert (forged.status_code, forged.json()["code"]) == (403, "TokenInvalid")


def test_basic_token_expires(local_backend_factory):
    backend = local_backend_factory(auth="basic", users=USERS, token_lifetime=0.5)
    alice = openeo.connect(backend.url).authenticate_basic("alice", "wonderland")
    assert alice.describe_account()["user_id"] == "alice"
    time.sleep(0.7)
    with pytest.raises(OpenEoApiError) as exc:
        alice.describe_account()
    assert (exc.value.http_status_code, exc.value.code) == (403, "TokenInvalid")


def test_oidc_device_flow_with_pkce_and_refresh(local_backend_factory):
    backend = local_backend_factory(auth="oidc", users=USERS, token_lifetime=1.0)
    shown = []

    def approve_in_browser(message: str) -> None:
        """What the user does: open the verification URL and approve the code."""
        found = re.search(r"(http\S+)", message)
        if found is None:
            return  # a progress line
        shown.append(message)
        url = found.group(1)
        code = re.search(r"user_code=([A-Z-]+)", url).group(1)
        page = requests.get(url, timeout=5)
        assert code in page.text
        answer = requests.post(f"{backend.url}/oidc/device/approve", data={"user_code": code, "user": "bob"}, timeout=5)
        assert answer.status_code == 200

    con = openeo.connect(backend.url).authenticate_oidc_device(
        display=approve_in_browser, max_poll_time=15, store_refresh_token=True
    )
    assert shown and con.describe_account()["user_id"] == "bob"
    token_requests = backend.request_counts()["POST /oidc/token"]

    time.sleep(1.2)  # the access token expires; the client refreshes it transparently
    assert con.describe_account()["user_id"] == "bob"
    counts = backend.request_counts()
    assert counts["POST /oidc/token"] == token_requests + 1
    assert counts["GET /me"] == 3  # first answer, the 403 TokenInvalid, the retry

    # A later session reuses the stored refresh token without any device flow.
    again = openeo.connect(backend.url).authenticate_oidc_refresh_token()
    assert again.describe_account()["user_id"] == "bob"
    assert backend.request_counts().get("POST /oidc/device_authorization") == 1


def test_expired_access_token_without_refresh_is_refused(local_backend_factory):
    backend = local_backend_factory(auth="oidc", token_lifetime=0.5, oidc_auto_approve_after=0.0)
    con = openeo.connect(backend.url).authenticate_oidc_device(max_poll_time=10, display=lambda msg: None)
    assert con.describe_account()["user_id"] == "demo"  # auto-approved as the configured user
    time.sleep(0.7)
    with pytest.raises(OpenEoApiError) as exc:
        con.describe_account()
    assert (exc.value.http_status_code, exc.value.code) == (403, "TokenInvalid")


def test_device_token_endpoint_checks_pkce_and_pending(local_backend_factory):
    backend = local_backend_factory(auth="oidc")
    issuer = requests.get(f"{backend.url}/credentials/oidc", timeout=5).json()["providers"][0]["issuer"]
    config = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5).json()
    client = {"client_id": "openeo-tile-jobs-demo"}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 43).digest()).rstrip(b"=").decode()
    device = requests.post(
        config["device_authorization_endpoint"],
        data={**client, "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"},
        timeout=5,
    ).json()
    grant = {
        **client,
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": device["device_code"],
    }
    pending = requests.post(config["token_endpoint"], data={**grant, "code_verifier": "v" * 43}, timeout=5)
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    assert backend.pending_user_codes() == [device["user_code"]]
    assert backend.approve_device(device["user_code"], "alice")
    wrong = requests.post(config["token_endpoint"], data={**grant, "code_verifier": "w" * 43}, timeout=5)
    assert wrong.json()["error"] == "invalid_grant"
    tokens = requests.post(config["token_endpoint"], data={**grant, "code_verifier": "v" * 43}, timeout=5).json()
    assert {"access_token", "refresh_token", "expires_in"} <= set(tokens)
    me = requests.get(f"{backend.url}/me", headers={"Authorization": f"Bearer oidc/local/{tokens['access_token']}"})
    assert me.json()["user_id"] == "alice"
    reused = requests.post(config["token_endpoint"], data={**grant, "code_verifier": "v" * 43}, timeout=5)
    assert reused.json()["error"] == "expired_token"  # a device code gives tokens once
