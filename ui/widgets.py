"""Small widgets the panel's steps share: a message beside each field, scrolling pages, icons."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Optional

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLayout,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QVBoxLayout,
    QWidget,
)

from .flow_layout import FlowLayout

RESOURCES = Path(__file__).resolve().parent.parent / "resources"

ERROR_STYLE = "color: #b00000;"
HINT_STYLE = "color: #555555;"


def icon(name: str) -> QIcon:
    """An icon from ``resources/`` (``name`` without ``.svg``)."""
    return QIcon(str(RESOURCES / f"{name}.svg"))


#: A token this long (no space in it: a URL, a path, an error's repr) gets break opportunities.
LONG_TOKEN = 24
_LONG_TOKEN_RE = re.compile(rf"\S{{{LONG_TOKEN},}}")
_BREAK_AFTER_RE = re.compile(r"([/\\.,;:=&?_)(\[\]-])")
ZERO_WIDTH_SPACE = "\u200b"


def soft_breaks(text: str) -> str:
    """``text`` with invisible break opportunities after the punctuation of long tokens.

    A word-wrapped QLabel is at least as wide as its longest unbreakable word: one long URL
    in an error message would push the whole step wider than the dock.
    """
    return _LONG_TOKEN_RE.sub(lambda m: _BREAK_AFTER_RE.sub(r"\1" + ZERO_WIDTH_SPACE, m.group(0)), text)


class WrapLabel(QLabel):
    """A word-wrapped label that also wraps long URLs, paths and error texts (never wider than the dock).

    :meth:`plain_text` is the text as given; :meth:`text` may hold zero-width spaces.
    """

    def __init__(self, text: str = "", parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self._plain = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # Qt's name, so every caller gets the breaks
        self._plain = text or ""
        super().setText(soft_breaks(self._plain))

    def plain_text(self) -> str:
        return self._plain


class FieldMessage(WrapLabel):
    """The message shown beside one field: hidden while the field is fine, and following its input.

    :meth:`follow` re-checks a shown message each time the field changes, so it never describes
    an input the user has already corrected.
    """

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("", parent)
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
        return bool(self.plain_text())

    def check(self, problem: Optional[str]) -> bool:
        """Show ``problem``, or clear the message when it is None; True when there is no problem."""
        if problem:
            self.show_message(problem)
            return False
        self.clear_message()
        return True

    def follow(self, signal: Any, problem: Callable[[], Optional[str]]) -> None:
        """While a message is shown, check the input again with ``problem()`` whenever ``signal`` fires."""
        signal.connect(lambda *_: self.has_message() and self.check(problem()))


#: Characters a combo box asks room for; longer texts are elided (full text in the tooltip).
COMBO_MIN_CHARS = 10


def narrow_combo(combo: QComboBox, chars: int = COMBO_MIN_CHARS, tooltip: bool = True) -> QComboBox:
    """Let ``combo`` be narrower than its longest item (by default a combo is never narrower);
    ``tooltip``: its tooltip shows the whole current text (for QGIS's combos, which clip it)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    if tooltip:
        combo.currentTextChanged.connect(combo.setToolTip)
        combo.setToolTip(combo.currentText())
    return combo


class ElidingComboBox(QComboBox):
    """A combo box that fits a narrow dock: its text is elided ("…") when too long, the full text
    is its tooltip, and each item's full text is the item's tooltip in the list."""

    def __init__(self, parent: Optional[QWidget] = None, chars: int = COMBO_MIN_CHARS) -> None:
        super().__init__(parent)
        self._description = ""
        narrow_combo(self, chars, tooltip=False)
        self.currentTextChanged.connect(lambda _text: self._show_tooltip())
        self.model().rowsInserted.connect(self._item_tooltips)

    def setToolTip(self, description: str) -> None:  # Qt's name: the tooltip is the text + this
        self._description = description
        self._show_tooltip()

    def _show_tooltip(self) -> None:
        super().setToolTip("\n".join(t for t in (self.currentText(), self._description) if t))

    def _item_tooltips(self, _parent: Any, first: int, last: int) -> None:
        for row in range(first, last + 1):
            self.setItemData(row, self.itemText(row), Qt.ItemDataRole.ToolTipRole)

    def displayed_text(self) -> str:
        """The text as drawn (elided to the edit field's width)."""
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        field = self.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        return self.fontMetrics().elidedText(option.currentText, Qt.TextElideMode.ElideRight, field.width())

    def paintEvent(self, _event: Any) -> None:
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        option.currentText = self.displayed_text()
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


def tooltip_shows_text(field: QWidget) -> None:
    """A QLineEdit or QgsFileWidget in a narrow dock shows part of a long text: its tooltip shows all."""
    signal = field.fileChanged if hasattr(field, "fileChanged") else field.textChanged
    signal.connect(field.setToolTip)


def hint(text: str, parent: Optional[QWidget] = None) -> WrapLabel:
    label = WrapLabel(text, parent)
    label.setStyleSheet(HINT_STYLE)
    return label


def add_field(
    form: QFormLayout, label: str, field: QWidget | QLayout, tooltip: str = "", below: bool = False
) -> FieldMessage:
    """Add ``label: field`` to a form with its :class:`FieldMessage` right below; return the message.

    ``below``: the field goes under its label, across the form's whole width (wide fields).
    """
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
    if below:
        form.addRow(caption)
        form.addRow(container)
    else:
        form.addRow(caption, container)
    return message


def button_row(*buttons: QWidget) -> FlowLayout:
    """``buttons`` side by side, left-aligned, wrapping onto a second line in a narrow dock."""
    row = FlowLayout()
    for button in buttons:
        row.addWidget(button)
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
