"""The ``openeo_tile_jobs`` Processing provider.

The algorithms import shapely, pyproj, rasterio and openeo: they are imported only when QGIS
asks for the algorithms, and only when those packages are there. Without them the provider
lists no algorithm and says what is missing (in the log and in its long name), instead of
an ImportError inside ``loadAlgorithms`` that aborts ``qgis_process``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..core import dependencies

log = logging.getLogger(__name__)
PROVIDER_ID = "openeo_tile_jobs"
ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "icon.svg"


class TileJobsProvider(QgsProcessingProvider):
    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "openEO Tile Jobs"

    def longName(self) -> str:
        missing = dependencies.missing_runtime()
        if missing:
            return f"{self.name()} (needs the Python packages {', '.join(missing)})"
        return self.name()

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:
        return str(ICON_PATH)

    def loadAlgorithms(self) -> None:
        for algorithm in self._algorithms():
            self.addAlgorithm(algorithm)

    def _algorithms(self) -> list:
        """The provider's algorithms (none while a requirement is missing)."""
        missing = dependencies.missing_runtime()
        if missing:
            log.warning(
                "No Processing algorithms: the Python packages %s are missing. Install them "
                "with the QPIP plugin, or run: %s",
                ", ".join(missing),
                dependencies.install_command(),
            )
            return []
        from ..gis.native_libs import isolate_bundled_libraries

        isolate_bundled_libraries()  # before the algorithms import shapely/pyproj (qgis_process)
        from .create_grid import CreateGridAlgorithm
        from .load_results import LoadResultsAlgorithm
        from .run_jobs import RunJobsAlgorithm

        return [CreateGridAlgorithm(), RunJobsAlgorithm(), LoadResultsAlgorithm()]
