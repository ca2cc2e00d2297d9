"""The Grid step's "Fit the tiles to the area" checkbox, in real headless QGIS: the preview states the
count and the smallest and largest tile, and the created job database records the choice."""

from __future__ import annotations

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsRectangle
from qgis.PyQt.QtCore import Qt

from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.tests import test_ui_dock
from openeo_tile_jobs.ui.aoi import Aoi

dock = test_ui_dock.dock  # the panel, as the dock tests make it

#: The issue's rectangle: 20 km x 20 km on the ground, drawn in lon/lat near Antwerp (see test_grid).
DRAWN = QgsRectangle(4.35, 51.15, 4.63583088238354, 51.32977064934602)


@pytest.fixture()
def grid_page(dock):
    page = dock.grid_page
    page.set_aoi(Aoi(QgsGeometry.fromRect(DRAWN), QgsCoordinateReferenceSystem("EPSG:4326"), "test"))
    page.tile_size.setValue(5000)
    return page


def wait_for_preview(page, qtbot, fit: bool) -> str:
    qtbot.waitUntil(lambda: page.preview_grid is not None and page.preview_grid.fit == fit, timeout=10_000)
    return page.count_label.text()


def test_fit_is_on_by_default_and_the_preview_names_the_tile_sizes(grid_page, qtbot, tmp_path) -> None:
    assert grid_page.fit.isChecked() and grid_page.fit.isEnabled()
    text = wait_for_preview(grid_page, qtbot, fit=True)
    assert text.startswith("25 tiles, each 4072 × 4079 m, in EPSG:32631"), text

    grid_page.fit.setChecked(False)  # openeo's split_area tiles: full squares and slivers
    text = wait_for_preview(grid_page, qtbot, fit=False)
    assert text.startswith("24 tiles, 358 × 5000 m to 5000 × 5000 m, in EPSG:32631"), text

    grid_page.fit.setChecked(True)
    wait_for_preview(grid_page, qtbot, fit=True)
    database = tmp_path / "fitted.gpkg"
    grid_page.database.setFilePath(str(database))
    qtbot.mouseClick(grid_page.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: grid_page.created_grid is not None, timeout=10_000)
    with JobDB.open(database) as db:
        tiling = db.run_record()["tiling"]
    assert tiling["fit"] is True and tiling["tile_count"] == 25 and tiling["anchor"] == "aoi"


def test_a_global_grid_disables_fit(grid_page, qtbot) -> None:
    grid_page.anchor.setCurrentIndex(grid_page.anchor.findData("global"))
    assert not grid_page.fit.isEnabled()
    text = wait_for_preview(grid_page, qtbot, fit=False)
    assert "5000 × 5000 m" in text and grid_page.preview_grid.anchor == "global"
