"""Local demo backend, the endpoints real backends have beyond batch jobs, through the unchanged
openeo client where it has a method (validate_process_graph, cube.download, job.estimate) and
raw HTTP otherwise: discovery URLs, POST /result and its size limit, POST /validation,
GET /jobs/{id}/estimate against the billed costs, OpenEO-Costs, memory-limit failures."""

from __future__ import annotations

import re
import time

import numpy as np
import openeo
import pytest
import rasterio
import requests
from openeo.rest import OpenEoApiError

TILE = {  # tile 0 of the seed notebook's 5 km grid (EPSG:32631), in EPSG:4326: 25 x 25 pixels of 200 m
    "type": "Polygon",
    "coordinates": [
        [[4.35633, 51.08363], [4.42769, 51.08278], [4.42908, 51.12773], [4.35765, 51.12858], [4.35633, 51.08363]]
    ],
}
SUMMER = ["2024-06-01", "2024-09-01"]  # 19 acquisition dates
UTM_BOX = {"west": 590000, "south": 5660000, "east": 591000, "north": 5661000, "crs": "EPSG:32631"}


def composite(con, backend, extent=TILE):
    return con.datacube_from_process(
        "cloud_free_composite", namespace=backend.demo_process_url, spatial_extent=extent, temporal_extent=SUMMER
    )


def finish(job, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while job.status() not in ("finished", "error") and time.monotonic() < deadline:
        time.sleep(0.05)
    return job.status()


def test_version_url_has_a_trailing_slash_and_paths_work_with_doubled_slashes(local_backend):
    (version,) = requests.get(f"{local_backend.url}/.well-known/openeo", timeout=5).json()["versions"]
    assert version["url"] == local_backend.url + "/"
    # A client that appends paths to the version URL, with or without a leading slash.
    for url in (version["url"] + "file_formats", version["url"] + "/file_formats", version["url"] + "collections/"):
        answer = requests.get(url, timeout=5)
        assert answer.status_code == 200, url
    assert requests.get(local_backend.url + "//collections//SENTINEL2_L2A", timeout=5).json()["id"] == "SENTINEL2_L2A"
    con = openeo.connect(version["url"])
    assert con.list_collection_ids() == ["SENTINEL2_L2A"]
    endpoints = {e["path"]: e["methods"] for e in con.capabilities().capabilities["endpoints"]}
    assert endpoints["/result"] == ["POST"] and endpoints["/validation"] == ["POST"]
    assert endpoints["/jobs/{job_id}/estimate"] == ["GET"]


def test_synchronous_result_equals_the_batch_result_and_costs_the_same(local_backend, tmp_path):
    con = openeo.connect(local_backend.url)
    path = tmp_path / "sync.tif"
    composite(con, local_backend).download(path, format="GTiff")
    job = con.create_job(composite(con, local_backend))
    job.start()
    assert finish(job) == "finished"
    batch = job.get_results().get_assets()[0].download(tmp_path / "batch.tif")
    with rasterio.open(path) as sync_src, rasterio.open(batch) as batch_src:
        assert (sync_src.width, sync_src.height, sync_src.count) == (25, 25, 3)
        assert sync_src.transform == batch_src.transform and sync_src.crs == batch_src.crs
        np.testing.assert_array_equal(sync_src.read(), batch_src.read())
    graph = composite(con, local_backend).flat_graph()
    answer = requests.post(f"{local_backend.url}/result", json={"process": {"process_graph": graph}}, timeout=60)
    assert answer.headers["Content-Type"] == "image/tiff; application=geotiff"
    assert float(answer.headers["OpenEO-Costs"]) == job.describe()["costs"] > 0


def test_synchronous_result_beyond_the_size_limit_asks_for_a_batch_job(local_backend_factory, tmp_path):
    backend = local_backend_factory(sync_max_pixel_dates=25 * 25 * 19 - 1)  # one pixel-date too many
    con = openeo.connect(backend.url)
    with pytest.raises(OpenEoApiError) as exc:
        composite(con, backend).download(tmp_path / "big.tif", format="GTiff")
    assert (exc.value.http_status_code, exc.value.code) == (400, "ProcessGraphComplexity")
    assert "11875 pixels x dates" in exc.value.message and "batch job" in exc.value.message
    assert not (tmp_path / "big.tif").exists()
    smaller = tmp_path / "small.tif"
    composite(con, backend, extent=UTM_BOX).download(smaller, format="GTiff")
    with rasterio.open(smaller) as src:
        assert (src.width, src.height) == (5, 5)


def test_synchronous_result_with_one_file_per_date_is_refused(local_backend, tmp_path):
    con = openeo.connect(local_backend.url)
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=UTM_BOX, temporal_extent=SUMMER, bands=["B04"])
    with pytest.raises(OpenEoApiError) as exc:
        cube.download(tmp_path / "dates.tif", format="GTiff")
    assert exc.value.code == "FormatUnsuitable" and "19 files" in exc.value.message


