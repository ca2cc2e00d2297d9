"""The algorithms in the graphical modeler's engine (a QgsProcessingModelAlgorithm chaining all three),
and what the toolbox does with their outputs: layers loaded on completion, styled and grouped."""

from __future__ import annotations

import json

import pytest
from qgis.core import (
    QgsApplication,
    QgsMultiBandColorRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingUtils,
    QgsProject,
)

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.gis.layer_tree import find_run_group
from openeo_tile_jobs.processing.provider import PROVIDER_ID, TileJobsProvider
from openeo_tile_jobs.tests.test_gis_support import clear_project

SEED_EXTENT = "590000,610000,5660000,5680000 [EPSG:32631]"


@pytest.fixture()
def provider(qgis_app):
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById(PROVIDER_ID)
    added = provider is None
    if added:
        provider = TileJobsProvider()
        registry.addProvider(provider)
    yield provider
    clear_project()
    if added:
        registry.removeProvider(provider)


def child(algorithm: str, child_id: str, **sources) -> QgsProcessingModelChildAlgorithm:
    step = QgsProcessingModelChildAlgorithm(f"{PROVIDER_ID}:{algorithm}")
    step.setChildId(child_id)
    for name, source in sources.items():
        if not isinstance(source, QgsProcessingModelChildParameterSource):
            source = QgsProcessingModelChildParameterSource.fromStaticValue(source)
        step.addParameterSources(name, [source])
    return step


def test_model_chains_create_run_load(tmp_path, provider) -> None:
    model = QgsProcessingModelAlgorithm("tile jobs", "tests")
    create = child(
        "create_grid", "create", EXTENT=SEED_EXTENT, TILE_SIZE=10000, CRS="EPSG:32631", OUTPUT=str(tmp_path / "m.gpkg")
    )
    run = child(
        "run_jobs",
        "run",
        JOB_DATABASE=QgsProcessingModelChildParameterSource.fromChildOutput("create", "OUTPUT"),
        LOCAL_BACKEND=True,
        LOCAL_PIXEL_SIZE=250.0,
        PARAMETERS=json.dumps({"temporal_extent": ["2024-06-01", "2024-07-01"]}),
        PARALLEL_JOBS=4,
        POLL_INTERVAL=0.1,
        OUTPUT_FOLDER=str(tmp_path / "out"),
    )
    load = child(
        "load_results",
        "load",
        JOB_DATABASE=QgsProcessingModelChildParameterSource.fromChildOutput("run", "JOB_DATABASE"),
        MODE=1,
    )
    output = QgsProcessingModelOutput("mosaic")
    output.setChildId("load")
    output.setChildOutputName("OUTPUT_VRT")
    load.setModelOutputs({"mosaic": output})
    for step in (create, run, load):
        model.addChildAlgorithm(step)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    results, ok = model.run({"load:mosaic": str(tmp_path / "m.vrt")}, context, feedback)
    assert ok, results
    with JobDB.open(tmp_path / "m.gpkg") as db:
        assert db.count_by_status() == {statuses.FINISHED: 4}
    assert results["load:mosaic"] == str(tmp_path / "m.vrt")
    assert (tmp_path / "m.vrt").is_file()


def test_outputs_are_loaded_styled_and_grouped(tmp_path, provider) -> None:
    project = QgsProject.instance()
    registry = QgsApplication.processingRegistry()

    def run_and_load(algorithm: str, parameters: dict) -> dict:
        context = QgsProcessingContext()
        context.setProject(project)
        feedback = QgsProcessingFeedback()
        alg = registry.createAlgorithmById(f"{PROVIDER_ID}:{algorithm}")
        results, ok = alg.run(parameters, context, feedback)
        assert ok, results
        # what the toolbox does once an algorithm has finished (QgsProcessingUtils / Postprocessing.py)
        for uri, details in context.layersToLoadOnCompletion().items():
            layer = QgsProcessingUtils.mapLayerFromString(uri, context)
            context.temporaryLayerStore().takeMapLayer(layer)
            layer.setName(details.name)
            details.project.addMapLayer(layer)
            if details.postProcessor():
                details.postProcessor().postProcessLayer(layer, context, feedback)
        return results

    gpkg = tmp_path / "toolbox.gpkg"
    run_and_load("create_grid", {"EXTENT": SEED_EXTENT, "TILE_SIZE": 10000, "OUTPUT": str(gpkg)})
    group = find_run_group(gpkg, project)
    assert group is not None and group.name() == "toolbox"
    tiles = group.children()[0].layer()
    assert tiles.renderer().classAttribute() == "status" and tiles.featureCount() == 4

    run_and_load(
        "run_jobs",
        {
            "JOB_DATABASE": str(gpkg),
            "LOCAL_BACKEND": True,
            "LOCAL_PIXEL_SIZE": 250.0,
            "PARAMETERS": json.dumps({"temporal_extent": ["2024-06-01", "2024-07-01"]}),
            "PARALLEL_JOBS": 4,
            "POLL_INTERVAL": 0.1,
            "OUTPUT_FOLDER": str(tmp_path / "out"),
        },
    )
    run_and_load("load_results", {"JOB_DATABASE": str(gpkg), "MODE": 0})
    results = [node.layer() for node in group.children()[1].findLayers()]
    assert group.children()[1].name() == "Results" and len(results) == 4
    assert all(isinstance(layer.renderer(), QgsMultiBandColorRenderer) for layer in results)
    assert sorted(layer.name() for layer in results) == sorted(r["tile_id"] for r in JobDB.open(gpkg).all_rows())
    del tiles, results, group
