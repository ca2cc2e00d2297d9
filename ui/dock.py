"""The openEO Tile Jobs dock panel."""

from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget

DOCK_OBJECT_NAME = "OpenEOTileJobsDock"


def tr(text: str) -> str:
    return QCoreApplication.translate("TileJobsDock", text)


class TileJobsDock(QDockWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(tr("openEO Tile Jobs"), parent)
        self.setObjectName(DOCK_OBJECT_NAME)
        body = QWidget(self)
        layout = QVBoxLayout(body)
        intro = QLabel(tr("Draw an area, split it into tiles and run one openEO batch job per tile."), body)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addStretch(1)
        self.setWidget(body)
