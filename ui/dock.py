"""The openEO Tile Jobs dock panel: five steps in tabs (Area, Grid, Backends, Process, Run)."""

from __future__ import annotations

import logging
from typing import Any, Optional

from qgis.core import Qgis
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import QDockWidget, QTabWidget, QVBoxLayout, QWidget

from .aoi_controller import AoiController
from .area_page import AreaPage
from .backends_page import BackendsPage
from .grid_page import GridPage
from .process_page import ProcessPage
from .run_controller import RunController, RunPages
from .run_page import RunPage
from .steps import AREA
from .widgets import scroll_page

DOCK_OBJECT_NAME = "OpenEOTileJobsDock"
PLUGIN_NAME = "openEO Tile Jobs"
#: Horizontal padding of the step tabs (the styles' default, ~16 px, makes five tabs wider than the dock).
TAB_PADDING_PX = 7
log = logging.getLogger(__name__)


def tr(text: str) -> str:
    return QCoreApplication.translate("TileJobsDock", text)


class TileJobsDock(QDockWidget):
    """The panel. ``iface`` gives the map canvas and the message bar (``qgis.utils.iface`` if None)."""

    def __init__(self, parent: Optional[QWidget] = None, iface: Any = None) -> None:
        super().__init__(tr("openEO Tile Jobs"), parent)
        self.setObjectName(DOCK_OBJECT_NAME)
        if iface is None:
            from qgis.utils import iface as qgis_iface

            iface = qgis_iface
        self.iface = iface
        canvas = iface.mapCanvas()
        self.aoi_controller = AoiController(iface, self)
        self.area_page = AreaPage(self.aoi_controller)
        self.grid_page = GridPage(canvas)
        self.backends_page = BackendsPage(
            local_backend_url=self.local_backend_url, running_local_backend_url=self.running_local_backend_url
        )
        self.process_page = ProcessPage()
        self.run_page = RunPage()
        self.run_controller = RunController(
            RunPages(self.grid_page, self.backends_page, self.process_page, self.run_page),
            canvas,
            self.notify,
            self.show_step,
            parent=self,
        )

        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(2, 2, 2, 2)
        self.tabs = QTabWidget(body)
        self.tabs.setDocumentMode(True)
        # All five steps always in sight: no scroll arrows; compact tabs fit the dock's narrowest
        # width, and the dock never gets narrower than its tab bar.
        self.tabs.setUsesScrollButtons(False)
        self.tabs.tabBar().setElideMode(Qt.TextElideMode.ElideNone)
        self.tabs.tabBar().setStyleSheet(f"QTabBar::tab {{ padding: 4px {TAB_PADDING_PX}px; }}")
        for page, title, tip in (
            (self.area_page, tr("Area"), tr("1. Draw the area of interest")),
            (self.grid_page, tr("Grid"), tr("2. Split it into tiles")),
            (self.backends_page, tr("Backends"), tr("3. Choose the openEO backends and sign in")),
            (self.process_page, tr("Process"), tr("4. Choose the process and its parameters")),
            (self.run_page, tr("Run"), tr("5. Run one batch job per tile and watch")),
        ):
            index = self.tabs.addTab(scroll_page(page), title)
            self.tabs.setTabToolTip(index, tip)
        layout.addWidget(self.tabs)
        self.setWidget(body)
        self.setMinimumWidth(320)

        self.aoi_controller.aoiChanged.connect(self.grid_page.set_aoi)
        self.grid_page.gridCreated.connect(lambda *_: self.aoi_controller.set_outline_only(True))
        self.aoi_controller.aoiChanged.connect(lambda aoi: aoi is not None and self.tabs.setCurrentIndex(AREA))
        self.process_page.profiles = lambda: list(self.backends_page.profiles)
        self.process_page.credentials_for = self._credential_snapshot
        self.backends_page.profilesChanged.connect(self.process_page.refresh_backends)
        self.process_page.refresh_backends()
        for source in (self.aoi_controller, self.grid_page, self.backends_page, self.process_page):
            source.message.connect(self.notify)

    # helpers --------------------------------------------------------------------------
    def notify(self, text: str, level: int = Qgis.MessageLevel.Info, duration: int = 5) -> None:
        """A message in QGIS's message bar, also logged in the "openEO Tile Jobs" tab."""
        if level in (Qgis.MessageLevel.Warning, Qgis.MessageLevel.Critical):
            log.warning(text)
        else:
            log.info(text)
        bar = self.iface.messageBar() if self.iface is not None else None
        if bar is not None:
            bar.pushMessage(PLUGIN_NAME, text, level, duration)

    def _credential_snapshot(self, profiles):
        from .credentials import CredentialSnapshot

        return CredentialSnapshot([p for p in profiles if p is not None], self)

    def local_backend_url(self) -> str:
        """The URL of the Local demo backend, started in this QGIS on first use (a worker thread's call)."""
        from .local_demo import local_backend_url

        return local_backend_url()

    def running_local_backend_url(self) -> Optional[str]:
        from .local_demo import running_url

        return running_url()

    def show_step(self, index: int) -> None:
        self.tabs.setCurrentIndex(index)

    def close_down(self) -> None:
        """Undo everything the panel put on the canvas (the plugin's unload)."""
        self.run_controller.close_down()
        self.run_page.close_down()
        self.grid_page.close_down()
        self.backends_page.close_down()
        self.aoi_controller.close_down()
        from . import local_demo

        local_demo.stop()
