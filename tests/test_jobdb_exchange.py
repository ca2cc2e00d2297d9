"""core.jobdb_exchange: openeo's CSV/Parquet job databases in and out, and openeo's own
MultiBackendJobManager running to completion on our GeoPackage against the Local demo backend."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
import shapely

from openeo_tile_jobs.core.grid import make_grid
from openeo_tile_jobs.core.jobdb import JobDB, JobDBError
from openeo_tile_jobs.core.jobdb_exchange import OpenEOJobDatabase, export_openeo_db, import_openeo_db

SEED_BBOX = {"west": 590000, "south": 5660000, "east": 610000, "north": 5680000, "crs": "EPSG:32631"}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture()
def db(tmp_path):
    grid = make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631")
    with JobDB.create(tmp_path / "run.gpkg", grid, {"job_spec": {"process_id": "p"}}) as database:
        database.update_many(
            {
                1: {"status": "finished", "id": "j-1", "backend_name": "vito", "costs": 2.5, "cpu": "10 cpu-seconds"},
                2: {"status": "error", "id": "j-2", "last_error": "out of memory", "attempts": 2},
                3: {"status": "running", "id": "j-3", "result_files": ["x/a.tif"]},
            }
        )
        yield database


def same_rows(a: JobDB, b: JobDB) -> None:
    keep = ["tile_id", "row", "col", "status", "id", "backend_name", "costs", "cpu", "attempts", "last_error"]
    keep += ["result_files"]
    assert a.all_rows(keep) == b.all_rows(keep)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_keeps_geometry_crs_and_statuses(db, tmp_path, suffix):
    exported = export_openeo_db(db, tmp_path / f"jobs{suffix}")
    # openeo reads our export as its own job database
    from openeo.extra.job_management import get_job_db

    theirs = get_job_db(exported)
    assert theirs.count_by_status() == {"finished": 1, "error": 1, "running": 1, "not_started": 13}
    frame = theirs.read()
    assert frame.geometry.iloc[0].geom_type == "Polygon"
    assert shapely.equals_exact(frame.geometry.iloc[0], shapely.geometry.shape(db.geometry_4326(1)), 1e-9)
    if suffix == ".parquet":
        assert frame.crs.to_epsg() == 4326
    # and back: the tiling CRS comes back too (CSV carries it in the tiling_crs column)
    with import_openeo_db(exported, tmp_path / f"back{suffix}.gpkg") as back:
        assert back.crs == "EPSG:32631"
        same_rows(db, back)
        for fid in range(1, 17):
            assert shapely.equals_exact(back.geometry(fid), db.geometry(fid), 1e-6)
        assert back.run_record()["imported_from"] == str(exported)


def test_notebook_csv_opens_in_lon_lat_and_keeps_user_columns(tmp_path):
    from openeo.extra.job_management import create_job_db, split_area

    df = split_area(SEED_BBOX, projection="EPSG:32631", tile_size=5000).to_crs("EPSG:4326")
    df["year"] = 2024
    df["title"] = [f"tile {i}" for i in range(len(df))]
    create_job_db(tmp_path / "jobs.csv", df=df)  # exactly what the notebook does
    with import_openeo_db(tmp_path / "jobs.csv", tmp_path / "nb.gpkg") as db:
        assert db.crs == "EPSG:4326"  # a CSV has no CRS: the notebook's WKT is lon/lat
        assert len(db) == 16 and db.count_by_status() == {"not_started": 16}
        assert "year" in db.columns and db.get(3)["year"] == 2024 and db.get(3)["title"] == "tile 2"
        for fid, geom in zip(range(1, 17), df.geometry):
            assert shapely.equals_exact(db.geometry(fid), geom, 1e-12)
    # the same CSV into a metric layer on request
    with import_openeo_db(tmp_path / "jobs.csv", tmp_path / "utm.gpkg", crs="EPSG:32631") as db:
        assert db.crs == "EPSG:32631"
        assert shapely.equals_exact(db.geometry(1), shapely.box(590000, 5660000, 595000, 5665000), 1e-6)


def test_bad_imports_and_exports_leave_no_file(db, tmp_path):
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"status": ["not_started"], "year": [2020]}).to_csv(plain, index=False)
    with pytest.raises(JobDBError, match="no geometry column"):
        import_openeo_db(plain, tmp_path / "x.gpkg")
    with pytest.raises(JobDBError, match=".csv or .parquet"):
        import_openeo_db(db.path, tmp_path / "x.gpkg")
    with pytest.raises(FileNotFoundError):
        import_openeo_db(tmp_path / "missing.csv", tmp_path / "x.gpkg")
    with pytest.raises(JobDBError, match=".csv or .parquet"):
        export_openeo_db(db, tmp_path / "jobs.xlsx")
    with pytest.raises(FileExistsError):
        export_openeo_db(db, plain)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.csv", "run.gpkg", "run.gpkg-shm", "run.gpkg-wal"]


def test_job_database_interface(db):
    jdb = OpenEOJobDatabase(db)
    assert jdb.exists()
    assert jdb.count_by_status(["error", "running"]) == {"error": 1, "running": 1}
    frame = jdb.get_by_status(["not_started"], max=2)
    assert list(frame.index) == [4, 5] and frame.crs.to_epsg() == 4326
    assert {"status", "id", "backend_name", "start_time", "running_start_time", "costs"} <= set(frame.columns)
    frame.loc[4, "status"] = "queued"
    frame.loc[4, "network_received"] = "5 b"  # a usage field openeo adds on the fly
    jdb.persist(frame.loc[[4]])
    assert db.get(4)["status"] == "queued" and db.get(4)["network_received"] == "5 b"
    assert db.get(5)["updated"] is None  # only the persisted row was written
    assert list(jdb.get_by_indices([3, 1]).sort_index().index) == [1, 3]


def test_openeo_multibackendjobmanager_runs_to_completion_on_our_database(tmp_path, local_backend):
    import openeo
    from openeo.extra.job_management import MultiBackendJobManager, ProcessBasedJobCreator

    grid = make_grid({**SEED_BBOX, "east": 600000, "north": 5670000}, tile_size=5000, crs="EPSG:32631")
    db = JobDB.create(tmp_path / "run.gpkg", grid)
    db.close()
    manager = MultiBackendJobManager(poll_sleep=0.2, root_dir=tmp_path / "jobs")
    manager.add_backend("local", connection=openeo.connect(local_backend.url), parallel_jobs=2)
    creator = ProcessBasedJobCreator(
        process_id="cloud_free_composite",
        namespace=local_backend.demo_process_url,
        parameter_defaults={"temporal_extent": ["2024-06-01", "2024-09-01"]},
    )
    job_db = OpenEOJobDatabase(tmp_path / "run.gpkg")  # a script only needs the path
    stats = manager.run_jobs(job_db=job_db, start_job=creator)
    job_db.close()
    assert stats["job start"] == 4
    with JobDB.open(tmp_path / "run.gpkg") as db:
        assert db.count_by_status() == {"finished": 4}
        rows = db.all_rows()
        assert all(r["id"] and r["backend_name"] == "local" and r["start_time"] for r in rows)
        assert all(r["costs"] > 0 and r["cpu"].endswith("cpu-seconds") for r in rows)
    downloaded = sorted(p.name for p in Path(tmp_path / "jobs").glob("job_*/*.tif"))
    assert len(downloaded) >= 4
