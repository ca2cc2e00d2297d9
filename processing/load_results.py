"""``openeo_tile_jobs:load_results``: a job database's downloaded results as raster layers or one VRT mosaic."""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
)

from ..core.jobdb import JobDB, JobDBError
from ..core.run_loop import downloaded_results
from ..core.run_setup import recorded_output_dir
from ..gis.mosaic import build_vrt, inspect
from ..gis.result_layers import KIND_MOSAIC, KIND_RESULT
from .common import TileJobsAlgorithm, load_on_completion, result_post_processor, tr

MODE_LAYERS = 0
MODE_MOSAIC = 1


class LoadResultsAlgorithm(TileJobsAlgorithm):
    NAME = "load_results"
    DISPLAY_NAME = "Load tile results"
    HELP = (
        "Loads the downloaded GeoTIFF results of a job database's finished tiles: one raster layer per "
        "result, or one virtual mosaic (GDAL VRT) over all of them, which scales to thousands of tiles. "
        "RGB results (B04, B03, B02) get the fixed Sentinel-2 rendering of the openeo notebook "
        "(reflectance 0.02-0.40 red and green, 0.02-0.45 blue, gamma 2.2), the same on every tile."
    )

    JOB_DATABASE = "JOB_DATABASE"
    MODE = "MODE"
    OUTPUT_VRT = "OUTPUT_VRT"
    RESULT_LAYERS = "RESULT_LAYERS"
    COUNT = "COUNT"

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterFile(self.JOB_DATABASE, tr("Job database"), extension="gpkg"))
        self.addParameter(
            QgsProcessingParameterEnum(
                self.MODE, tr("Load as"), [tr("One layer per result"), tr("One virtual mosaic (VRT)")], defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_VRT,
                tr("Mosaic (VRT)"),
                tr("Virtual raster (*.vrt)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputMultipleLayers(self.RESULT_LAYERS, tr("Result layers")))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, tr("Number of result files")))

    def processAlgorithm(self, parameters, context, feedback):
        path = self.parameterAsFile(parameters, self.JOB_DATABASE, context)
        mode = self.parameterAsEnum(parameters, self.MODE, context)
        try:
            with JobDB.open(path) as db:
                results = downloaded_results(db)
                output_dir = str(recorded_output_dir(db.run_record(), path))
        except (JobDBError, OSError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        files = [(str(tile), f) for tile, paths in sorted(results.items(), key=lambda i: str(i[0])) for f in paths]
        feedback.pushInfo(tr("{files} result files of {tiles} tiles").format(files=len(files), tiles=len(results)))
        if not files:
            feedback.pushWarning(tr("No downloaded result yet."))
            return {self.RESULT_LAYERS: [], self.COUNT: 0, self.OUTPUT_VRT: None}

        if mode == MODE_LAYERS:
            for tile, file in files:
                name = tile if sum(1 for t, _ in files if t == tile) == 1 else f"{tile} ({Path(file).stem})"
                load_on_completion(context, file, name, result_post_processor(path, KIND_RESULT, tile), KIND_RESULT)
            return {self.RESULT_LAYERS: [f for _, f in files], self.COUNT: len(files), self.OUTPUT_VRT: None}

        vrt = self.parameterAsFileOutput(parameters, self.OUTPUT_VRT, context)
        if not vrt:
            vrt = os.path.join(output_dir, f"{Path(path).stem}_mosaic.vrt")
        if not vrt.lower().endswith(".vrt"):
            vrt += ".vrt"
        groups: dict = {}
        for index, (_, file) in enumerate(files):
            if feedback.isCanceled():
                return {}
            try:
                info = inspect(file)
            except RuntimeError as exc:
                feedback.pushWarning(tr("Skipped {file}: {error}").format(file=file, error=exc))
                continue
            groups.setdefault(info.key, []).append((file, info.nodata))
            feedback.setProgress(80.0 * (index + 1) / len(files))
        outputs = []
        for number, members in enumerate(groups.values()):
            target = vrt if number == 0 else f"{vrt[:-4]}_{number + 1}.vrt"
            nodata = next((n for _, n in members if n is not None), None)
            build_vrt([f for f, _ in members], target, nodata)
            outputs.append(target)
            name = "Results mosaic" if number == 0 else f"Results mosaic {number + 1}"
            load_on_completion(context, target, name, result_post_processor(path, KIND_MOSAIC), KIND_MOSAIC)
        if len(outputs) > 1:
            feedback.pushWarning(tr("Results in different CRSs or band layouts: one mosaic per kind."))
        feedback.setProgress(100)
        return {self.RESULT_LAYERS: outputs, self.COUNT: len(files), self.OUTPUT_VRT: outputs[0]}
