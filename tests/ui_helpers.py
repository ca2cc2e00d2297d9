"""Helpers shared by the tests of the panel (tests/test_ui_*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsRectangle, QgsSettings

from openeo_tile_jobs.ui import local_demo
from openeo_tile_jobs.ui.aoi import aoi_from_rectangle
from openeo_tile_jobs.ui.dock import TileJobsDock

UTM31 = QgsCoordinateReferenceSystem("EPSG:32631")
AOI = QgsRectangle(500_000, 5_000_000, 520_000, 5_020_000)  # 2 x 2 tiles of 10 km
SETTINGS_GROUP = "openeo_tile_jobs"


@contextmanager
def panel(iface, canvas=None, qtbot=None, extent: Optional[QgsRectangle] = None) -> Iterator[TileJobsDock]:
    """A panel with fresh settings; with ``canvas``: its window shown, in UTM 31N at ``extent``.
    Afterwards the run is stopped and the panel, its layers and its settings are gone."""
    QgsSettings().remove(SETTINGS_GROUP)
    if canvas is not None:
        window = canvas.window()
        window.resize(1000, 700)
        window.show()
        qtbot.waitUntil(lambda: canvas.mapSettings().outputSize().width() > 700)
        canvas.setDestinationCrs(UTM31)
        canvas.setExtent(extent or AOI)
    dock = TileJobsDock(None, iface=iface)
    try:
        yield dock
    finally:
        dock.close_down()
        if qtbot is not None:
            qtbot.waitUntil(lambda: not dock.run_controller.running, timeout=10_000)
        dock.close()
        dock.deleteLater()
        QgsProject.instance().removeAllMapLayers()
        QgsSettings().remove(SETTINGS_GROUP)
        local_demo.use_backend(None)


def ready_to_run(dock, qtbot, backend, tmp_path, parallel_jobs: int = 1) -> None:
    """Area, grid, the backend (no sign-in), the demo process and the output folder, through the pages."""
    dock.aoi_controller.set_aoi(aoi_from_rectangle(AOI, UTM31))
    grid = dock.grid_page
    grid.tile_size.setValue(10_000)
    grid.database.setFilePath(str(tmp_path / "run.gpkg"))
    qtbot.waitUntil(lambda: grid.preview_count == 4, timeout=10_000)
    grid.create_grid()
    qtbot.waitUntil(lambda: dock.run_controller.tile_layer is not None, timeout=10_000)
    page = dock.backends_page
    page.start_add()
    page.name.setText("Local demo")
    page.url.setText(backend.url)
    page.auth.setCurrentIndex(page.auth.findData("none"))
    page.parallel.setValue(parallel_jobs)
    assert page.save_editor() is not None
    local_demo.use_backend(backend)
    process = dock.process_page
    assert process.use_demo_process()
    qtbot.waitUntil(lambda: process.resolved is not None, timeout=15_000)
    process.form.editors["temporal_extent"].set_value(["2024-06-01", "2024-07-01"])
