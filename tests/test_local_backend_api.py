"""Local demo backend over real HTTP with the unchanged openeo client: discovery, the demo
process end to end (pixels checked against numpy), job life cycle, pagination, logs,
downloads with Range, restart survival, concurrency limits, namespaces."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import warnings

import numpy as np
import openeo
import pyproj
import pytest
import rasterio
import requests
import shapely
import shapely.geometry
from openeo.rest import OpenEoApiError

from openeo_tile_jobs.local_backend import synthetic

TILE = {  # tile 0 of the seed notebook's 5 km grid (EPSG:32631), in EPSG:4326
    "type": "Polygon",
    "coordinates": [
        [[4.35633, 51.08363], [4.42769, 51.08278], [4.42908, 51.12773], [4.35765, 51.12858], [4.35633, 51.08363]]
    ],
}
SUMMER = ["2024-06-01", "2024-09-01"]
CLOUDY = [3, 8, 9, 10]  # SCL: cloud shadow, cloud medium / high probability, thin cirrus


def wait_for(job, statuses=("finished", "error", "canceled"), timeout=30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.status()
        if status in statuses:
            return status
        time.sleep(0.03)
    raise AssertionError(f"job {job.job_id} still {job.status()} after {timeout} s")


def composite_job(con, backend, **kwargs):
    cube = con.datacube_from_process(
        "cloud_free_composite",
        namespace=backend.demo_process_url,
        spatial_extent=kwargs.pop("spatial_extent", TILE),
        temporal_extent=kwargs.pop("temporal_extent", SUMMER),
    )
    return con.create_job(cube, **kwargs)


def bbox_job(con, bbox, bands=("B04",), temporal=("2024-06-01", "2024-06-11")):
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=bbox, temporal_extent=list(temporal), bands=list(bands))
    return con.create_job(cube.save_result("GTiff"))


UTM_BOX = {"west": 590000, "south": 5660000, "east": 592000, "north": 5662000, "crs": "EPSG:32631"}


def test_discovery(local_backend):
    con = openeo.connect(local_backend.url)
    assert con.capabilities().api_version() == "1.2.0"
    assert con.list_collection_ids() == ["SENTINEL2_L2A"]
    meta = con.describe_collection("SENTINEL2_L2A")
    assert "SYNTHETIC" in meta["title"]
    assert meta["cube:dimensions"]["bands"]["values"] == ["B02", "B03", "B04", "B08", "SCL"]
    process_ids = {p["id"] for p in con.list_processes()}
    assert {"load_collection", "save_result", "reduce_dimension", "median", "mask", "ndvi"} <= process_ids
    assert "GTiff" in con.list_output_formats()
    paths = {e["path"] for e in con.capabilities().capabilities["endpoints"]}
    assert {"/jobs", "/jobs/{job_id}/results", "/jobs/{job_id}/logs", "/process_graphs", "/credentials/oidc"} <= paths
    udp = requests.get(local_backend.demo_process_url, timeout=5).json()
    assert udp["id"] == "cloud_free_composite"
    assert [p["name"] for p in udp["parameters"]] == ["spatial_extent", "temporal_extent"]


def test_composite_pixels_equal_numpy_masked_median(local_backend, tmp_path):
    con = openeo.connect(local_backend.url)
    job = composite_job(con, local_backend, title="tile 0")
    assert job.status() == "created"
    job.start()
    assert wait_for(job) == "finished"
    results = job.get_results()
    (asset,) = results.get_assets()
    assert asset.key == "openEO.tif"
    assert asset.metadata["type"] == "image/tiff; application=geotiff"
    path = asset.download(tmp_path / "tile0.tif")
    data = path.read_bytes()
    assert asset.metadata["file:size"] == len(data)
    assert asset.metadata["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()

    with rasterio.open(path) as src:
        got = src.read()
        assert src.crs.to_epsg() == 32631  # the UTM zone of the tile
        assert [src.descriptions[i] for i in range(3)] == ["B04", "B03", "B02"]
        assert np.isnan(src.nodata)
        assert src.profile["tiled"] and src.profile["compress"] == "deflate"
        bounds, res, transform, shape = src.bounds, src.res[0], src.transform, (src.height, src.width)
    to_utm = pyproj.Transformer.from_crs(4326, 32631, always_xy=True)
    tile_utm = shapely.transform(shapely.geometry.shape(TILE), to_utm.transform, interleaved=False)
    for got_edge, want_edge in zip(bounds, tile_utm.bounds):
        assert abs(got_edge - want_edge) <= res  # within one pixel of the request
    assert res == 200.0

    # Recompute what the job saw, independently: same pixel centres, same dates.
    xs = transform.c + (np.arange(shape[1]) + 0.5) * res
    ys = transform.f - (np.arange(shape[0]) + 0.5) * res
    dates = [dt.date(2024, 6, 1) + dt.timedelta(days=i) for i in range(92)]
    dates = [d for d in dates if (d - synthetic.EPOCH).days % synthetic.REVISIT_DAYS == 0]
    assert len(dates) == 19
    raw = synthetic.generate(xs, ys, dates, ["B04", "B03", "B02", "SCL"]).astype(float)
    cloudy = np.isin(raw[:, 3], CLOUDY)
    rgb = np.where(cloudy[:, None], np.nan, raw[:, :3])
    inside = shapely.contains_xy(tile_utm, xs[None, :], ys[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: cloudy on every date
        expected = np.nanmedian(rgb, axis=0)
    expected[:, ~inside] = np.nan
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert np.isfinite(got[:, inside]).mean() > 0.95

    # The composite is not any single date: clouds moved.
    for t in range(len(dates)):
        differs = np.abs(raw[t, :3] - np.nan_to_num(expected)) > 50
        assert differs[:, inside].any(axis=0).mean() > 0.3, dates[t]


def test_process_based_job_creator_with_job_manager(local_backend, tmp_path):
    import geopandas as gpd
    from openeo.extra.job_management import MultiBackendJobManager, create_job_db
    from openeo.extra.job_management.process_based import ProcessBasedJobCreator

    to_lonlat = pyproj.Transformer.from_crs(32631, 4326, always_xy=True)
    tiles = [shapely.box(590_000 + i * 5000, 5_660_000, 595_000 + i * 5000, 5_665_000) for i in range(2)]
    tiles = [shapely.transform(t, to_lonlat.transform, interleaved=False) for t in tiles]
    df = gpd.GeoDataFrame({"tile": [0, 1]}, geometry=tiles, crs=4326)
    start_job = ProcessBasedJobCreator(
        namespace=local_backend.demo_process_url, parameter_defaults={"temporal_extent": SUMMER}
    )
    manager = MultiBackendJobManager(poll_sleep=0.2, root_dir=tmp_path / "jobs")
    manager.add_backend("local", connection=openeo.connect(local_backend.url), parallel_jobs=2)
    job_db = create_job_db(tmp_path / "jobs.csv", df=df)
    manager.run_jobs(job_db=job_db, start_job=start_job)
    final = job_db.read()
    assert list(final["status"]) == ["finished", "finished"]
    tifs = sorted(p.name for p in (tmp_path / "jobs").rglob("*.tif"))
    assert tifs == ["openEO.tif", "openEO.tif"]


def test_cube_with_time_dimension_gives_one_file_per_date(local_backend, tmp_path):
    con = openeo.connect(local_backend.url)
    job = bbox_job(con, UTM_BOX, bands=("B04", "SCL"), temporal=("2024-06-01", "2024-06-16"))
    job.start()
    assert wait_for(job) == "finished"
    names = sorted(a.key for a in job.get_results().get_assets())
    assert names == ["openEO_2024-06-01Z.tif", "openEO_2024-06-06Z.tif", "openEO_2024-06-11Z.tif"]
    path = job.get_results().get_asset("openEO_2024-06-06Z.tif").download(tmp_path / "d.tif")
    with rasterio.open(path) as src:
        assert src.bounds == (590000, 5660000, 592000, 5662000)
        assert src.count == 2
        expected = synthetic.generate(
            np.arange(590100, 592000, 200.0), np.arange(5661900, 5660000, -200.0), [dt.date(2024, 6, 6)], ["B04", "SCL"]
        )[0]
        np.testing.assert_array_equal(src.read(), expected.astype(np.float32))


def test_listing_pagination_newest_first(local_backend):
    con = openeo.connect(local_backend.url)
    created = [bbox_job(con, UTM_BOX).job_id for _ in range(7)]
    page = con.list_jobs(limit=3)
    assert [j["id"] for j in page] == created[::-1][:3]
    assert all({"id", "status", "created"} <= set(j) for j in page)
    seen, url = [], f"{local_backend.url}/jobs?limit=3"
    while url:
        body = requests.get(url, timeout=5).json()
        seen += [j["id"] for j in body["jobs"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert seen == created[::-1]
    assert [j["id"] for j in con.list_jobs()] == created[::-1]  # no limit: everything


def test_logs_level_filter_and_offset(local_backend):
    con = openeo.connect(local_backend.url)
    ok = bbox_job(con, UTM_BOX)
    ok.start_and_wait(max_poll_interval=0.1, show_error_logs=False)
    info = ok.logs()
    assert [e.level for e in info][:2] == ["info", "info"]
    assert any("load_collection" in e.message for e in info)
    assert ok.logs(level="error") == []
    after = requests.get(f"{local_backend.url}/jobs/{ok.job_id}/logs", params={"offset": info[1]["id"]}, timeout=5)
    assert [e["id"] for e in after.json()["logs"]] == [e["id"] for e in info[2:]]
    limited = requests.get(f"{local_backend.url}/jobs/{ok.job_id}/logs", params={"limit": 2}, timeout=5).json()
    assert len(limited["logs"]) == 2 and limited["links"][0]["rel"] == "next"

    bad = composite_job(con, local_backend, temporal_extent=["2024-06-02", "2024-06-05"])  # no acquisition
    bad.start()
    assert wait_for(bad) == "error"
    errors = bad.logs(level="error")
    assert len(errors) == 1 and "No SENTINEL2_L2A acquisitions" in errors[0].message
    assert errors[0]["code"] == "NoDataAvailable"
    assert len(bad.logs(level="debug")) > 1
    with pytest.raises(OpenEoApiError) as exc:
        bad.get_results().get_metadata()
    assert exc.value.http_status_code == 424


def test_stop_cancel_and_delete(local_backend_factory):
    backend = local_backend_factory(min_run_time=5.0, workers=1)
    con = openeo.connect(backend.url)
    running, queued = bbox_job(con, UTM_BOX), bbox_job(con, UTM_BOX)
    running.start()
    assert wait_for(running, ("running",)) == "running"
    queued.start()
    assert queued.status() == "queued"  # the only worker is busy
    queued.stop()
    assert queued.status() == "canceled"
    running.stop()
    assert running.status() == "canceled"
    with pytest.raises(OpenEoApiError) as exc:
        running.get_results().get_metadata()
    assert exc.value.code == "JobNotFinished"
    running.delete()
    with pytest.raises(OpenEoApiError) as exc:
        running.status()
    assert exc.value.code == "JobNotFound" and exc.value.http_status_code == 404
    assert [j["id"] for j in con.list_jobs()] == [queued.job_id]


def test_download_with_range(local_backend, tmp_path):
    con = openeo.connect(local_backend.url)
    job = composite_job(con, local_backend)
    job.start_and_wait(max_poll_interval=0.1)
    asset = job.get_results().get_assets()[0]
    full = requests.get(asset.href, timeout=5)
    assert full.status_code == 200 and full.headers["Accept-Ranges"] == "bytes"
    part = requests.get(asset.href, headers={"Range": "bytes=100-"}, timeout=5)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-{len(full.content) - 1}/{len(full.content)}"
    assert full.content[:100] + part.content == full.content
    forged = asset.href.replace("/download/", "/download/x")
    assert requests.get(forged, timeout=5).status_code in (403, 404)


def test_results_and_running_jobs_survive_restart(local_backend_factory, tmp_path):
    data_dir = tmp_path / "shared"
    first = local_backend_factory(data_dir=data_dir)
    con = openeo.connect(first.url)
    done = composite_job(con, first)
    done.start_and_wait(max_poll_interval=0.1)
    checksum = done.get_results().get_assets()[0].metadata["file:checksum"]
    first.stop()

    slow = local_backend_factory(data_dir=data_dir, min_run_time=30.0)
    con = openeo.connect(slow.url)
    interrupted = bbox_job(con, UTM_BOX)
    interrupted.start()
    assert wait_for(interrupted, ("running",)) == "running"
    slow.stop()

    again = local_backend_factory(data_dir=data_dir)
    con = openeo.connect(again.url)
    jobs = {j["id"]: j["status"] for j in con.list_jobs()}
    assert jobs[done.job_id] == "finished"
    assert jobs[interrupted.job_id] in ("queued", "running", "finished")
    asset = con.job(done.job_id).get_results().get_assets()[0]
    assert asset.metadata["file:checksum"] == checksum
    assert "1220" + hashlib.sha256(requests.get(asset.href, timeout=5).content).hexdigest() == checksum
    resumed = con.job(interrupted.job_id)
    assert wait_for(resumed) == "finished"
    assert any("restarted" in e.message for e in resumed.logs(level="warning"))


def test_concurrency_limit_queues_excess_starts(local_backend_factory):
    backend = local_backend_factory(max_concurrent_jobs_per_user=1, over_limit="queue", min_run_time=0.5)
    con = openeo.connect(backend.url)
    a, b = bbox_job(con, UTM_BOX), bbox_job(con, UTM_BOX)
    a.start()
    b.start()
    assert wait_for(a, ("running",)) == "running"
    assert b.status() == "queued"
    assert wait_for(a) == "finished"
    assert wait_for(b) == "finished"


def test_concurrency_limit_refuses_excess_starts(local_backend_factory):
    backend = local_backend_factory(max_concurrent_jobs_per_user=1, over_limit="refuse", min_run_time=0.5)
    con = openeo.connect(backend.url)
    a, b = bbox_job(con, UTM_BOX), bbox_job(con, UTM_BOX)
    a.start()
    with pytest.raises(OpenEoApiError) as exc:
        b.start()
    assert (exc.value.http_status_code, exc.value.code) == (400, "ConcurrentJobLimit")
    assert wait_for(a) == "finished"
    b.start()
    assert wait_for(b) == "finished"


def test_min_queue_time_shows_queued_then_running(local_backend_factory):
    backend = local_backend_factory(min_queue_time=0.4, min_run_time=0.4)
    con = openeo.connect(backend.url)
    job = bbox_job(con, UTM_BOX)
    job.start()
    seen = []
    while not seen or seen[-1] != "finished":
        status = job.status()
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.03)
    assert seen == ["queued", "running", "finished"]
    usage = con.job(job.job_id).describe()["usage"]
    assert usage["duration"]["value"] >= 0.4 and usage["cpu"]["unit"] == "cpu-seconds"


def test_namespace_on_another_server_is_fetched(local_backend_factory):
    here, there = local_backend_factory(), local_backend_factory()
    con = openeo.connect(here.url)
    job = composite_job(con, there)  # the definition lives on the other server
    job.start()
    assert wait_for(job) == "finished"
    assert there.request_counts().get("GET /udp/{name}.json", 0) >= 1


def test_unreachable_namespace_fails_the_job_with_a_clear_log(local_backend):
    con = openeo.connect(local_backend.url)
    cube = con.datacube_from_process(
        "cloud_free_composite", namespace="http://127.0.0.1:9/udp/cloud_free_composite.json", spatial_extent=TILE
    )
    job = con.create_job(cube)
    job.start()
    assert wait_for(job) == "error"
    (entry,) = job.logs(level="error")
    assert "Could not load the definition of process 'cloud_free_composite'" in entry.message
    assert "http://127.0.0.1:9/udp/cloud_free_composite.json" in entry.message


def test_user_defined_process_graphs(local_backend):
    con = openeo.connect(local_backend.url)
    udp = requests.get(local_backend.demo_process_url, timeout=5).json()
    con.save_user_defined_process("my_composite", udp["process_graph"], parameters=udp["parameters"])
    assert [p["id"] for p in con.list_user_defined_processes()] == ["my_composite"]
    cube = con.datacube_from_process("my_composite", spatial_extent=TILE, temporal_extent=SUMMER)
    job = con.create_job(cube)
    job.start()
    assert wait_for(job) == "finished"
    con.user_defined_process("my_composite").delete()
    assert con.list_user_defined_processes() == []


def test_ndvi_reduce_graph_runs_through_processes_dask(local_backend, tmp_path):
    con = openeo.connect(local_backend.url)
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=UTM_BOX, temporal_extent=SUMMER, bands=["B04", "B08"])
    ndvi = cube.ndvi(nir="B08", red="B04").reduce_dimension(dimension="t", reducer="mean")
    job = con.create_job(ndvi.save_result("GTiff"))
    job.start_and_wait(max_poll_interval=0.1)
    path = job.get_results().get_assets()[0].download(tmp_path / "ndvi.tif")
    with rasterio.open(path) as src:
        got = src.read(1)
    xs, ys = np.arange(590100, 592000, 200.0), np.arange(5661900, 5660000, -200.0)
    dates = synthetic.acquisition_dates(dt.date(2024, 6, 1), dt.date(2024, 9, 1))
    raw = synthetic.generate(xs, ys, dates, ["B04", "B08"]).astype(np.float32)
    expected = ((raw[:, 1] - raw[:, 0]) / (raw[:, 1] + raw[:, 0])).mean(axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_command_line_from_repository_root(repo_root, tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "local_backend", "--port", "0", "--data-dir", str(tmp_path), "--pixel-size", "200"],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split("Local demo backend: ")[1].split(" ")[0]
        con = openeo.connect(url)
        assert con.list_collection_ids() == ["SENTINEL2_L2A"]
        assert (tmp_path / "jobs.sqlite").is_file()
    finally:
        proc.terminate()
        proc.wait(10)
