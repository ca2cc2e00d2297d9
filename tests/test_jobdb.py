"""core.jobdb: a valid GeoPackage (ogrinfo, OGR, QGIS), run record, reads, batched updates,
threads, and bad inputs that leave no file behind."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.grid import grid_from_polygons, make_grid
from openeo_tile_jobs.core.jobdb import TILE_COLUMNS, JobDB, JobDBError

SEED_BBOX = {"west": 590000, "south": 5660000, "east": 610000, "north": 5680000, "crs": "EPSG:32631"}


@pytest.fixture()
def seed_grid():
    return make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631")


@pytest.fixture()
def db(tmp_path, seed_grid):
    run = {"job_spec": {"process_id": "cloud_free_composite"}, "backends": [{"name": "local", "url": "http://x"}]}
    with JobDB.create(tmp_path / "run.gpkg", seed_grid, run) as database:
        yield database


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ the file is a GeoPackage


def test_ogrinfo_reads_the_tiles_layer(db):
    out = subprocess.run(
        ["ogrinfo", "-so", str(db.path), "tiles"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "Geometry: Polygon" in out
    assert "Feature Count: 16" in out
    assert "Extent: (590000.000000, 5660000.000000) - (610000.000000, 5680000.000000)" in out
    assert 'ID["EPSG",32631]' in out
    for column in ("status", "tile_id", "backend_name", "costs", "client_token", "result_files", "updated"):
        assert f"{column}: " in out
    layers = subprocess.run(["ogrinfo", "-ro", "-q", str(db.path)], capture_output=True, text=True, check=True).stdout
    assert "tiles (Polygon)" in layers and "run (None)" in layers


def test_gdal_geopackage_validator_passes(db, tmp_path):
    validate_gpkg = pytest.importorskip("osgeo_utils.samples.validate_gpkg")
    db.update_many({1: {"status": "running"}})
    db.add_column("network_received", "TEXT")
    validate_gpkg.check(str(db.path))  # raises GPKGCheckException on any violation
    aoi = shapely.union_all([shapely.box(0, 0, 10, 3), shapely.box(0, 7, 10, 10), shapely.box(0, 0, 4, 10)])
    halves = [shapely.box(0, 0, 5, 10), shapely.box(5, 0, 10, 10)]
    grid = grid_from_polygons(halves, crs="EPSG:32631", aoi=aoi, clip=True)
    JobDB.create(tmp_path / "multi.gpkg", grid).close()
    validate_gpkg.check(str(tmp_path / "multi.gpkg"))


def test_ogr_reads_geometries_and_uses_the_spatial_index_and_can_edit(db, seed_grid):
    from osgeo import ogr

    ds = ogr.Open(str(db.path), 1)
    try:
        layer = ds.GetLayerByName("tiles")
        assert layer.TestCapability(ogr.OLCFastSpatialFilter)
        feats = {f.GetFID(): f for f in layer}
        assert sorted(feats) == list(range(1, 17))
        for fid, geom in zip(range(1, 17), seed_grid.geometries):
            assert shapely.equals_exact(shapely.from_wkb(bytes(feats[fid].GetGeometryRef().ExportToWkb())), geom, 0)
        layer.SetSpatialFilterRect(591000, 5661000, 592000, 5662000)
        assert [f.GetField("tile_id") for f in layer] == ["x0_y0"]
        layer.SetSpatialFilter(None)
        # an edit through OGR (what QGIS does when a user edits the layer) goes through our triggers
        f = layer.GetFeature(3)
        f.SetField("status", "skipped")
        assert layer.SetFeature(f) == 0
        g = ogr.CreateGeometryFromWkt("POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0))")
        f.SetGeometry(g)
        assert layer.SetFeature(f) == 0
        check = ds.ExecuteSQL("SELECT rtreecheck('rtree_tiles_geom')")
        assert check.GetNextFeature().GetField(0) == "ok"
        ds.ReleaseResultSet(check)
    finally:
        ds = None
    assert db.get(3)["status"] == "skipped"
    assert db.geometry(3).bounds == (0, 0, 10, 10)
    assert db.count_by_status() == {"not_started": 15, "skipped": 1}  # counts kept by triggers, also for OGR


def test_qgis_opens_the_tiles_as_a_vector_layer_and_sees_updates(db):
    from qgis.core import QgsFeatureRequest, QgsVectorLayer

    layer = QgsVectorLayer(f"{db.path}|layername=tiles", "tiles", "ogr")
    try:
        assert layer.isValid()
        assert layer.featureCount() == 16
        assert layer.crs().authid() == "EPSG:32631"
        assert layer.geometryType() == 2  # polygon
        names = layer.fields().names()
        for column in ("tile_id", "status", "id", "backend_name", "costs", "attempts", "updated"):
            assert column in names
        db.update_many({5: {"status": statuses.RUNNING, "id": "job-5"}, 6: {"status": statuses.ERROR}})
        layer.dataProvider().reloadData()
        request = QgsFeatureRequest().setFilterExpression("\"status\" <> 'not_started'")
        seen = {f["tile_id"]: f["status"] for f in layer.getFeatures(request)}
        assert seen == {"x1_y0": "running", "x1_y1": "error"}
    finally:
        del layer


# ------------------------------------------------------------------ run record


def test_run_record_is_derived_readable_and_updatable(db, seed_grid):
    record = db.run_record()
    assert record["tiling"] == {
        "crs": "EPSG:32631",
        "tile_size": 5000.0,
        "anchor": "aoi",
        "fit": True,
        "clip": False,
        "tile_count": 16,
    }
    assert record["aoi_crs"] == "EPSG:32631"
    assert shapely.equals(shapely.from_wkt(record["aoi_wkt"]), shapely.box(590000, 5660000, 610000, 5680000))
    assert record["job_spec"] == {"process_id": "cloud_free_composite"}
    assert record["backends"] == [{"name": "local", "url": "http://x"}]
    assert record["plugin_version"] == "0.1.0" and record["schema_version"] == 1
    assert record["created"].endswith("Z")
    after = db.update_run_record({"backends": [{"name": "vito"}], "note": "resumed"})
    assert after["backends"] == [{"name": "vito"}] and after["note"] == "resumed"
    with JobDB.open(db.path) as again:
        assert again.run_record() == after


@pytest.mark.parametrize(
    "bad",
    [
        {"backends": [{"name": "x", "refresh_token": "abc"}]},
        {"password": "hunter2"},
        {"backends": [{"auth": {"client_secret": "s"}}]},
    ],
)
def test_credentials_are_refused_in_the_run_record(db, tmp_path, seed_grid, bad):
    with pytest.raises(JobDBError, match="credentials"):
        db.update_run_record(bad)
    with pytest.raises(JobDBError, match="credentials"):
        JobDB.create(tmp_path / "other.gpkg", seed_grid, bad)
    assert "other.gpkg" not in files_in(tmp_path)


# ------------------------------------------------------------------ reads


def test_reads_by_status_fid_tile_id_job_id_and_token(db):
    assert db.count_by_status() == {"not_started": 16}
    db.update_many(
        {
            2: {"status": "running", "id": "j-2", "backend_name": "local", "client_token": "tok-2"},
            7: {"status": "running", "id": "j-7", "backend_name": "local"},
            9: {"status": "finished", "costs": 1.5, "result_files": ["a.tif", "b.tif"]},
        }
    )
    assert db.count_by_status() == {"not_started": 13, "running": 2, "finished": 1}
    assert db.count_by_status(["running", "queued"]) == {"running": 2}
    rows = db.get_by_status(["running", "finished"])
    assert [r["fid"] for r in rows] == [2, 7, 9]
    assert set(rows[0]) == {"fid", *TILE_COLUMNS}
    assert rows[2]["result_files"] == ["a.tif", "b.tif"] and rows[2]["costs"] == 1.5
    assert [r["fid"] for r in db.get_by_status(["not_started"], max=3)] == [1, 3, 4]
    assert db.get_by_status(["running"], columns=["id"]) == [{"fid": 2, "id": "j-2"}, {"fid": 7, "id": "j-7"}]
    assert db.get(7)["id"] == "j-7" and db.get(99) is None
    assert db.get_by_tile_id("x0_y1")["fid"] == 2
    assert db.find_by_job_id("j-7", backend_name="local")["fid"] == 7
    assert db.find_by_client_token("tok-2")["fid"] == 2 and db.find_by_client_token("nope") is None
    assert [r["fid"] for r in db.get_many([9, 2, 99])] == [2, 9]
    assert len(db.all_rows()) == len(db) == 16
    with pytest.raises(KeyError, match="nonsense"):
        db.get_by_status(["running"], columns=["nonsense"])


def test_where_count_by_and_costs_helpers(db):
    assert db.sum_costs() == (None, {})
    db.update_many(
        {
            1: {"status": "finished", "result_status": "done", "backend_name": "a", "costs": 1.5},
            2: {"status": "finished", "result_status": "pending", "backend_name": "a", "costs": 2.0},
            3: {"status": "finished", "result_status": "pending", "backend_name": "b", "costs": 0.5},
        }
    )
    assert [r["fid"] for r in db.get_where("result_status", ["pending"])] == [2, 3]
    assert db.get_where("result_status", ["pending"], max=1, columns=["tile_id"]) == [{"fid": 2, "tile_id": "x0_y1"}]
    assert db.count_by("result_status") == {"done": 1, "pending": 2}
    assert db.count_by("backend_name") == {"a": 2, "b": 1}
    assert db.sum_costs() == (4.0, {"a": 3.5, "b": 0.5})
    with pytest.raises(KeyError):
        db.count_by("nope")


def test_geometry_4326_is_what_openeo_would_send(db, seed_grid):
    from openeo.extra.job_management import split_area

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = split_area(SEED_BBOX, projection="EPSG:32631", tile_size=5000).to_crs("EPSG:4326")
    gj = db.geometry_4326(1)
    assert gj["type"] == "Polygon"
    assert shapely.equals_exact(shapely.geometry.shape(gj), theirs.geometry[0], 1e-9)
    all_4326 = db.geometries_4326(range(1, 17))
    for fid, their in zip(range(1, 17), theirs.geometry):
        assert shapely.equals_exact(shapely.geometry.shape(all_4326[fid]), their, 1e-9)
    bbox = db.bbox(1)
    assert bbox["crs"] == "EPSG:4326"
    assert (bbox["west"], bbox["south"], bbox["east"], bbox["north"]) == pytest.approx(theirs.geometry[0].bounds)
    assert db.bbox(1, crs="EPSG:32631") == {
        "west": 590000.0,
        "south": 5660000.0,
        "east": 595000.0,
        "north": 5665000.0,
        "crs": "EPSG:32631",
    }
    with pytest.raises(KeyError):
        db.geometry_4326(999)


# ------------------------------------------------------------------ writes


def test_update_many_touches_only_those_rows_in_one_transaction(db):
    before = {r["fid"]: r for r in db.all_rows()}
    n = db.update_many({3: {"status": "queued", "attempts": 1}, 4: {"status": "created", "title": "t4"}})
    assert n == 2
    after = {r["fid"]: r for r in db.all_rows()}
    changed = {fid for fid in after if after[fid] != before[fid]}
    assert changed == {3, 4}
    assert after[3]["updated"] == after[4]["updated"] and after[3]["updated"].endswith("Z")
    assert after[3]["attempts"] == 1 and after[4]["title"] == "t4"
    # a bad column anywhere in the batch: nothing is written
    with pytest.raises(KeyError, match="nonsense"):
        db.update_many({5: {"status": "running"}, 6: {"nonsense": 1}})
    with pytest.raises(KeyError, match="tile_id"):
        db.update(5, tile_id="renamed")
    assert db.get(5)["status"] == "not_started"
    # a failure inside the transaction rolls the whole batch back
    with pytest.raises(sqlite3.IntegrityError):
        db.update_many({5: {"status": "running"}, 6: {"status": None}})  # status is NOT NULL
    assert db.get(5)["status"] == "not_started"


@settings(max_examples=30, deadline=None)
@given(
    batches=st.lists(
        st.dictionaries(st.integers(1, 16), st.sampled_from(statuses.ALL_STATUSES), min_size=1, max_size=6),
        max_size=6,
    )
)
def test_status_counts_always_match_the_rows(tmp_path_factory, batches):
    path = tmp_path_factory.mktemp("counts") / "run.gpkg"
    with JobDB.create(path, make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631")) as db:
        for batch in batches:
            db.update_many({fid: {"status": status} for fid, status in batch.items()})
        expected = Counter(r["status"] for r in db.all_rows(["status"]))
        assert db.count_by_status() == dict(expected)
        assert db.recount() == dict(expected)


def test_numpy_pandas_and_nan_values_are_stored_plainly(db):
    import numpy as np
    import pandas as pd

    db.update(1, costs=np.float64("nan"), attempts=np.int64(3), progress=np.float32(12.5), title=pd.NA)
    row = db.get(1)
    assert row["costs"] is None and row["attempts"] == 3 and row["progress"] == 12.5 and row["title"] is None


def test_add_column_for_usage_stats(db):
    db.add_column("network_received", "TEXT")
    db.add_column("network_received", "TEXT")  # idempotent
    db.update(1, network_received="12 b")
    assert db.get(1)["network_received"] == "12 b"
    with pytest.raises(JobDBError):
        db.add_column("bad; DROP TABLE tiles", "TEXT")


def test_usable_from_a_worker_thread_while_the_main_thread_reads(db):
    errors: list[BaseException] = []

    def worker():
        try:
            for i in range(50):
                db.update_many({1 + i % 16: {"status": "running", "attempts": i}})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    for _ in range(50):
        assert sum(db.count_by_status().values()) == 16
    t.join()
    assert not errors
    assert db.count_by_status()["running"] == 16


def test_reopen_resumes_from_the_file_alone(db):
    db.update_many({1: {"status": "running", "id": "j-1"}})
    path = db.path
    db.close()
    with JobDB.open(path) as again:
        assert again.get(1)["id"] == "j-1"
        assert again.crs == "EPSG:32631"
        assert again.run_record()["tiling"]["tile_count"] == 16
        journal = again.conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert journal == "wal"


def test_clipped_and_predefined_grids_are_multipolygon_layers(tmp_path):
    # a C-shaped AOI: the east tile is clipped into two parts (a MultiPolygon)
    aoi = shapely.union_all([shapely.box(0, 0, 10, 3), shapely.box(0, 7, 10, 10), shapely.box(0, 0, 4, 10)])
    polys = [shapely.box(0, 0, 5, 10), shapely.box(5, 0, 10, 10)]
    grid = grid_from_polygons(polys, crs="EPSG:32631", aoi=aoi, clip=True, tile_ids=["w", "e"])
    with JobDB.create(tmp_path / "p.gpkg", grid) as db:
        assert db.get_by_tile_id("e")["row"] is None
        assert db.geometry(1).geom_type == "MultiPolygon"  # promoted: one geometry type per layer
        assert db.geometry(1).area == pytest.approx(grid.geometries[0].area)
        assert db.geometry(2).geom_type == "MultiPolygon" and len(db.geometry(2).geoms) == 2
    out = subprocess.run(["ogrinfo", "-so", str(tmp_path / "p.gpkg"), "tiles"], capture_output=True, text=True).stdout
    assert "Geometry: Multi Polygon" in out and "Feature Count: 2" in out


# ------------------------------------------------------------------ bad inputs leave nothing behind


def test_bad_create_requests_leave_no_file(tmp_path, seed_grid):
    with pytest.raises(JobDBError, match="must end in .gpkg"):
        JobDB.create(tmp_path / "run.csv", seed_grid)
    with pytest.raises(JobDBError, match="does not exist"):
        JobDB.create(tmp_path / "missing" / "run.gpkg", seed_grid)
    with pytest.raises(JobDBError, match="not JSON-able"):
        JobDB.create(tmp_path / "run.gpkg", seed_grid, {"job_spec": object()})
    assert files_in(tmp_path) == []
    JobDB.create(tmp_path / "run.gpkg", seed_grid).close()
    with pytest.raises(FileExistsError):
        JobDB.create(tmp_path / "run.gpkg", seed_grid)
    assert files_in(tmp_path) == ["run.gpkg"]


def test_overwrite_replaces_a_run_and_its_wal(tmp_path, seed_grid):
    path = tmp_path / "run.gpkg"
    JobDB.create(path, seed_grid).close()
    # a process that dies without closing leaves committed pages in run.gpkg-wal
    code = (
        "import os, sys\n"
        "from openeo_tile_jobs.core.jobdb import JobDB\n"
        "db = JobDB.open(sys.argv[1])\n"
        "db.conn.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "db.update_many({fid: {'status': 'error', 'last_error': 'x' * 500} for fid in range(1, 17)})\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 0
    other = make_grid(SEED_BBOX, tile_size=10_000, crs="EPSG:32631")
    with JobDB.create(path, other, overwrite=True) as db:
        assert len(db) == 4 and db.count_by_status() == {"not_started": 4}
        assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_failure_while_writing_leaves_no_file(tmp_path, seed_grid, monkeypatch):
    from openeo_tile_jobs.core import gpkg

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gpkg, "fill_rtree", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        JobDB.create(tmp_path / "run.gpkg", seed_grid)
    assert files_in(tmp_path) == []


def test_opening_what_is_not_a_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError):
        JobDB.open(tmp_path / "none.gpkg")
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JobDBError, match="not"):
        JobDB.open(junk)
    other = tmp_path / "other.gpkg"
    subprocess.run(
        ["ogr2ogr", "-f", "GPKG", str(other), "/vsistdin/"],
        input=json.dumps({"type": "FeatureCollection", "features": []}),
        text=True,
        check=True,
        capture_output=True,
    )
    with pytest.raises(JobDBError, match="not an openEO Tile Jobs run"):
        JobDB.open(other)
    assert files_in(tmp_path) == ["junk.gpkg", "other.gpkg"]


def test_closed_database_refuses_calls(db):
    db.close()
    with pytest.raises(JobDBError, match="closed"):
        db.count_by_status()
