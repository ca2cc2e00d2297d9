"""The ``openeo_tile_jobs`` Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

PROVIDER_ID = "openeo_tile_jobs"
ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "icon.svg"


class TileJobsProvider(QgsProcessingProvider):
    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "openEO Tile Jobs"

    def longName(self) -> str:
        return self.name()

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:
        return str(ICON_PATH)

    def loadAlgorithms(self) -> None:
        for algorithm in self._algorithms():
            self.addAlgorithm(algorithm)

    def _algorithms(self) -> list:
        """The provider's algorithms."""
        from ..gis.native_libs import isolate_bundled_libraries

        isolate_bundled_libraries()  # before the algorithms import shapely/pyproj (qgis_process)
        from .create_grid import CreateGridAlgorithm
        from .load_results import LoadResultsAlgorithm
        from .run_jobs import RunJobsAlgorithm

        return [CreateGridAlgorithm(), RunJobsAlgorithm(), LoadResultsAlgorithm()]
