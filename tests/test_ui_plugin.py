"""The plugin in QGIS beyond the panel: its log lines, its menu entries, the area tools on QGIS's
welcome page, and loading into a QGIS whose Python lacks the plugin's requirements."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem
from qgis.gui import QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtCore import QPoint, Qt
from qgis.PyQt.QtWidgets import QLabel, QMainWindow, QStackedWidget, QToolButton, QVBoxLayout, QWidget

import openeo_tile_jobs
from openeo_tile_jobs.gis.message_log import LOG_TAG
from openeo_tile_jobs.ui.aoi_controller import AoiController

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/lib/qgis/qgis_process.bin"
#: The plugin's runtime requirements, hidden from a child QGIS's Python (as if never installed).
HIDDEN = ("shapely", "pyproj", "rasterio", "openeo")
SITECUSTOMIZE = f"""
import importlib.machinery
import sys

HIDDEN = {set(HIDDEN)!r}


class HidingPathFinder(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] in HIDDEN else super().find_spec(name, path, target)


sys.meta_path[:] = [HidingPathFinder if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""


def test_each_log_line_once_without_repeating_its_level(qgis_app) -> None:
    received: list[tuple[str, str, object]] = []

    def on_message(message: str, tag: str, level) -> None:
        if tag == LOG_TAG:
            received.append((message, tag, level))

    first = openeo_tile_jobs.classFactory(None)
    second = openeo_tile_jobs.classFactory(None)  # loaded again (a reload) before the first unloaded
    QgsApplication.messageLog().messageReceived.connect(on_message)
    try:
        logging.getLogger("openeo_tile_jobs.core.something").warning("tile 7 failed")
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(on_message)
        second.unload()
        first.unload()
    # QGIS's log shows the level in its own column: "WARNING  openeo_tile_jobs.core.something: ..."
    assert [(m, level) for m, _tag, level in received] == [
        ("openeo_tile_jobs.core.something: tile 7 failed", openeo_tile_jobs.plugin.Qgis.MessageLevel.Warning)
    ]


def test_plugin_menu_has_no_submenu_repeating_an_entry(qgis_iface) -> None:
    qgis_iface.addPluginToWebMenu.reset_mock()
    plugin = openeo_tile_jobs.classFactory(qgis_iface)
    plugin.initGui()
    try:
        entries = [call.args[1] for call in qgis_iface.addPluginToWebMenu.call_args_list]
        texts = [a.text() for a in entries]
        assert "Use the selected features as AOI" in texts and "Use the extent of the active layer as AOI" in texts
        assert all(a.menu() is None for a in entries)  # each one is an item, none opens a submenu
        controller = plugin.dock.aoi_controller
        button = plugin.toolbar.findChild(QToolButton, "OpenEOTileJobsUseSelectionButton")
        assert button.defaultAction() is controller.selection_action
        assert button.menu().actions() == [controller.extent_action]  # the toolbar's drop-down
    finally:
        plugin.unload()


class _Iface:
    def __init__(self, window, canvas) -> None:
        self._window, self._canvas = window, canvas

    def mainWindow(self):
        return self._window

    def mapCanvas(self):
        return self._canvas

    def messageBar(self):
        return QgsMessageBar()

    def activeLayer(self):
        return None


def test_rectangle_tool_on_the_welcome_page_shows_the_map_and_draws(qgis_app, qtbot) -> None:
    """QGIS shows its welcome page in the canvas's place until a project is opened."""
    window = QMainWindow()
    stack = QStackedWidget()
    map_page = QWidget()
    canvas = QgsMapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))  # an empty project's CRS
    QVBoxLayout(map_page).addWidget(canvas)
    stack.addWidget(map_page)
    stack.addWidget(QLabel("Welcome to QGIS! Recent projects…"))
    stack.setCurrentIndex(1)
    window.setCentralWidget(stack)
    window.resize(900, 700)
    window.show()
    qtbot.waitExposed(window)
    assert not canvas.isVisible()
    controller = AoiController(_Iface(window, canvas))
    messages = []
    controller.message.connect(lambda text, _level: messages.append(text))
    try:
        controller.rectangle_action.trigger()
        assert canvas.isVisible() and stack.currentWidget() is map_page
        assert canvas.mapTool() is controller.rectangle_tool
        qtbot.waitUntil(lambda: canvas.mapSettings().outputSize().width() > 500)
        viewport = canvas.viewport()
        qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
        qtbot.mouseMove(viewport, pos=QPoint(200, 200))
        qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=QPoint(300, 250))
        assert controller.aoi.geometry.boundingBox().width() > 10  # degrees: not a dot on an empty map
        assert len(messages) == 1 and "no layer yet" in messages[0]  # what is there to see

        window.hide()  # no welcome page to flip, the map just is not shown: say so
        controller.polygon_action.trigger()
        assert messages and "open or create a project" in messages[-1]
    finally:
        controller.close_down()
        window.close()


