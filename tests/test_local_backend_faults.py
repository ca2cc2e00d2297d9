"""Fault injection of the Local demo backend, observed through the unchanged openeo client,
and the per-endpoint request counter (Python and HTTP)."""

from __future__ import annotations

import time

import openeo
import pytest
import requests
from openeo.rest import OpenEoApiError, OpenEoApiPlainError

BOX = {"west": 590000, "south": 5660000, "east": 591000, "north": 5661000, "crs": 32631}


def small_job(con):
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=BOX, temporal_extent=["2024-06-01", "2024-06-06"])
    return con.create_job(cube.save_result("GTiff"))


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [("error_500", 500, "Internal"), ("error_503", 503, "ServiceUnavailable"), ("rate_limit", 429, "TooManyRequests")],
)
def test_error_answers(local_backend, fault, status, code):
    local_backend.set_faults(**{fault: 1.0, "retry_after": 7, "endpoints": ["GET /jobs"]})
    con = openeo.connect(local_backend.url, retry=False)
    with pytest.raises(OpenEoApiError) as exc:
        con.list_jobs()
    assert (exc.value.http_status_code, exc.value.code) == (status, code)
    raw = requests.get(f"{local_backend.url}/jobs", timeout=5)
    if status in (429, 503):
        assert raw.headers["Retry-After"] == "7"
    assert con.list_collection_ids() == ["SENTINEL2_L2A"]  # other endpoints unaffected
    assert local_backend.request_counts()[f"fault {status}"] == 2


def test_bad_gateway_is_a_plain_html_page(local_backend):
    local_backend.set_faults(error_502=1.0, endpoints=["GET /jobs/{job_id}"])
    con = openeo.connect(local_backend.url, retry=False)
    job = small_job(con)
    with pytest.raises(OpenEoApiPlainError) as exc:
        job.status()
    assert exc.value.http_status_code == 502


def test_dropped_connection_then_server_keeps_serving(local_backend):
    local_backend.set_faults(drop_connection=1.0, endpoints=["POST /jobs"])
    con = openeo.connect(local_backend.url, retry=False)
    with pytest.raises(requests.exceptions.ConnectionError):
        small_job(con)
    local_backend.set_faults()
    assert small_job(con).status() == "created"
    assert local_backend.request_counts()["POST /jobs"] == 2


def test_latency(local_backend):
    con = openeo.connect(local_backend.url)
    local_backend.set_faults(latency=0.3, endpoints=["GET /me"])
    start = time.perf_counter()
    con.describe_account()
    assert time.perf_counter() - start >= 0.3
    start = time.perf_counter()
    con.list_jobs()
    assert time.perf_counter() - start < 0.3


def test_default_client_retries_through_transient_503(local_backend):
    """The openeo client retries 429/502/503/504 itself; the counter shows the extra requests."""
    local_backend.set_faults(error_503=0.5, retry_after=0, seed=3, endpoints=["GET /jobs"])
    con = openeo.connect(local_backend.url)
    for _ in range(4):
        assert con.list_jobs() == []
    counts = local_backend.request_counts()
    assert counts["GET /jobs"] == 4 + counts["fault 503"] and counts["fault 503"] >= 1


def test_jobs_ending_in_error(local_backend):
    local_backend.set_faults(job_error=1.0)
    con = openeo.connect(local_backend.url)
    job = small_job(con)
    job.start()
    deadline = time.monotonic() + 20
    while job.status() not in ("error", "finished") and time.monotonic() < deadline:
        time.sleep(0.03)
    assert job.status() == "error"
    (entry,) = job.logs(level="error")
    assert "Injected fault" in entry.message


def test_faults_configured_at_start_up(local_backend_factory):
    backend = local_backend_factory(faults={"error_500": 1.0, "endpoints": ["GET /collections"]})
    con = openeo.connect(backend.url, retry=False)
    with pytest.raises(OpenEoApiError) as exc:
        con.list_collection_ids()
    assert exc.value.http_status_code == 500
    assert backend.faults()["error_500"] == 1.0


def test_admin_endpoints_for_faults_and_counts(local_backend):
    admin = f"{local_backend.url}/_admin"
    answer = requests.put(f"{admin}/faults", json={"error_503": 1.0, "endpoints": ["GET /me"]}, timeout=5)
    assert answer.status_code == 200 and answer.json()["error_503"] == 1.0
    assert requests.get(f"{local_backend.url}/me", timeout=5).status_code == 503
    assert requests.get(f"{admin}/faults", timeout=5).json()["endpoints"] == ["GET /me"]
    bad = requests.put(f"{admin}/faults", json={"error_999": 1}, timeout=5)
    assert (bad.status_code, bad.json()["code"]) == (400, "BadRequest")
    assert requests.delete(f"{admin}/faults", timeout=5).status_code == 204
    assert requests.get(f"{local_backend.url}/me", timeout=5).status_code == 200

    counts = requests.get(f"{admin}/counts", timeout=5).json()
    assert counts == local_backend.request_counts()
    assert counts["GET /me"] == 2 and counts["fault 503"] == 1
    assert not any(key.startswith(("GET /_admin", "PUT /_admin")) for key in counts)  # admin is not counted
    assert requests.delete(f"{admin}/counts", timeout=5).status_code == 204
    assert local_backend.request_counts() == {}
    local_backend.set_faults(error_500=1.0)
    local_backend.reset_counts()
    assert local_backend.request_counts() == {}
