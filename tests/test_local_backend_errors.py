"""Bad requests get the proper openEO error (code and HTTP status), and the server keeps serving."""

from __future__ import annotations

import time

import openeo
import pytest
import requests
from openeo.rest import OpenEoApiError

LOAD = {
    "process_id": "load_collection",
    "arguments": {
        "id": "SENTINEL2_L2A",
        "spatial_extent": {"west": 4.35, "south": 51.08, "east": 4.42, "north": 51.12},
        "temporal_extent": ["2024-06-01", "2024-06-11"],
    },
}
SAVE = {"process_id": "save_result", "arguments": {"data": {"from_node": "load"}, "format": "GTiff"}, "result": True}


def graph(load_args=None, **extra_nodes):
    load = {**LOAD, "arguments": {**LOAD["arguments"], **(load_args or {})}}
    return {"process": {"process_graph": {"load": load, "save": SAVE, **extra_nodes}}}


def post_job(backend, body, **kwargs):
    return requests.post(f"{backend.url}/jobs", json=body, timeout=5, **kwargs)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"process": {"process_graph": {"load": LOAD}}}, 400, "ProcessGraphInvalid"),  # no result node
        (
            {"process": {"process_graph": {"load": LOAD, "save": {**SAVE, "arguments": {"data": {"from_node": "x"}}}}}},
            400,
            "ProcessGraphInvalid",
        ),
        ({"title": "no process"}, 400, "ProcessGraphMissing"),
        (["not", "an", "object"], 400, "JsonInvalid"),
        (graph({"id": "LANDSAT9"}), 404, "CollectionNotFound"),
        (graph(x={"process_id": "teleport", "arguments": {}}), 400, "ProcessUnsupported"),
        (
            graph({"spatial_extent": {"west": 4.42, "south": 51.08, "east": 4.35, "north": 51.12}}),
            400,
            "ProcessParameterInvalid",
        ),  # inverted bbox
        (
            graph({"spatial_extent": {"west": 4.35, "south": 51.08, "east": 4.35, "north": 51.12}}),
            400,
            "ProcessParameterInvalid",
        ),  # empty bbox
        (graph({"temporal_extent": ["2024-06-11", "2024-06-01"]}), 400, "ProcessParameterInvalid"),
        (graph({"spatial_extent": {"type": "Point", "coordinates": [4.4, 51.1]}}), 400, "ProcessParameterInvalid"),
    ],
)
def test_bad_job_requests(local_backend, body, status, code):
    answer = post_job(local_backend, body)
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.json()
    assert answer.json()["message"]
    assert post_job(local_backend, graph()).status_code == 201  # still serving


def test_invalid_json_body(local_backend):
    answer = requests.post(
        f"{local_backend.url}/jobs", data=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "JsonInvalid")


def test_unsupported_format_and_unknown_namespace_process(local_backend):
    body = graph(save={**SAVE, "arguments": {**SAVE["arguments"], "format": "PNG"}})
    answer = post_job(local_backend, body)
    assert (answer.status_code, answer.json()["code"]) == (400, "FormatUnsupported")
    wrong_id = {"process_id": "other", "namespace": local_backend.demo_process_url, "arguments": {}}
    answer = post_job(local_backend, graph(x=wrong_id))
    assert (answer.status_code, answer.json()["code"]) == (400, "ProcessUnsupported")


def test_demo_process_arguments_are_checked_at_creation(local_backend):
    con = openeo.connect(local_backend.url)
    cube = con.datacube_from_process(
        "cloud_free_composite",
        namespace=local_backend.demo_process_url,
        spatial_extent={"west": 5, "south": 51, "east": 4, "north": 52},
        temporal_extent=["2024-06-01", "2024-09-01"],
    )
    with pytest.raises(OpenEoApiError) as exc:
        con.create_job(cube)
    assert exc.value.code == "ProcessParameterInvalid" and "inverted" in exc.value.message


def test_unknown_job_and_collection(local_backend):
    con = openeo.connect(local_backend.url)
    for call in (lambda: con.job("nope").status(), lambda: con.job("nope").start(), lambda: con.job("nope").logs()):
        with pytest.raises(OpenEoApiError) as exc:
            call()
        assert (exc.value.http_status_code, exc.value.code) == (404, "JobNotFound")
    with pytest.raises(OpenEoApiError) as exc:
        con.describe_collection("NOPE")
    assert (exc.value.http_status_code, exc.value.code) == (404, "CollectionNotFound")
    missing = requests.get(f"{local_backend.url}/no/such/path", timeout=5)
    assert (missing.status_code, missing.json()["code"]) == (404, "NotFound")
    wrong_method = requests.put(f"{local_backend.url}/jobs", timeout=5)
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "MethodNotAllowed")


def test_start_of_finished_job_and_patch_of_running_job(local_backend_factory):
    backend = local_backend_factory(min_run_time=2.0)
    con = openeo.connect(backend.url)
    job = con.create_job(graph()["process"]["process_graph"])
    job.start()
    answer = requests.patch(f"{backend.url}/jobs/{job.job_id}", json={"title": "x"}, timeout=5)
    assert (answer.status_code, answer.json()["code"]) == (400, "JobLocked")
    job.start()  # starting a queued/running job again is a no-op (openEO API)
    job.start_and_wait(max_poll_interval=0.1)
    with pytest.raises(OpenEoApiError) as exc:
        job.start()
    assert (exc.value.http_status_code, exc.value.code) == (400, "JobLocked")
    assert requests.patch(f"{backend.url}/jobs/{job.job_id}", json={"title": "renamed"}, timeout=5).status_code == 204
    assert job.describe()["title"] == "renamed"


def test_missing_and_invalid_auth(local_backend_factory):
    backend = local_backend_factory(auth="basic")
    answer = post_job(backend, graph())
    assert (answer.status_code, answer.json()["code"]) == (401, "AuthenticationRequired")
    answer = post_job(backend, graph(), headers={"Authorization": "Basic ZGVtbzpkZW1v"})
    assert (answer.status_code, answer.json()["code"]) == (403, "AuthenticationSchemeInvalid")
    answer = post_job(backend, graph(), headers={"Authorization": "Bearer basic//expired"})
    assert (answer.status_code, answer.json()["code"]) == (403, "TokenInvalid")
    assert requests.get(f"{backend.url}/", timeout=5).status_code == 200


def test_too_large_request_fails_the_job_with_a_reason(local_backend_factory):
    backend = local_backend_factory(pixel_size=10.0)
    con = openeo.connect(backend.url)
    box = {"west": 590000, "south": 5660000, "east": 630000, "north": 5700000, "crs": "EPSG:32631"}
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=box, temporal_extent=["2024-01-01", "2025-01-01"])
    job = con.create_job(cube.save_result("GTiff"))
    job.start()
    deadline = time.monotonic() + 20
    while job.status() not in ("error", "finished") and time.monotonic() < deadline:
        time.sleep(0.05)
    (entry,) = job.logs(level="error")
    assert "million values" in entry.message and entry["code"] == "ProcessParameterInvalid"
