"""The provider's algorithms through ``qgis_process.bin run`` (a fresh profile with the plugin enabled).

create_grid -> run_jobs (Local demo backend started inside qgis_process) -> load_results,
as a script would chain them, with their outputs checked; then a resume and the errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import rasterio

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.jobdb import JobDB

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/lib/qgis/qgis_process.bin"
pytestmark = pytest.mark.skipif(not shutil.which("qgis_process.bin"), reason="qgis_process.bin not installed")
SEED_EXTENT = "590000,610000,5660000,5680000 [EPSG:32631]"
TEMPORAL = json.dumps({"temporal_extent": ["2024-06-01", "2024-09-01"]})


@pytest.fixture()
def qgis_process(qgis_profile):
    """``run(algorithm, **parameters) -> (returncode, results dict or None, log)``."""
    enabled = subprocess.run(
        [QGIS_PROCESS, "plugins", "enable", "openeo_tile_jobs"], env=qgis_profile, capture_output=True, text=True
    )
    assert enabled.returncode == 0, enabled.stderr

    def run(algorithm: str, timeout: int = 120, **parameters):
        args = [QGIS_PROCESS, "--json", "run", f"openeo_tile_jobs:{algorithm}", "--"]
        args += [f"{key}={value}" for key, value in parameters.items()]
        done = subprocess.run(args, env=qgis_profile, capture_output=True, text=True, timeout=timeout)
        start = done.stdout.find("{")
        results = json.loads(done.stdout[start:])["results"] if done.returncode == 0 and start >= 0 else None
        return done.returncode, results, done.stdout + done.stderr

    return run


def test_create_run_load_through_qgis_process(tmp_path, qgis_process) -> None:
    gpkg = tmp_path / "antwerp.gpkg"
    code, results, log = qgis_process("create_grid", EXTENT=SEED_EXTENT, TILE_SIZE=5000, CRS="EPSG:32631", OUTPUT=gpkg)
    assert code == 0, log
    assert results["TILE_COUNT"] == 16 and results["TILES"] == f"{gpkg}|layername=tiles"
    with JobDB.open(gpkg) as db:
        assert db.count_by_status() == {statuses.NOT_STARTED: 16} and db.crs == "EPSG:32631"
        assert db.geometry(1).bounds == (590000.0, 5660000.0, 595000.0, 5665000.0)

    out = tmp_path / "out"
    code, results, log = qgis_process(
        "run_jobs",
        JOB_DATABASE=gpkg,
        LOCAL_BACKEND="true",
        LOCAL_PIXEL_SIZE=200,
        PARAMETERS=TEMPORAL,
        PARALLEL_JOBS=4,
        POLL_INTERVAL=0.2,
        OUTPUT_FOLDER=out,
        timeout=180,
    )
    assert code == 0, log
    assert (results["FINISHED"], results["FAILED"], results["ACTIVE"]) == (16, 0, 0)
    assert "Run complete: 16 finished" in log
    with JobDB.open(gpkg) as db:
        rows = db.all_rows(["tile_id", "status", "result_status", "result_files"])
        record = db.run_record()
    assert {r["status"] for r in rows} == {statuses.FINISHED} and {r["result_status"] for r in rows} == {"downloaded"}
    assert record["job_spec"]["namespace"].endswith("/udp/cloud_free_composite.json")  # resumable from the file
    files = [f for r in rows for f in r["result_files"]]
    assert len(files) == 16 and all(f.startswith(str(out)) for f in files)

    vrt = tmp_path / "mosaic.vrt"
    code, results, log = qgis_process("load_results", JOB_DATABASE=gpkg, MODE=1, OUTPUT_VRT=vrt)
    assert code == 0, log
    assert results["COUNT"] == 16 and results["OUTPUT_VRT"] == str(vrt)
    with rasterio.open(vrt) as mosaic:
        assert mosaic.count == 3 and mosaic.descriptions[:1] in (("B04",), (None,))
        assert tuple(round(v) for v in mosaic.bounds) == (590000, 5660000, 610000, 5680000)
        assert len(set(mosaic.files)) == 17  # the VRT and its 16 tiles
        data = mosaic.read(1, masked=True)
        assert data.count() > 0.9 * data.size  # the tiles cover the mosaic

    code, results, log = qgis_process("load_results", JOB_DATABASE=gpkg, MODE=0)
    assert code == 0, log
    assert sorted(results["RESULT_LAYERS"]) == sorted(files)


def test_polygons_as_tiles_and_resume_errors(tmp_path, qgis_process) -> None:
    from osgeo import ogr, osr

    polygons = tmp_path / "fields.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(polygons))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    layer = ds.CreateLayer("fields", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    for name, (x, y) in (("north", (4.40, 51.25)), ("south", (4.40, 51.15))):
        feature = ogr.Feature(layer.GetLayerDefn())
        ring = f"{x} {y},{x + 0.05} {y},{x + 0.05} {y + 0.03},{x} {y + 0.03},{x} {y}"
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({ring}))"))
        feature["name"] = name
        layer.CreateFeature(feature)
    ds = None

    gpkg = tmp_path / "fields_run.gpkg"
    code, results, log = qgis_process(
        "create_grid", AOI_LAYER=polygons, POLYGONS_AS_TILES="true", TILE_ID_FIELD="name", OUTPUT=gpkg
    )
    assert code == 0, log
    assert results["TILE_COUNT"] == 2
    with JobDB.open(gpkg) as db:
        assert sorted(r["tile_id"] for r in db.all_rows(["tile_id"])) == ["north", "south"]

    # the same layer as an area of interest: 2 km tiles in its UTM zone
    code, results, log = qgis_process("create_grid", AOI_LAYER=polygons, TILE_SIZE=2000, OUTPUT=tmp_path / "aoi.gpkg")
    assert code == 0, log
    with JobDB.open(tmp_path / "aoi.gpkg") as db:
        assert db.crs == "EPSG:32631" and len(db) == results["TILE_COUNT"] > 4

    # clear errors, no output
    code, _, log = qgis_process("create_grid", TILE_SIZE=5000, OUTPUT=tmp_path / "none.gpkg")
    assert code != 0 and "area of interest" in log
    assert not (tmp_path / "none.gpkg").exists()
    code, _, log = qgis_process("run_jobs", JOB_DATABASE=gpkg, OUTPUT_FOLDER=tmp_path / "o", PARAMETERS="{oops")
    assert code != 0 and "not valid JSON" in log
    code, _, log = qgis_process("run_jobs", JOB_DATABASE=gpkg, OUTPUT_FOLDER=tmp_path / "o")
    assert code != 0 and "no job specification" in log  # nothing to resume from yet
    code, results, log = qgis_process("load_results", JOB_DATABASE=gpkg, MODE=1)
    assert code == 0 and results["COUNT"] == 0 and "No downloaded result yet" in log


def test_tiles_too_big_for_the_backend_are_split_until_every_pixel_is_computed(tmp_path, qgis_process) -> None:
    """Adaptive re-tiling: 5 km tiles of 100 m pixels (2,500 pixels) exceed the Local demo backend's
    1,200 pixels per job and fail out of memory; their quarters (625) fit, and so do the narrow
    tiles of the last column and row (1,000 and 400: the grid is not fitted here)."""
    gpkg = tmp_path / "big.gpkg"
    extent = "590000,602000,5660000,5667000 [EPSG:32631]"  # 12 x 7 km: columns 5, 5, 2 km; rows 5, 2 km
    code, results, log = qgis_process(
        "create_grid", EXTENT=extent, TILE_SIZE=5000, CRS="EPSG:32631", FIT="false", OUTPUT=gpkg
    )
    assert code == 0 and results["TILE_COUNT"] == 6, log
    code, results, log = qgis_process(
        "run_jobs",
        JOB_DATABASE=gpkg,
        LOCAL_BACKEND="true",
        LOCAL_PIXEL_SIZE=100,
        LOCAL_MAX_PIXELS=1200,
        PARAMETERS=TEMPORAL,
        PARALLEL_JOBS=4,
        POLL_INTERVAL=0.2,
        OUTPUT_FOLDER=tmp_path / "out",
        timeout=240,
    )
    assert code == 0, log
    assert (results["FINISHED"], results["FAILED"], results["ACTIVE"], results["SPLIT"]) == (12, 0, 0, 2)
    assert "Run complete: 12 finished and downloaded; 2 tiles too big for the backend were split into 8" in log
    assert "x0_y0: job" in log and "split into 4 tiles (x0_y0.0, x0_y0.1, x0_y0.2, x0_y0.3)" in log
    with JobDB.open(gpkg) as db:
        rows = {r["tile_id"]: r for r in db.all_rows(["tile_id", "status", "parent_tile_id", "result_files"])}
    assert {t for t, r in rows.items() if r["status"] == statuses.SPLIT} == {"x0_y0", "x1_y0"}
    assert "OutOfMemory" in "".join(open(f).read() for f in (tmp_path / "out").glob("job_*/errors.json"))
    children = {t: r for t, r in rows.items() if r["parent_tile_id"]}
    assert sorted(children) == [f"x{c}_y0.{q}" for c in (0, 1) for q in range(4)]
    assert {r["status"] for t, r in rows.items() if t not in ("x0_y0", "x1_y0")} == {statuses.FINISHED}
    assert not rows["x0_y0"]["result_files"] and all(r["result_files"] for r in children.values())

    vrt = tmp_path / "mosaic.vrt"
    code, results, log = qgis_process("load_results", JOB_DATABASE=gpkg, MODE=1, OUTPUT_VRT=vrt)
    assert code == 0 and results["COUNT"] == 12, log
    with rasterio.open(vrt) as mosaic:
        assert tuple(round(v) for v in mosaic.bounds) == (590000, 5660000, 602000, 5667000)
        assert mosaic.res == (100.0, 100.0)
        for band in (1, 2, 3):
            data = mosaic.read(band, masked=True)
            assert data.shape == (70, 120) and data.count() == data.size, band  # no pixel of the area missing
