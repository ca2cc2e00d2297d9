"""Helpers shared by the tests of the panel (tests/test_ui_*.py)."""

from __future__ import annotations

from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle

from openeo_tile_jobs.ui import local_demo
from openeo_tile_jobs.ui.aoi import aoi_from_rectangle

UTM31 = QgsCoordinateReferenceSystem("EPSG:32631")
AOI = QgsRectangle(500_000, 5_000_000, 520_000, 5_020_000)  # 2 x 2 tiles of 10 km


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