def _env_without_requirements(qgis_profile: dict[str, str], tmp_path: Path) -> dict[str, str]:
    hide = tmp_path / "hide-requirements"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(qgis_profile)
    env["PYTHONPATH"] = os.pathsep.join([str(hide), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.skipif(not shutil.which("qgis_process.bin"), reason="qgis_process.bin not installed")
def test_qgis_process_without_requirements_names_them(qgis_profile, tmp_path) -> None:
    env = _env_without_requirements(qgis_profile, tmp_path)
    run = [QGIS_PROCESS, "plugins", "enable", "openeo_tile_jobs"]
    enabled = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 0, enabled.stderr  # was: ModuleNotFoundError, then "Aborted"
    assert "ModuleNotFoundError" not in enabled.stderr
    listed = subprocess.run([QGIS_PROCESS, "list"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    said = next(line for line in listed.stderr.splitlines() if "Python packages" in line)  # on stderr
    assert all(name in said for name in HIDDEN) and "pip install" in said


def test_desktop_without_requirements_loads_and_names_them(qgis_profile, tmp_path) -> None:
    """The plugin's own classFactory and initGui in a child QGIS whose Python hides the requirements."""
    script = tmp_path / "load.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from qgis.core import QgsApplication, QgsCoordinateReferenceSystem
            from qgis.gui import QgsMapCanvas, QgsMessageBar
            from qgis.PyQt.QtWidgets import QMainWindow

            app = QgsApplication([], True)
            app.initQgis()
            window, bar = QMainWindow(), QgsMessageBar()

            class Iface:
                def mainWindow(self):
                    return window
                def messageBar(self):
                    return bar
                def mapCanvas(self):
                    return QgsMapCanvas()

            import openeo_tile_jobs
            try:
                import shapely  # noqa: F401
                sys.exit("shapely is not hidden")
            except ImportError:
                pass
            plugin = openeo_tile_jobs.classFactory(Iface())
            plugin.initProcessing()
            plugin.initGui()
            print("BAR:", bar.currentItem().text())
            plugin.unload()
            app.exitQgis()
            """
        )
    )
    env = _env_without_requirements(qgis_profile, tmp_path)
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = next(line for line in done.stdout.splitlines() if line.startswith("BAR: Missing Python packages:"))
    assert all(name in said for name in HIDDEN) and "pip install" in said


def test_local_demo_backend_leaves_no_resource_warnings_for_qgis(tmp_path) -> None:
    """QGIS shows every warning in its "Python warning" log tab (qgis.utils sets simplefilter("default")):
    the Local demo backend's engine, loaded in QGIS's process, must not leave files open."""
    script = tmp_path / "load_engine.py"
    script.write_text(
        textwrap.dedent(
            """
            import gc
            import warnings

            warnings.simplefilter("default")  # what qgis.utils does in QGIS
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")
                from openeo_tile_jobs.local_backend import engine

                engine._load_base()
                gc.collect()
            leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
            print(len(leaks), leaks[:3])
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "0", done.stdout  # was 149 spec files of openeo-processes-dask
