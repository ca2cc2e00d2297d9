"""The one-tile preview's core (core/preview.py, core/preview_run.py) against the Local demo backend
over real HTTP: the same process graph as the run's job for that tile, the size check, the batch
job it falls back to (and deletes), polite polling under 429s, the job database left alone."""

from __future__ import annotations

import datetime as dt
import threading

import openeo
import pytest
import rasterio
import requests
from engine_crash_worker import TEMPORAL_EXTENT, make_db, make_scheduler, run_engine
from openeo.rest import OpenEoApiError

from openeo_tile_jobs.core.backends import Backend, BackendProfile
from openeo_tile_jobs.core.downloads import UnsafeNameError
from openeo_tile_jobs.core.jobspec import JobSpec
from openeo_tile_jobs.core.preview import (
    BATCH,
    SYNC,
    SyncLimit,
    TileVolume,
    choose_route,
    is_size_refusal,
    preview_path,
    temporal_extent_days,
    tile_volume,
)
from openeo_tile_jobs.core.preview_run import PreviewCanceledError, PreviewError, preview_tile


def utm_square_4326(west: float, south: float, size: float) -> dict:
    """A square of ``size`` metres in EPSG:32631 (UTM 31N), as a GeoJSON polygon in EPSG:4326."""
    import pyproj
    import shapely.geometry
    import shapely.ops

    to_4326 = pyproj.Transformer.from_crs(32631, 4326, always_xy=True).transform
    square = shapely.geometry.box(west, south, west + size, south + size).segmentize(100.0)
    return shapely.geometry.mapping(shapely.ops.transform(to_4326, square))


SQUARE_10KM = utm_square_4326(500_000, 5_000_000, 10_000)


def test_tile_volume_counts_pixels_at_the_pixel_size_and_dates_of_the_temporal_extent():
    graph = {"p": {"process_id": "composite", "arguments": {"temporal_extent": ["2024-06-01", "2024-07-01"]}}}
    assert temporal_extent_days(graph) == 30
    volume = tile_volume(SQUARE_10KM, graph, SyncLimit())
    assert volume.dates == 6  # acquisitions every 5 days in June
    assert volume.pixels == pytest.approx(1_000_000, rel=0.02)  # 10 km x 10 km at 10 m
    assert tile_volume(SQUARE_10KM, graph, SyncLimit(pixel_size=200.0)).pixels == pytest.approx(2_500, rel=0.02)
    nested = {
        "load": {
            "process_id": "load_collection",
            "arguments": {"id": "S2", "temporal_extent": ["2024-06-01T00:00:00Z", "2024-09-01"]},
        }
    }
    assert temporal_extent_days(nested) == 92
    assert tile_volume(SQUARE_10KM, {"p": {"process_id": "x", "arguments": {}}}, SyncLimit()).dates == 1


def test_route_is_sync_only_when_offered_and_small_enough():
    limit = SyncLimit(max_pixel_dates=2_000_000)
    assert choose_route(True, TileVolume(102_400, 19), limit).mode == SYNC  # 3.2 km over a summer at 10 m
    too_big = choose_route(True, TileVolume(250_000, 19), limit)  # the seed's 5 km tile
    assert too_big.mode == BATCH and "4,750,000 pixels x dates" in too_big.reason
    not_offered = choose_route(False, TileVolume(1, 1), limit)
    assert not_offered.mode == BATCH and "POST /result" in not_offered.reason
    assert SyncLimit().for_backend({"local_demo": {"pixel_size": 200}}).pixel_size == 200.0
    assert SyncLimit().for_backend({"title": "another backend"}).pixel_size == 10.0


def test_size_refusals_are_told_from_other_errors():
    too_big = OpenEoApiError(http_status_code=400, code="ProcessGraphComplexity", message="too large")
    invalid = OpenEoApiError(http_status_code=400, code="ProcessParameterInvalid", message="bad bands")
    assert is_size_refusal(too_big) and is_size_refusal(requests.ReadTimeout())
    assert not is_size_refusal(invalid)
    assert not is_size_refusal(OpenEoApiError(http_status_code=500, code="Internal", message="boom"))


def test_preview_file_names_are_new_each_time_and_stay_in_the_preview_folder(tmp_path):
    first = preview_path(tmp_path, "x0_y0", dt.datetime(2026, 11, 30, 10, 0, 0))
    second = preview_path(tmp_path, "x0_y0", dt.datetime(2026, 11, 30, 10, 0, 1))
    assert first.parent == tmp_path / "preview" and first != second
    with pytest.raises(UnsafeNameError):
        preview_path(tmp_path, "../outside")


