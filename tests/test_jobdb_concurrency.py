"""core.jobdb across processes: a reader (OGR, as QGIS reads) never sees a torn state while
another process writes, and a writer killed with SIGKILL inside a transaction leaves a valid
file holding the previous state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from openeo_tile_jobs.core.grid import make_grid
from openeo_tile_jobs.core.jobdb import JobDB

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def make_db(path: Path, side: int) -> Path:
    bbox = {"west": 500000, "south": 5600000, "east": 500000 + side * 1000, "north": 5600000 + side * 1000}
    grid = make_grid({**bbox, "crs": "EPSG:32631"}, tile_size=1000, crs="EPSG:32631", confirm_many=True)
    JobDB.create(path, grid).close()
    return path


def spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


READER = """
    import sys, os
    from osgeo import ogr
    path, stop = sys.argv[1], sys.argv[2]
    ds = ogr.Open(path)
    layer = ds.GetLayerByName("tiles")
    print("ready", flush=True)
    reads, generations = 0, set()
    while not os.path.exists(stop):
        layer.ResetReading()
        values = [(f.GetField("attempts"), f.GetField("status")) for f in layer]
        attempts = {a for a, _ in values}
        statuses = {s for _, s in values}
        if len(values) != 400 or len(attempts) != 1 or len(statuses) != 1:
            print("TORN", len(values), sorted(attempts)[:5], sorted(statuses), flush=True)
            sys.exit(1)
        generations |= attempts
        reads += 1
    print("reads", reads, "generations", len(generations), flush=True)
"""

WRITER = """
    import sys
    from openeo_tile_jobs.core.jobdb import JobDB
    db = JobDB.open(sys.argv[1])
    fids = range(1, len(db) + 1)
    for k in range(1, 121):
        status = ("queued", "running", "finished")[k % 3]
        db.update_many({fid: {"attempts": k, "status": status} for fid in fids})
    db.close()
    print("wrote", k, flush=True)
"""


def test_reader_process_never_sees_a_torn_state(tmp_path):
    path = make_db(tmp_path / "run.gpkg", 20)  # 400 tiles
    stop = tmp_path / "stop"
    reader = spawn(READER, str(path), str(stop))
    try:
        assert reader.stdout.readline().strip() == "ready"
        writer = spawn(WRITER, str(path))
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert out.strip() == "wrote 120"
    finally:
        stop.touch()
        r_out, r_err = reader.communicate(timeout=60)
    assert reader.returncode == 0, r_out + r_err
    words = r_out.split()
    assert words[0] == "reads" and "TORN" not in r_out
    reads, generations = int(words[1]), int(words[3])
    assert reads >= 5 and generations >= 3, r_out  # it really read while the writer wrote
    with JobDB.open(path) as db:
        assert db.count_by_status() == {"queued": 400}  # k = 120: 120 % 3 == 0
        assert {r["attempts"] for r in db.all_rows(["attempts"])} == {120}


KILLED_WRITER = """
    import sys, time
    from openeo_tile_jobs.core.jobdb import JobDB
    db = JobDB.open(sys.argv[1])
    db.update_many({fid: {"status": "finished", "id": f"job-{fid}"} for fid in range(1, 11)})  # committed
    db.conn.execute("PRAGMA cache_size = 8")  # tiny cache: the transaction's pages spill into the WAL
    calls = 0
    def progress():
        global calls
        calls += 1
        if calls == 200:  # well inside update_many's transaction
            print("inside", flush=True)
            time.sleep(600)
        return 0
    db.conn.set_progress_handler(progress, 1000)
    db.update_many({fid: {"status": "running", "attempts": 7} for fid in range(1, len(db) + 1)})
    print("committed?!", flush=True)
"""


def test_writer_killed_mid_transaction_leaves_the_previous_state(tmp_path):
    path = make_db(tmp_path / "run.gpkg", 100)  # 10,000 tiles
    writer = spawn(KILLED_WRITER, str(path))
    try:
        line = writer.stdout.readline().strip()
        assert line == "inside", line + writer.stderr.read()
        wal = Path(str(path) + "-wal")
        wal_size = wal.stat().st_size
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == -signal.SIGKILL
    assert wal_size > 100_000  # the killed transaction had already written pages to the WAL
    with JobDB.open(path) as db:
        assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.conn.execute("SELECT rtreecheck('rtree_tiles_geom')").fetchone()[0] == "ok"
        assert db.count_by_status() == {"finished": 10, "not_started": 9990}
        assert db.get(10)["id"] == "job-10" and db.get(11)["attempts"] == 0
        db.update(11, status="queued")  # and it is writable again
        assert db.get(11)["status"] == "queued"
    out = subprocess.run(["ogrinfo", "-so", str(path), "tiles"], capture_output=True, text=True, timeout=60).stdout
    assert "Feature Count: 10000" in out


def test_reader_sees_committed_rows_quickly(tmp_path):
    """The layer refresh the tile layer does after a write: a fresh OGR read sees it at once."""
    from osgeo import ogr

    path = make_db(tmp_path / "run.gpkg", 10)
    with JobDB.open(path) as db:
        ds = ogr.Open(str(path))
        try:
            layer = ds.GetLayerByName("tiles")
            t0 = time.perf_counter()
            db.update_many({5: {"status": "error", "last_error": "boom"}})
            layer.SetAttributeFilter("status = 'error'")
            assert [f.GetFID() for f in layer] == [5]
            assert time.perf_counter() - t0 < 1.0
        finally:
            ds = None
