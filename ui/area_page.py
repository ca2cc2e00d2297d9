"""Step 1, Area: how the AOI is set, and what it is (source, CRS, area in km²)."""

from __future__ import annotations

from typing import Optional

from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QGroupBox,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..gis.compat import LAYER_FILTER_RASTER, LAYER_FILTER_VECTOR
from .aoi import Aoi
from .aoi_controller import AoiController
from .i18n import translator
from .widgets import FieldMessage, button_row, format_km2, hint, icon, narrow_combo, new_form

tr = translator("AreaPage")


def _tool_button(action, text: str) -> QToolButton:
    """A short-labelled button mirroring a toolbar action (its checked state follows the map tool)."""
    button = QToolButton()
    button.setIcon(action.icon())
    button.setText(text)
    button.setToolTip(action.toolTip())
    button.setCheckable(True)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.clicked.connect(lambda _checked: action.trigger())
    action.toggled.connect(button.setChecked)
    return button


class AreaPage(QWidget):
    def __init__(self, controller: AoiController, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.controller = controller
        layout = QVBoxLayout(self)
        layout.addWidget(
            hint(
                tr(
                    "Draw the area of interest on the map, or take it from a layer. "
                    "It is split into tiles in the next step."
                )
            )
        )

        draw = QGroupBox(tr("Draw on the map"))
        self.rectangle_button = _tool_button(controller.rectangle_action, tr("Rectangle"))
        self.polygon_button = _tool_button(controller.polygon_action, tr("Polygon"))
        draw.setLayout(button_row(self.rectangle_button, self.polygon_button))
        layout.addWidget(draw)

        from_layer = QGroupBox(tr("From a layer"))
        column = QVBoxLayout(from_layer)
        self.layer_combo = narrow_combo(QgsMapLayerComboBox())
        self.layer_combo.setFilters(LAYER_FILTER_VECTOR | LAYER_FILTER_RASTER)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setLayer(None)
        column.addWidget(self.layer_combo)
        self.selection_button = QPushButton(icon("aoi_selection"), tr("Selected features"))
        self.selection_button.setToolTip(tr("Use the selected polygons of this layer"))
        self.extent_button = QPushButton(tr("Layer extent"))
        self.extent_button.setToolTip(tr("Use the extent of this layer"))
        column.addLayout(button_row(self.selection_button, self.extent_button))
        self.layer_message = FieldMessage()
        column.addWidget(self.layer_message)
        layout.addWidget(from_layer)
        self.layer_message.follow(
            self.layer_combo.layerChanged,
            lambda: None if self.layer_combo.currentLayer() else tr("Choose a layer first."),
        )
        self.selection_button.clicked.connect(self._use_selection)
        self.extent_button.clicked.connect(self._use_extent)

        current = QGroupBox(tr("Current area"))
        form = new_form()
        current.setLayout(form)
        self.source_label = QLabel()
        self.crs_label = QLabel()
        self.area_label = QLabel()
        for label in (self.source_label, self.crs_label, self.area_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(tr("Source:"), self.source_label)
        form.addRow(tr("CRS:"), self.crs_label)
        form.addRow(tr("Area:"), self.area_label)
        self.zoom_button = QPushButton(tr("Zoom to area"))
        self.clear_button = QPushButton(tr("Clear"))
        form.addRow(button_row(self.zoom_button, self.clear_button))
        self.zoom_button.clicked.connect(controller.zoom_to_aoi)
        self.clear_button.clicked.connect(controller.clear)
        layout.addWidget(current)
        self.message = FieldMessage()
        layout.addWidget(self.message)
        layout.addStretch(1)

        controller.aoiChanged.connect(self.show_aoi)
        self.show_aoi(controller.aoi)

    def _use_selection(self) -> None:
        layer = self.layer_combo.currentLayer()
        if layer is None:
            self.layer_message.show_message(tr("Choose a layer first."))
            return
        self.layer_message.clear_message()
        if not self.controller.use_selected_features(layer):
            self.layer_message.show_message(
                tr("Select one or more polygons in '{layer}' first.").format(layer=layer.name())
            )

    def _use_extent(self) -> None:
        layer = self.layer_combo.currentLayer()
        if layer is None:
            self.layer_message.show_message(tr("Choose a layer first."))
            return
        self.layer_message.clear_message()
        if not self.controller.use_layer_extent(layer):
            self.layer_message.show_message(tr("Layer '{layer}' has no extent.").format(layer=layer.name()))

    def show_aoi(self, aoi: Optional[Aoi]) -> None:
        has = aoi is not None
        self.zoom_button.setEnabled(has)
        self.clear_button.setEnabled(has)
        if not has:
            self.source_label.setText(tr("None yet"))
            self.crs_label.setText("–")
            self.area_label.setText("–")
            return
        self.layer_message.clear_message()
        self.message.clear_message()
        self.source_label.setText(aoi.source)
        self.crs_label.setText(f"{aoi.crs.authid()} · {aoi.crs.description()}")
        self.area_label.setText(format_km2(aoi.area_km2()))

    def validate(self) -> bool:
        if self.controller.aoi is None:
            self.message.show_message(tr("Draw an area of interest or take it from a layer."))
            return False
        self.message.clear_message()
        return True
