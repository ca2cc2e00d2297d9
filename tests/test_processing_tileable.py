"""Processing in real headless QGIS: create_grid's FIT parameter (on by default, off gives openeo's
split_area tiles) and run_jobs refusing a process that cannot be tiled before any job is made."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback, QgsProject

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.processing.provider import PROVIDER_ID
from openeo_tile_jobs.tests import test_processing_model
from openeo_tile_jobs.tests.test_jobspec_apex import RAMONA, serve_catalogue

provider = test_processing_model.provider  # the plugin's Processing provider, registered

#: 20.3 km x 12 km in UTM 31N: 5 km squares leave a 300 m column and a 2 km row.
EXTENT = "590000,610300,5660000,5672000 [EPSG:32631]"


class Feedback(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []
        self.infos: list[str] = []

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N803 (QGIS API)
        self.errors.append(error)

    def pushInfo(self, info: str) -> None:
        self.infos.append(info)


@pytest.fixture()
def run(provider):
    registry = QgsApplication.processingRegistry()

    def run_algorithm(name: str, parameters: dict):
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        feedback = Feedback()
        results, ok = registry.createAlgorithmById(f"{PROVIDER_ID}:{name}").run(parameters, context, feedback)
        return ok, results, feedback

    return run_algorithm


def test_create_grid_fits_by_default_and_split_area_on_request(run, tmp_path):
    ok, results, feedback = run(
        "create_grid", {"EXTENT": EXTENT, "TILE_SIZE": 5000, "OUTPUT": str(tmp_path / "f.gpkg")}
    )
    assert ok and results["TILE_COUNT"] == 15
    assert any("15 tiles, each 4060 × 4000 m, in EPSG:32631" in line for line in feedback.infos), feedback.infos
    with JobDB.open(tmp_path / "f.gpkg") as db:
        assert db.run_record()["tiling"]["fit"] is True
        assert db.geometry(1).bounds == pytest.approx((590000.0, 5660000.0, 594060.0, 5664000.0))

    ok, results, feedback = run(
        "create_grid", {"EXTENT": EXTENT, "TILE_SIZE": 5000, "FIT": False, "OUTPUT": str(tmp_path / "s.gpkg")}
    )
    assert ok and results["TILE_COUNT"] == 15
    assert any("300 × 2000 m to 5000 × 5000 m" in line for line in feedback.infos), feedback.infos
    with JobDB.open(tmp_path / "s.gpkg") as db:
        assert db.run_record()["tiling"]["fit"] is False
        assert db.geometry(1).bounds == (590000.0, 5660000.0, 595000.0, 5665000.0)


def test_run_jobs_refuses_a_process_without_spatial_parameter_before_any_job(run, tmp_path, local_backend):
    gpkg = tmp_path / "ramona.gpkg"
    ok, _, _ = run("create_grid", {"EXTENT": EXTENT, "TILE_SIZE": 10000, "OUTPUT": str(gpkg)})
    assert ok
    with serve_catalogue() as catalogue:
        ok, _, feedback = run(
            "run_jobs",
            {
                "JOB_DATABASE": str(gpkg),
                "BACKEND_URL": local_backend.url,
                "NAMESPACE": f"{catalogue}/{RAMONA}.json",
                "PARAMETERS": '{"country": "benin"}',
                "MAX_RUNTIME": 60,
                "OUTPUT_FOLDER": str(tmp_path / "out"),
            },
        )
    assert not ok
    assert any("cannot be split into tiles" in e and "(country, year, month)" in e for e in feedback.errors)
    counts = local_backend.request_counts()
    assert not any(key.startswith("POST /jobs") for key in counts), counts  # no job was created
    with JobDB.open(gpkg) as db:
        assert db.count_by_status() == {statuses.NOT_STARTED: 6}
