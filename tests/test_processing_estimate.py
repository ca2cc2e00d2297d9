"""``run_jobs``'s estimate through ``qgis_process.bin`` against a Local demo backend of the test:
the ESTIMATE outputs before the start (the estimate's job is the typical tile's job), a
feedback line of the refined estimate during the run, and a backend without estimates."""

from __future__ import annotations

import json

import pytest
import test_processing_algorithms as algorithms
from engine_crash_worker import listing

from openeo_tile_jobs.core.jobdb import JobDB

EXTENT = "590000,600000,5660000,5670000 [EPSG:32631]"  # 2 x 2 tiles of 5 km
TEMPORAL = json.dumps({"temporal_extent": ["2024-06-01", "2024-07-01"]})
pytestmark = algorithms.pytestmark  # needs qgis_process.bin
qgis_process = algorithms.qgis_process  # the fixture: run(algorithm, **parameters)


def run_jobs(qgis_process, tmp_path, backend):
    gpkg = tmp_path / "run.gpkg"
    code, _, log = qgis_process("create_grid", EXTENT=EXTENT, TILE_SIZE=5000, CRS="EPSG:32631", OUTPUT=gpkg)
    assert code == 0, log
    code, results, log = qgis_process(
        "run_jobs",
        JOB_DATABASE=gpkg,
        BACKEND_URL=backend.url,
        NAMESPACE=backend.demo_process_url,
        PARAMETERS=TEMPORAL,
        PARALLEL_JOBS=2,
        POLL_INTERVAL=0.2,
        OUTPUT_FOLDER=tmp_path / "out",
        timeout=180,
    )
    assert code == 0, log
    assert results["FINISHED"] == 4
    return gpkg, results, log


def test_estimate_outputs_before_the_start(qgis_process, tmp_path, local_backend_factory) -> None:
    backend = local_backend_factory(run_time=1.0)
    gpkg, results, log = run_jobs(qgis_process, tmp_path, backend)
    assert "the backend's estimate for tile" in results["ESTIMATE"] and "at 2 jobs at a time" in results["ESTIMATE"]
    assert results["ESTIMATED_SECONDS"] > 0
    assert "Estimate now: " in log  # refined from the finished tiles during the run
    with JobDB.open(gpkg) as db:
        billed = db.sum_costs()[0]
        job_id = db.run_record()["estimate"]["job_id"]
        assert job_id in {r["id"] for r in db.all_rows(["id"])}  # the estimate's job is a tile's job
    assert results["ESTIMATED_CREDITS"] == pytest.approx(billed, rel=0.01)
    assert len(listing(backend.url)) == 4  # one job per tile, none made for the estimate alone
    assert backend.request_counts()["GET /jobs/{job_id}/estimate"] == 1


def test_no_estimate_endpoint_says_so(qgis_process, tmp_path, local_backend_factory) -> None:
    backend = local_backend_factory(offer_estimate=False)
    _, results, log = run_jobs(qgis_process, tmp_path, backend)
    assert results["ESTIMATED_CREDITS"] is None
    assert "offers no estimate" in results["ESTIMATE"] and "offers no estimate" in log
    assert len(listing(backend.url)) == 4
