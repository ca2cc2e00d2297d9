"""Render every step of the panel and the map, before, during and after a run, into docs/.

Runs headless (QT_QPA_PLATFORM=offscreen) in a temporary QGIS profile against a Local demo
backend started here; the OIDC device sign-in is approved the way the user would in the
browser. Usage: ``make screenshots`` (or ``.venv/bin/python scripts/screenshots.py [OUT] [--small]``;
``--small``: 4 tiles instead of 24, for the test that the script ends cleanly).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
PROFILE = Path(tempfile.mkdtemp(prefix="otj-screens-"))
os.environ["QGIS_CUSTOM_CONFIG_PATH"] = str(PROFILE)

from qgis.core import (  # noqa: E402 (the profile path must be set before QGIS starts)
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProject,
    QgsRectangle,
)
from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsMapCanvas, QgsMessageBar  # noqa: E402
from qgis.PyQt.QtCore import QCoreApplication, QEvent, Qt  # noqa: E402
from qgis.PyQt.QtWidgets import QMainWindow, QVBoxLayout, QWidget  # noqa: E402

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
OUT = Path(ARGS[0]) if ARGS else Path(__file__).resolve().parent.parent / "docs"
#: The area drawn: 30 km x 20 km (24 tiles of 5 km), or 10 km x 10 km with --small.
AOI_EAST, AOI_NORTH = (510_000, 5_010_000) if "--small" in sys.argv else (530_000, 5_020_000)
WINDOW_SIZE = (1280, 820)
DOCK_WIDTH = 400


class Iface:
    """The few QgisInterface calls the panel makes."""

    def __init__(self, window: QMainWindow, canvas: QgsMapCanvas, bar: QgsMessageBar) -> None:
        self._window, self._canvas, self._bar = window, canvas, bar

    def mainWindow(self) -> QMainWindow:
        return self._window

    def mapCanvas(self) -> QgsMapCanvas:
        return self._canvas

    def messageBar(self) -> QgsMessageBar:
        return self._bar

    def activeLayer(self):
        return None


def wait_until(app: QgsApplication, condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        app.processEvents()
        time.sleep(0.02)


def settle(app: QgsApplication, canvas: QgsMapCanvas, seconds: float = 0.3) -> None:
    """Let the canvas finish drawing and the widgets repaint."""
    canvas.refresh()
    end = time.monotonic() + seconds
    while time.monotonic() < end or canvas.isDrawing():
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    app = QgsApplication([], True)
    app.initQgis()
    auth = QgsApplication.authManager()
    auth.setMasterPassword("screenshots", True)  # the temporary profile's authentication database
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        capture(app)
    finally:
        # Nothing of QGIS may outlive exitQgis(): a map layer, a GDAL dataset or a canvas destroyed
        # after it segfaults the process. capture() has returned, so its window, canvas and panel
        # are gone; the deletions they queued run here, then the garbage of cycles.
        QgsApplication.taskManager().cancelAll()
        wait_until(app, lambda: QgsApplication.taskManager().count() == 0, what="the background tasks")
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()
        app.exitQgis()
    return 0


def capture(app: QgsApplication) -> None:
    """Drive the panel and write the PNGs; everything it creates is removed before it returns."""
    from openeo_tile_jobs.local_backend import LocalBackend
    from openeo_tile_jobs.ui import local_demo
    from openeo_tile_jobs.ui.aoi import aoi_from_rectangle
    from openeo_tile_jobs.ui.dock import TileJobsDock

    data_dir = PROFILE / "local-backend"
    backend = LocalBackend(data_dir=data_dir, port=0, auth="oidc", pixel_size=100.0, workers=2, min_run_time=1.5)
    backend.start()
    local_demo.use_backend(backend)
    window = QMainWindow()
    central = QWidget()
    column = QVBoxLayout(central)
    column.setContentsMargins(0, 0, 0, 0)
    bar = QgsMessageBar()
    canvas = QgsMapCanvas()
    canvas.setCanvasColor(Qt.GlobalColor.white)
    column.addWidget(bar)
    column.addWidget(canvas, 1)
    window.setCentralWidget(central)
    bridge = QgsLayerTreeMapCanvasBridge(QgsProject.instance().layerTreeRoot(), canvas)  # keep a reference
    iface = Iface(window, canvas, bar)
    dock = TileJobsDock(window, iface=iface)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(*WINDOW_SIZE)
    window.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
    window.setWindowTitle("openEO Tile Jobs")
    window.show()
    wait_until(app, lambda: canvas.mapSettings().outputSize().width() > 500, what="the canvas")
    utm = QgsCoordinateReferenceSystem("EPSG:32631")
    canvas.setDestinationCrs(utm)
    canvas.setExtent(QgsRectangle(496_000, 4_996_000, 534_000, 5_024_000))

    def shot(name: str, widget: QWidget | None = None) -> None:
        settle(app, canvas)
        (widget or window).grab().save(str(OUT / f"{name}.png"))
        print("wrote", OUT / f"{name}.png")

    try:
        # 1. Area
        dock.show_step(0)
        dock.aoi_controller.set_aoi(aoi_from_rectangle(QgsRectangle(500_000, 5_000_000, AOI_EAST, AOI_NORTH), utm))
        dock.aoi_controller.rectangle_action.trigger()
        shot("01_area")
        # 2. Grid with its preview
        grid = dock.grid_page
        grid.tile_size.setValue(5000)
        grid.database.setFilePath(str(PROFILE / "demo_run.gpkg"))
        dock.show_step(1)
        wait_until(app, lambda: grid.preview_grid is not None and grid.preview_grid.tile_size == 5000, what="preview")
        shot("02_grid_preview")
        grid.create_grid()
        wait_until(app, lambda: dock.run_controller.tile_layer is not None, what="the tile layer")
        # 3. Backends: Local demo preset and the device-flow sign-in
        page = dock.backends_page
        page.start_add()
        page.preset.setCurrentIndex(page.preset.findData("local"))
        page.save_editor()
        dock.show_step(2)
        page.sign_in_selected()
        dialog = page.sign_in_dialog
        wait_until(app, lambda: bool(dialog.user_code), what="the device code")
        shot("03_sign_in_dialog", dialog)
        backend.approve_device(dialog.user_code)
        wait_until(app, lambda: page.reports.get("Local demo") is not None, what="the sign-in")
        shot("03_backends")
        # 4. Process
        process = dock.process_page
        dock.show_step(3)
        process.use_demo_process()
        wait_until(app, lambda: process.resolved is not None, what="the process definition")
        process.form.editors["temporal_extent"].set_value(["2024-06-01", "2024-07-01"])
        shot("04_process")
        # 5. Run: during and after
        run = dock.run_page
        run.output.setFilePath(str(PROFILE / "results"))
        dock.show_step(4)
        estimates = dock.run_controller.estimates
        assert estimates.request(), run.start_message.text()
        wait_until(app, lambda: estimates.before is not None, what="the estimate")
        shot("05_run_estimate")
        assert dock.run_controller.start(), run.start_message.text()
        wait_until(app, lambda: run.done >= 3, timeout=120, what="the first tiles")
        shot("05_run_during")
        shot("map_during", canvas)
        wait_until(app, lambda: dock.run_controller.last_outcome is not None, timeout=300, what="the end of the run")
        shot("05_run_done")
        shot("map_after", canvas)
    finally:
        dock.close_down()
        del bridge
        QgsProject.instance().removeAllMapLayers()
        local_demo.use_backend(None)
        backend.stop()
        window.close()
        window.deleteLater()


if __name__ == "__main__":
    sys.exit(main())
