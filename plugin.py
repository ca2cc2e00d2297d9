"""The plugin object QGIS loads: wires the toolbar, menu, dock and Processing provider."""

from __future__ import annotations

import logging
from pathlib import Path

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .core import dependencies
from .gis.message_log import install_handler, install_stderr_handler, remove_handler
from .processing.provider import TileJobsProvider

PLUGIN_NAME = "openEO Tile Jobs"
RESOURCES = Path(__file__).resolve().parent / "resources"
log = logging.getLogger(__name__)


def tr(text: str) -> str:
    return QCoreApplication.translate("TileJobsPlugin", text)


class TileJobsPlugin:
    """What ``classFactory`` returns. ``iface`` is None under ``qgis_process``."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: TileJobsProvider | None = None
        self.toolbar = None
        self.dock = None
        self.actions: list[QAction] = []
        self.toggle_dock_action: QAction | None = None
        self._unwatch_project = None
        self.quit_guard = None
        self._log_handler = install_handler()
        self._stderr_handler = install_stderr_handler() if iface is None else None  # qgis_process

    # Processing ---------------------------------------------------------
    def initProcessing(self) -> None:
        if self.provider is None:
            self.provider = TileJobsProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    # GUI ----------------------------------------------------------------
    def initGui(self) -> None:
        self.initProcessing()
        if self.iface is None:
            return
        if self._report_missing_requirements():  # the panel imports them: only say what is missing
            return
        from .gis.tile_layer import watch_project

        self._unwatch_project = watch_project()  # tile layers of a project being read stay live
        from .ui.quit_guard import QuitGuard

        self.quit_guard = QuitGuard(self.iface)  # quitting during a run stops it, then quits
        from .ui.dock import TileJobsDock

        self.toolbar = self.iface.addToolBar(PLUGIN_NAME)
        self.toolbar.setObjectName("OpenEOTileJobsToolbar")

        self.dock = TileJobsDock(self.iface.mainWindow(), iface=self.iface)
        self.dock.hide()
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)

        action = QAction(QIcon(str(RESOURCES / "dock.svg")), tr("openEO Tile Jobs panel"), self.iface.mainWindow())
        action.setObjectName("OpenEOTileJobsToggleDock")
        action.setCheckable(True)
        action.setToolTip(tr("Show or hide the openEO Tile Jobs panel"))
        action.toggled.connect(self.dock.setVisible)
        self.dock.visibilityChanged.connect(action.setChecked)
        self._add_action(action)
        self.toggle_dock_action = action
        self._add_aoi_actions()
        self._report_broken_native_libraries()

    def _add_aoi_actions(self) -> None:
        """Draw a rectangle / polygon AOI, use the selected features or the layer's extent.

        On the toolbar the extent hangs in the selection button's drop-down; in the plugin menu
        both are plain items (an action with a menu would open a submenu repeating its own name).
        """
        controller = self.dock.aoi_controller
        for action in controller.toolbar_actions():
            action.triggered.connect(lambda *_: self._show_area_step())
            if action is controller.selection_action:
                self.toolbar.addWidget(controller.selection_button(self.toolbar))
                self.iface.addPluginToWebMenu(PLUGIN_NAME, action)
                self.actions.append(action)
            else:
                self._add_action(action)
        controller.extent_action.triggered.connect(lambda *_: self._show_area_step())
        self.iface.addPluginToWebMenu(PLUGIN_NAME, controller.extent_action)
        self.actions.append(controller.extent_action)

    def _show_area_step(self) -> None:
        if self.dock is not None:
            self.dock.show()
            self.dock.show_step(0)

    def _add_action(self, action: QAction) -> None:
        self.toolbar.addAction(action)
        self.iface.addPluginToWebMenu(PLUGIN_NAME, action)
        self.actions.append(action)

    def _report_missing_requirements(self) -> bool:
        """Name the missing Python packages in the message bar; True when some are missing."""
        missing = dependencies.missing_runtime()
        if not missing:
            return False
        message = tr(
            "Missing Python packages: {packages}. Install them with the QPIP plugin, or run: {command}"
        ).format(packages=", ".join(missing), command=dependencies.install_command())
        log.warning(message)
        self.iface.messageBar().pushMessage(PLUGIN_NAME, message, Qgis.MessageLevel.Warning, 0)
        return True

    def _report_broken_native_libraries(self) -> None:
        from .gis.native_libs import check_bundled_libraries

        problems = check_bundled_libraries()
        if not problems:
            return
        message = tr(
            "A Python package of the plugin does not work in this QGIS ({problems}); grids and runs need it. "
            "See the README's troubleshooting section on native libraries."
        ).format(problems="; ".join(problems))
        log.error(message)
        self.iface.messageBar().pushMessage(PLUGIN_NAME, message, Qgis.MessageLevel.Critical, 0)

    def unload(self) -> None:
        if self._unwatch_project is not None:
            self._unwatch_project()
            self._unwatch_project = None
        if self.quit_guard is not None:
            self.quit_guard.remove()
            self.quit_guard = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.iface is not None:
            for action in self.actions:
                self.iface.removePluginWebMenu(PLUGIN_NAME, action)
                if self.toolbar is not None:
                    self.toolbar.removeAction(action)
                action.deleteLater()
            self.actions.clear()
            self.toggle_dock_action = None
            if self.dock is not None:
                self.dock.close_down()  # map tools off the canvas, rubber bands removed, run stopped
                self.iface.removeDockWidget(self.dock)
                self.dock.deleteLater()
                self.dock = None
            if self.toolbar is not None:
                self.toolbar.deleteLater()
                self.toolbar = None
        for handler in (self._log_handler, self._stderr_handler):
            if handler is not None:
                remove_handler(handler)
        self._log_handler = self._stderr_handler = None
