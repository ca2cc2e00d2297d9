"""core.retile: splitting a tile into its quarters in the job database, and what says "too big".

The split is checked as a user of the run file would: the ids, the geometry (quarters of the
parent that together are the parent), the R-tree and the status counts kept by the file, a
crash (SIGKILL) inside the split's transaction, and openeo reading the exported database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import shapely

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.engine_config import EngineConfig
from openeo_tile_jobs.core.grid import grid_from_polygons, make_grid
from openeo_tile_jobs.core.jobdb import PARENT_COLUMN, JobDB
from openeo_tile_jobs.core.jobdb_exchange import export_openeo_db, import_openeo_db
from openeo_tile_jobs.core.retile import (
    SizeErrorRules,
    SplitError,
    plan_children,
    split_children,
    split_level,
    split_tile,
)

AOI = {"west": 590000, "south": 5660000, "east": 600000, "north": 5670000, "crs": "EPSG:32631"}


@pytest.fixture()
def db(tmp_path):
    with JobDB.create(tmp_path / "run.gpkg", make_grid(AOI, tile_size=5000, crs="EPSG:32631")) as database:
        yield database


def rtree_fids(db: JobDB, bounds) -> set[int]:
    x0, y0, x1, y1 = bounds
    with db.lock:
        rows = db.conn.execute(
            "SELECT id FROM rtree_tiles_geom WHERE maxx > ? AND minx < ? AND maxy > ? AND miny < ?", (x0, x1, y0, y1)
        ).fetchall()
    return {r[0] for r in rows}


def test_a_split_writes_the_parent_split_and_its_four_quarters(db):
    parent = db.get_by_tile_id("x1_y0")
    db.update(parent["fid"], status=statuses.RUNNING, id="job-1", attempts=1)
    result = split_tile(db, parent["fid"], {"last_error": "OutOfMemory", "costs": 1.5})

    assert result.parent_tile_id == "x1_y0" and result.level == 1
    assert [t for _, t in result.children] == ["x1_y0.0", "x1_y0.1", "x1_y0.2", "x1_y0.3"]
    after = db.get(parent["fid"])
    assert (after["status"], after["last_error"], after["costs"], after["id"]) == ("split", "OutOfMemory", 1.5, "job-1")
    children = split_children(db, "x1_y0")
    assert [c["tile_id"] for c in children] == ["x1_y0.0", "x1_y0.1", "x1_y0.2", "x1_y0.3"]
    assert {c["status"] for c in children} == {statuses.NOT_STARTED}
    assert {(c["row"], c["col"], c[PARENT_COLUMN]) for c in children} == {(0, 1, "x1_y0")}
    assert {c["attempts"] for c in children} == {0} and {c["id"] for c in children} == {None}

    parent_geom = db.geometry(parent["fid"])
    geoms = db.geometries([c["fid"] for c in children])
    x0, y0, x1, y1 = parent_geom.bounds  # 595000 5660000 600000 5665000
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    expected = [(x0, y0, xm, ym), (xm, y0, x1, ym), (x0, ym, xm, y1), (xm, ym, x1, y1)]  # SW, SE, NW, NE
    assert [geoms[c["fid"]].bounds for c in children] == expected
    assert shapely.union_all(list(geoms.values())).equals(parent_geom)
    assert sum(g.area for g in geoms.values()) == pytest.approx(parent_geom.area)
    # the file's own bookkeeping: status counts (triggers) and the R-tree QGIS queries
    assert db.count_by_status() == {statuses.NOT_STARTED: 7, statuses.SPLIT: 1}
    assert len(db) == 8
    assert rtree_fids(db, (xm - 1, y0 + 1, xm + 1, y0 + 2)) >= {c["fid"] for c in children[:2]}
    # the EPSG:4326 bbox the child's job gets is the child's own
    assert db.bbox(children[3]["fid"], crs="EPSG:32631")["west"] == xm


def test_a_tile_is_split_once_and_the_levels_are_counted(db):
    result = split_tile(db, 1)
    with pytest.raises(SplitError, match="already split"):
        split_tile(db, 1)
    assert len(db) == 8  # no duplicates
    child = result.children[2][0]
    grand = split_tile(db, child)
    assert grand.level == 2 and grand.children[0][1] == "x0_y0.2.0"
    assert [split_level(db, t) for t in ("x0_y0", "x0_y0.2", "x0_y0.2.0")] == [0, 1, 2]
    assert db.count_by_status() == {statuses.NOT_STARTED: 3 + 3 + 4, statuses.SPLIT: 2}


def test_a_clipped_tile_splits_into_the_quarters_that_hold_some_of_it(tmp_path):
    triangle = shapely.Polygon([(0, 0), (1000, 0), (0, 1000)])  # nothing in the north-east quarter
    grid = grid_from_polygons([triangle], crs="EPSG:32631", tile_ids=["t0"])
    with JobDB.create(tmp_path / "tri.gpkg", grid) as db:
        result = split_tile(db, 1)
        ids = [t for _, t in result.children]
        geoms = db.geometries([f for f, _ in result.children])
        parent = db.geometry(1)
    assert ids == ["t0.0", "t0.1", "t0.2"]
    assert shapely.union_all(list(geoms.values())).equals(parent)  # the same area (more vertices)
    assert sum(g.area for g in geoms.values()) == pytest.approx(parent.area)
    assert plan_children("empty", shapely.box(0, 0, 1, 1))[3].geometry.bounds == (0.5, 0.5, 1.0, 1.0)


def test_a_quarter_cut_in_two_is_one_child_of_two_parts(tmp_path):
    comb = shapely.box(0, 0, 1000, 1000).difference(shapely.box(200, 0, 300, 600))  # a notch through the SW quarter
    grid = grid_from_polygons([comb, shapely.box(1000, 0, 2000, 1000)], crs="EPSG:32631", tile_ids=["c", "b"])
    with JobDB.create(tmp_path / "comb.gpkg", grid) as db:
        result = split_tile(db, 1)
        geoms = db.geometries([f for f, _ in result.children])
        parent = db.geometry(1)
    assert [t for _, t in result.children] == ["c.0", "c.1", "c.2", "c.3"]
    assert [geoms[f].geom_type for f, _ in result.children] == ["MultiPolygon", "Polygon", "Polygon", "Polygon"]
    assert shapely.union_all(list(geoms.values())).equals(parent)


def test_size_error_rules_match_codes_and_log_texts():
    rules = SizeErrorRules()
    local_backend_log = {
        "level": "error",
        "code": "OutOfMemory",
        "message": "Your batch job failed because the executors ran out of memory: it needs about 0.31 GB",
    }
    assert rules.match([local_backend_log]) == "error code OutOfMemory"
    assert rules.match([{"message": "ExecutorLostFailure: Container killed by YARN for exceeding memory limits"}])
    assert rules.match([{"message": "java.lang.OutOfMemoryError: Java heap space"}])
    assert rules.match([{"code": "Internal", "message": "Injected fault: this job fails on purpose"}]) is None
    assert rules.match([]) is None
    custom = SizeErrorRules(codes=(), patterns=(r"request too large",))
    assert custom.match([local_backend_log]) is None
    assert custom.match([{"message": "Request TOO LARGE for this backend"}]) == "log text 'Request TOO LARGE'"
    with pytest.raises(ValueError, match="size-error pattern"):
        SizeErrorRules(patterns=("([unclosed",))


def test_engine_config_keeps_the_split_settings_through_the_run_record(tmp_path):
    config = EngineConfig(output_dir=tmp_path, split_levels=1, split_log_patterns=("too big",))
    again = EngineConfig.from_dict(config.to_dict())  # the run record is JSON: lists come back
    assert again.split_levels == 1 and again.split_log_patterns == ("too big",)
    assert again.split_error_codes == ("OutOfMemory",)
    assert EngineConfig(output_dir=tmp_path).split_levels == 2
    with pytest.raises(ValueError):
        EngineConfig(output_dir=tmp_path, split_levels=-1)


_CRASH_SCRIPT = """
import os, signal, sys
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.core.retile import split_tile
db = JobDB.open(sys.argv[1])
split_tile(db, 2, {"last_error": "too big"}, before_commit=lambda: os.kill(os.getpid(), signal.SIGKILL))
"""


def test_a_crash_inside_the_split_leaves_the_parent_as_it_was(db):
    db.update(2, status=statuses.RUNNING, id="job-2")
    before = db.all_rows()
    proc = subprocess.run([sys.executable, "-c", _CRASH_SCRIPT, str(db.path)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with JobDB.open(db.path) as reopened:
        assert reopened.all_rows() == before  # nothing of the half-made split
        assert reopened.count_by_status() == {statuses.NOT_STARTED: 3, statuses.RUNNING: 1}
        result = split_tile(reopened, 2)  # the resumed run splits it for real
        assert len(result.children) == 4 and len(reopened) == 8


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_openeo_export_of_a_split_run_reads_back(db, tmp_path, suffix):
    from openeo.extra.job_management import get_job_db

    db.update(1, status=statuses.RUNNING, id="job-1")
    split_tile(db, 1, {"last_error": "OutOfMemory"})
    db.update(5, status=statuses.FINISHED, id="job-5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = export_openeo_db(db, tmp_path / f"jobs{suffix}")
        theirs = get_job_db(exported)
        assert theirs.count_by_status() == {"split": 1, "finished": 1, "not_started": 6}
        frame = theirs.read()
        assert list(frame["tile_id"])[-4:] == ["x0_y0.0", "x0_y0.1", "x0_y0.2", "x0_y0.3"]
        assert list(frame[PARENT_COLUMN].fillna(""))[-4:] == ["x0_y0"] * 4
        parent = frame.geometry.iloc[0]  # lon/lat: edge midpoints reprojected lie off the straight edge (0.01 %)
        assert shapely.union_all(list(frame.geometry)[-4:]).symmetric_difference(parent).area < 1e-3 * parent.area
        back = import_openeo_db(exported, tmp_path / f"back{Path(suffix).stem}.gpkg")
    with back:
        keep = ["tile_id", "status", "id", PARENT_COLUMN]
        assert back.all_rows(keep) == db.all_rows(keep)
        assert split_level(back, "x0_y0.3") == 1


def test_parent_column_is_added_to_a_run_file_made_before_re_tiling(tmp_path):
    path = tmp_path / "old.gpkg"
    JobDB.create(path, make_grid(AOI, tile_size=5000, crs="EPSG:32631")).close()
    import sqlite3

    con = sqlite3.connect(path)
    con.execute(f"DROP INDEX idx_tiles_{PARENT_COLUMN}")
    con.execute(f"ALTER TABLE tiles DROP COLUMN {PARENT_COLUMN}")
    con.commit()
    con.close()
    with JobDB.open(path) as old:
        assert PARENT_COLUMN not in old.columns and split_level(old, "x0_y0") == 0
        split_tile(old, 4)
        assert split_children(old, "x1_y1")[0]["tile_id"] == "x1_y1.0"
    assert os.path.getsize(path) > 0
