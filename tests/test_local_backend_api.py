"""Local demo backend over real HTTP with the unchanged openeo client: discovery, jobs, results."""

from __future__ import annotations

import time

import openeo

TILE = {  # 5 km x 5 km tile of the seed notebook's grid (EPSG:32631), in EPSG:4326
    "type": "Polygon",
    "coordinates": [
        [[4.35633, 51.08363], [4.42769, 51.08278], [4.42908, 51.12773], [4.35765, 51.12858], [4.35633, 51.08363]]
    ],
}
SUMMER = ["2024-06-01", "2024-09-01"]


def wait_for(job, statuses=("finished", "error", "canceled"), timeout=30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.status()
        if status in statuses:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job.job_id} still {job.status()} after {timeout} s")


def test_discovery(local_backend):
    con = openeo.connect(local_backend.url)
    assert con.capabilities().api_version() == "1.2.0"
    assert con.list_collection_ids() == ["SENTINEL2_L2A"]
    meta = con.describe_collection("SENTINEL2_L2A")
    assert "SYNTHETIC" in meta["title"]
    assert {"load_collection", "save_result", "reduce_dimension", "median", "mask"} <= set(
        con.list_processes_ids() if hasattr(con, "list_processes_ids") else [p["id"] for p in con.list_processes()]
    )
    assert "GTiff" in con.list_output_formats()


def test_composite_job_end_to_end(local_backend, tmp_path):
    con = openeo.connect(local_backend.url)
    cube = con.datacube_from_process(
        "cloud_free_composite", namespace=local_backend.demo_process_url, spatial_extent=TILE, temporal_extent=SUMMER
    )
    job = con.create_job(cube, title="tile 0")
    assert job.status() == "created"
    job.start()
    assert wait_for(job) == "finished"
    files = job.get_results().download_files(tmp_path)
    assert any(p.name == "openEO.tif" for p in files)