def _setup(tmp_path, backend, tiles=2):
    db = make_db(tmp_path / "run.gpkg", cols=tiles, rows=1)
    spec = JobSpec(namespace=backend.demo_process_url, parameters={"temporal_extent": TEMPORAL_EXTENT})
    profile = BackendProfile(name="local1", url=backend.url, request_timeout=10)
    return db, spec, profile


def test_preview_sends_the_graph_the_run_submits_and_leaves_the_run_alone(tmp_path, local_backend):
    db, spec, profile = _setup(tmp_path, local_backend)
    before = db.all_rows()
    target = preview_path(tmp_path / "out", "x0_y0")
    request, result = preview_tile(Backend(profile), db.path, spec, 1, target)
    assert result.mode == SYNC and result.job_id is None
    assert db.all_rows() == before  # no status, no row changed
    counts = local_backend.request_counts()
    assert counts.get("POST /result") == 1 and not counts.get("POST /jobs")
    with rasterio.open(result.path) as src:
        assert src.count == 3 and src.read().any()
        bounds = src.bounds
    assert (bounds.left, bounds.bottom) == pytest.approx((590_000, 5_660_000), abs=200)

    # the run's own job for that tile has exactly the preview's process graph
    sched = make_scheduler(db, [local_backend.url], local_backend.demo_process_url, tmp_path / "out", spec=spec)
    assert run_engine(sched, max_seconds=60).done
    job_id = db.get(1)["id"]
    sent = openeo.connect(local_backend.url, auto_validate=False).job(job_id).describe()["process"]["process_graph"]
    assert sent == request.process_graph


def test_a_tile_refused_by_post_result_is_one_batch_job_deleted_after_download(tmp_path, local_backend_factory):
    backend = local_backend_factory(sync_max_pixel_dates=10)  # refuses every synchronous request
    db, spec, profile = _setup(tmp_path, backend, tiles=1)
    target = preview_path(tmp_path / "out", "x0_y0")
    _request, result = preview_tile(Backend(profile), db.path, spec, 1, target)
    assert result.mode == BATCH and "ProcessGraphComplexity" in result.note
    counts = backend.request_counts()
    assert counts.get("POST /result") == 1 and counts.get("POST /jobs") == 1
    assert counts.get("DELETE /jobs/{job_id}") == 1
    assert openeo.connect(backend.url, auto_validate=False).list_jobs() == []
    with rasterio.open(target) as src:
        assert src.read().any()
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no part file, no job folder


def test_batch_preview_polls_politely_through_rate_limits(tmp_path, local_backend_factory):
    backend = local_backend_factory(run_time=1.0)
    db, spec, profile = _setup(tmp_path, backend, tiles=1)
    backend.set_faults(rate_limit=0.5, retry_after=1, endpoints=["GET /jobs/{job_id}"], seed=3)
    limit = SyncLimit(max_pixel_dates=0)  # every tile goes to a batch job
    _request, result = preview_tile(Backend(profile), db.path, spec, 1, preview_path(tmp_path, "x0_y0"), limit)
    assert result.mode == BATCH
    counts = backend.request_counts()
    assert counts.get("fault 429", 0) >= 1
    # 0.5 s, then doubling; a 429 waits its Retry-After: a one-second job is asked a handful of times
    assert counts["GET /jobs/{job_id}"] <= 8, counts


def test_a_backend_error_is_told_in_its_own_words(tmp_path, local_backend):
    db, _spec, profile = _setup(tmp_path, local_backend, tiles=1)
    spec = JobSpec(namespace=local_backend.demo_process_url, parameters={"temporal_extent": ["2024-06-01", None]})
    with pytest.raises(PreviewError, match="ProcessParameterInvalid: .*open-ended intervals are not supported"):
        preview_tile(Backend(profile), db.path, spec, 1, preview_path(tmp_path, "x0_y0"))
    assert not list((tmp_path / "preview").glob("*"))  # nothing half-written left


def test_a_canceled_batch_preview_deletes_its_job_and_leaves_no_file(tmp_path, local_backend_factory):
    backend = local_backend_factory(run_time=30.0)
    db, spec, profile = _setup(tmp_path, backend, tiles=1)
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()  # the user cancels the task while the job runs
    target = preview_path(tmp_path / "out", "x0_y0")
    with pytest.raises(PreviewCanceledError):
        preview_tile(Backend(profile), db.path, spec, 1, target, SyncLimit(max_pixel_dates=0), cancel)
    assert backend.request_counts().get("DELETE /jobs/{job_id}") == 1
    assert openeo.connect(backend.url, auto_validate=False).list_jobs() == []
    assert not any(target.parent.iterdir())