def test_validation_answers_what_job_creation_refuses(local_backend):
    con = openeo.connect(local_backend.url)
    assert list(con.validate_process_graph(composite(con, local_backend))) == []
    wrong_collection = con.load_collection("SENTINEL3", spatial_extent=UTM_BOX, fetch_metadata=False)
    bad_extent = composite(con, local_backend, extent={"west": 5, "south": 52, "east": 4, "north": 51})
    for cube, code in ((wrong_collection, "CollectionNotFound"), (bad_extent, "ProcessParameterInvalid")):
        (error,) = con.validate_process_graph(cube)
        assert error["code"] == code
        with pytest.raises(OpenEoApiError) as exc:
            con.create_job(cube, validate=False)
        assert (exc.value.code, exc.value.message) == (error["code"], error["message"])
    unknown = {"x": {"process_id": "no_such_process", "arguments": {}, "result": True}}
    answer = requests.post(f"{local_backend.url}/validation", json={"process_graph": unknown}, timeout=5)
    assert answer.status_code == 200 and answer.json()["errors"][0]["code"] == "ProcessUnsupported"


def test_estimate_uses_the_cost_model_that_bills_the_job(local_backend_factory):
    backend = local_backend_factory(run_time=2.0, queue_time=1.0)
    con = openeo.connect(backend.url)
    job = con.create_job(composite(con, backend))
    estimate = job.estimate()
    job.start()
    assert finish(job) == "finished"
    billed = job.describe()
    assert estimate["costs"] == billed["costs"] > 0
    # 625 pixels x 19 dates x 4 bands (B02, B03, B04, SCL) loaded; 25 x 25 x 3 float32 values saved.
    assert billed["usage"]["input_pixel"]["value"] == pytest.approx(625 * 19 * 4 / 1e6)
    assert estimate["size"] == 25 * 25 * 3 * 4
    seconds = float(re.fullmatch(r"PT(?:(\d+)M)?([\d.]+)S", estimate["duration"]).group(2))
    assert seconds >= 3.0  # queue time + run time
    results = requests.get(f"{backend.url}/jobs/{job.job_id}/results", timeout=5)
    assert float(results.headers["OpenEO-Costs"]) == billed["costs"]


def test_job_over_the_pixel_limit_fails_like_an_executor_out_of_memory(local_backend_factory):
    backend = local_backend_factory(max_pixels_per_job=600)  # the tile has 625
    con = openeo.connect(backend.url)
    big, small = con.create_job(composite(con, backend)), con.create_job(composite(con, backend, extent=UTM_BOX))
    big.start()
    small.start()
    assert (finish(big), finish(small)) == ("error", "finished")
    (error,) = big.logs(level="error")
    assert error["code"] == "OutOfMemory"
    assert "memory limit of" in error.message and "600 pixels per job" in error.message
    warnings = [e.message for e in big.logs(level="warning")]
    assert any("exceeding memory limits" in w for w in warnings)
    with pytest.raises(OpenEoApiError) as exc:
        big.get_results().get_metadata()
    assert (exc.value.http_status_code, exc.value.code) == (424, "OutOfMemory")
