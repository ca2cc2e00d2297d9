"""How far a run is, read from its job database: what decides "resume" in the demo and in QGIS."""

from __future__ import annotations

from engine_crash_worker import make_db

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.run_counts import read_run_counts


def test_counts_and_what_is_left(tmp_path) -> None:
    db = make_db(tmp_path / "run.gpkg", cols=2, rows=2)
    fids = [row["fid"] for row in db.all_rows(columns=["fid"])]
    assert read_run_counts(db).unfinished and read_run_counts(db).active == 4

    db.update_many({fid: {"status": statuses.FINISHED, "result_status": "downloaded"} for fid in fids})
    done = read_run_counts(db)
    assert (done.total, done.active, done.unfinished) == (4, 0, False)

    db.update(fids[0], result_status="failed")  # a download to try again: resuming still has work
    failed = read_run_counts(db)
    assert failed.failed_downloads == 1 and failed.unfinished

    db.update(fids[0], result_status="downloading")
    assert read_run_counts(db).pending_downloads == 1
    db.close()
    by_path = read_run_counts(tmp_path / "run.gpkg")
    assert by_path.counts == {statuses.FINISHED: 4} and by_path.downloads == {"downloaded": 3, "downloading": 1}
