"""Small widgets the panel's steps share: a message beside each field, scrolling pages, icons."""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

RESOURCES = Path(__file__).resolve().parent.parent / "resources"

ERROR_STYLE = "color: #b00000;"
HINT_STYLE = "color: #555555;"


def icon(name: str) -> QIcon:
    """An icon from ``resources/`` (``name`` without ``.svg``)."""
    return QIcon(str(RESOURCES / f"{name}.svg"))


class FieldMessage(QLabel):
    """The message shown beside one field: hidden while the field is fine."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setStyleSheet(ERROR_STYLE)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_message(self, text: str) -> None:
        self.setText(text)
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.setText("")
        self.hide()

    def has_message(self) -> bool:
        return bool(self.text())


def hint(text: str, parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setStyleSheet(HINT_STYLE)
    return label


def add_field(form: QFormLayout, label: str, field: QWidget | QLayout, tooltip: str = "") -> FieldMessage:
    """Add ``label: field`` to a form with its :class:`FieldMessage` right below; return the message."""
    container = QWidget()
    column = QVBoxLayout(container)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(2)
    if isinstance(field, QLayout):
        column.addLayout(field)
    else:
        column.addWidget(field)
        if tooltip:
            field.setToolTip(tooltip)
    message = FieldMessage(container)
    column.addWidget(message)
    caption = QLabel(label)
    if tooltip:
        caption.setToolTip(tooltip)
    form.addRow(caption, container)
    return message


def button_row(*buttons: QWidget) -> QHBoxLayout:
    """``buttons`` side by side, left-aligned."""
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    row.addStretch(1)
    return row


def new_form() -> QFormLayout:
    """A form that wraps its rows when the dock is narrow."""
    form = QFormLayout()
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
    return form


def scroll_page(content: QWidget) -> QScrollArea:
    """Wrap a step in a scroll area so it stays usable in a short dock."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    content.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
    area.setWidget(content)
    return area


def format_km2(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} km²"
    if value >= 1:
        return f"{value:,.2f} km²"
    return f"{value:,.4f} km²"
