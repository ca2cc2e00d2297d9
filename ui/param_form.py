"""A form generated from openEO parameter schemas (see :mod:`.param_schema` for the mapping)."""

from __future__ import annotations

import json
from typing import Any, Optional

from qgis.gui import QgsDateEdit, QgsDateTimeEdit
from qgis.PyQt.QtCore import QDate, QDateTime, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QStyle,
    QWidget,
)

from . import param_schema as ps
from .flow_layout import FlowLayout
from .i18n import translator
from .widgets import ElidingComboBox, FieldMessage, add_field, hint, new_form

tr = translator("ParameterForm")


def problem_text(problem: ps.Problem) -> str:
    """The translated message for a validation problem."""
    args = problem.args
    if problem.code == ps.REQUIRED:
        return tr("This value is required.")
    if problem.code == ps.NOT_A_NUMBER:
        return tr("Enter a number.")
    if problem.code == ps.NOT_AN_INTEGER:
        return tr("Enter a whole number.")
    if problem.code == ps.BELOW_MINIMUM:
        return (tr("Must be more than {minimum}.") if args[1] else tr("Must be at least {minimum}.")).format(
            minimum=args[0]
        )
    if problem.code == ps.ABOVE_MAXIMUM:
        return (tr("Must be less than {maximum}.") if args[1] else tr("Must be at most {maximum}.")).format(
            maximum=args[0]
        )
    if problem.code == ps.NOT_A_CHOICE:
        return tr("Choose one of: {choices}.").format(choices=args[0])
    if problem.code == ps.BAD_DATE:
        return tr("Not a date: {value} (use YYYY-MM-DD).").format(value=args[0])
    if problem.code == ps.RANGE_ORDER:
        return tr("The start must come before the end.")
    if problem.code == ps.BAD_BBOX:
        return tr("Enter west, south, east and north as numbers.")
    if problem.code == ps.BBOX_ORDER:
        return tr("West must be less than east and south less than north.")
    if problem.code == ps.PATTERN:
        return tr("Does not match the expected form {pattern}.").format(pattern=args[0])
    if problem.code == ps.BAD_JSON:
        return tr("Not valid JSON: {error}").format(error=args[0] if args else "")
    return problem.code


def _date_edit(allow_null: bool) -> QgsDateEdit:
    edit = QgsDateEdit()
    edit.setDisplayFormat("yyyy-MM-dd")
    edit.setCalendarPopup(True)
    edit.setAllowNull(allow_null)
    if allow_null:
        # the clear button sits inside the text field, but the size hint leaves no room for it
        clear_button = edit.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize) + 8
        edit.setMinimumWidth(edit.sizeHint().width() + clear_button)
    return edit


def _set_date(edit: QgsDateEdit, value: Any) -> None:
    date = QDate.fromString(str(value)[:10], "yyyy-MM-dd") if value else QDate()
    if date.isValid():
        edit.setDate(date)
    elif edit.allowNull():
        edit.clear()


def _date_value(edit: QgsDateEdit) -> Optional[str]:
    if edit.isNull():
        return None
    return edit.date().toString("yyyy-MM-dd")


class FieldEditor:
    """One parameter's widget(s): reads and writes JSON-able values."""

    def __init__(self, spec: ps.FieldSpec) -> None:
        self.spec = spec
        self.message: Optional[FieldMessage] = None
        kind = spec.kind
        optional = not spec.required or spec.nullable
        if kind == ps.DATE:
            self.widget = _date_edit(optional)
        elif kind == ps.DATETIME:
            self.widget = QgsDateTimeEdit()
            self.widget.setDisplayFormat("yyyy-MM-ddTHH:mm:ss")
            self.widget.setAllowNull(optional)
        elif kind == ps.DATE_RANGE:
            self.widget = QWidget()
            row = FlowLayout(self.widget)  # "– end" goes below the start in a narrow dock
            self.start, self.end = _date_edit(True), _date_edit(True)
            end = QWidget()
            end_row = QHBoxLayout(end)
            end_row.setContentsMargins(0, 0, 0, 0)
            end_row.addWidget(QLabel("–"))
            end_row.addWidget(self.end)
            row.addWidget(self.start)
            row.addWidget(end)
            self.start.setToolTip(tr("Start (included)"))
            self.end.setToolTip(tr("End (excluded)"))
        elif kind == ps.ENUM:
            self.widget = ElidingComboBox()
            if optional:
                self.widget.addItem("", None)
            for choice in spec.choices:
                self.widget.addItem(str(choice), choice)
        elif kind == ps.BOOLEAN:
            self.widget = QCheckBox()
        elif kind == ps.BBOX:
            self.widget = QWidget()
            grid = QGridLayout(self.widget)
            grid.setContentsMargins(0, 0, 0, 0)
            self.bbox_edits = {}
            for i, (key, label) in enumerate(
                (("west", tr("West")), ("south", tr("South")), ("east", tr("East")), ("north", tr("North")))
            ):
                edit = QLineEdit()
                edit.setPlaceholderText(label)
                edit.setToolTip(tr("{side}, in degrees (EPSG:4326)").format(side=label))
                self.bbox_edits[key] = edit
                grid.addWidget(edit, i // 2, i % 2)
        elif kind == ps.GEOMETRY:
            self.widget = hint(tr("Filled in for each tile with the tile's geometry."))
        else:
            self.widget = QLineEdit()
            if kind in (ps.NUMBER, ps.INTEGER):
                self.widget.setPlaceholderText(self._bounds_text())
            elif kind == ps.JSON:
                self.widget.setPlaceholderText(tr("JSON value"))
        self.widget.setObjectName(f"param_{spec.name}")
        self.set_value(ps.initial_value(spec))

    def _bounds_text(self) -> str:
        low, high = self.spec.minimum, self.spec.maximum
        if low is not None and high is not None:
            return f"{low:g} – {high:g}"
        if low is not None:
            return f"≥ {low:g}"
        if high is not None:
            return f"≤ {high:g}"
        return tr("number")

    def set_value(self, value: Any) -> None:
        kind = self.spec.kind
        if kind == ps.DATE:
            _set_date(self.widget, value)
        elif kind == ps.DATETIME:
            moment = QDateTime.fromString(str(value), Qt.DateFormat.ISODate) if value else QDateTime()
            if moment.isValid():
                self.widget.setDateTime(moment)
            elif self.widget.allowNull():
                self.widget.clear()
        elif kind == ps.DATE_RANGE:
            values = list(value) if isinstance(value, (list, tuple)) and len(value) == 2 else [None, None]
            _set_date(self.start, values[0])
            _set_date(self.end, values[1])
        elif kind == ps.ENUM:
            index = self.widget.findData(value)
            self.widget.setCurrentIndex(max(index, 0))
        elif kind == ps.BOOLEAN:
            self.widget.setChecked(bool(value))
        elif kind == ps.BBOX:
            data = value if isinstance(value, dict) else {}
            for key, edit in self.bbox_edits.items():
                item = data.get(key)
                edit.setText("" if item is None else f"{item:g}" if isinstance(item, float) else str(item))
        elif kind == ps.GEOMETRY:
            return
        elif kind == ps.JSON:
            self.widget.setText("" if value is None else json.dumps(value))
        else:
            self.widget.setText("" if value is None else str(value))

    def raw_value(self) -> Any:
        """The value as typed (strings for numbers), for validation."""
        kind = self.spec.kind
        if kind == ps.DATE:
            return _date_value(self.widget)
        if kind == ps.DATETIME:
            return None if self.widget.isNull() else self.widget.dateTime().toString(Qt.DateFormat.ISODate)
        if kind == ps.DATE_RANGE:
            return [_date_value(self.start), _date_value(self.end)]
        if kind == ps.ENUM:
            return self.widget.currentData()
        if kind == ps.BOOLEAN:
            return self.widget.isChecked()
        if kind == ps.BBOX:
            texts = {k: e.text().strip() for k, e in self.bbox_edits.items()}
            if not any(texts.values()):
                return None
            out: dict[str, Any] = {}
            for key, text in texts.items():
                try:
                    out[key] = float(text)
                except ValueError:
                    out[key] = text
            return out
        if kind == ps.GEOMETRY:
            return None
        return self.widget.text().strip()

    def problem(self) -> Optional[ps.Problem]:
        raw = self.raw_value()
        if self.spec.kind == ps.JSON and isinstance(raw, str) and raw:
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                return ps.Problem(ps.BAD_JSON, (str(exc),))
        return ps.validate(self.spec, raw)

    def value(self) -> Any:
        """The JSON value to send (call after :meth:`problem` returned None)."""
        raw = self.raw_value()
        kind = self.spec.kind
        if raw is None or raw == "" or (kind == ps.DATE_RANGE and raw == [None, None]):
            return None
        if kind == ps.NUMBER:
            return float(raw)
        if kind == ps.INTEGER:
            return int(float(raw))
        if kind == ps.JSON:
            return json.loads(raw)
        return raw

    def set_enabled(self, enabled: bool) -> None:
        self.widget.setEnabled(enabled)

    def changed_signals(self) -> list:
        """The signals fired when the user changes this parameter's value."""
        kind = self.spec.kind
        if kind == ps.DATE_RANGE:
            return [self.start.dateValueChanged, self.end.dateValueChanged]
        if kind == ps.BBOX:
            return [edit.textChanged for edit in self.bbox_edits.values()]
        if kind == ps.DATE:
            return [self.widget.dateValueChanged]
        if kind == ps.DATETIME:
            return [self.widget.valueChanged]
        if kind == ps.ENUM:
            return [self.widget.currentIndexChanged]
        if kind == ps.BOOLEAN:
            return [self.widget.toggled]
        if kind == ps.GEOMETRY:
            return []
        return [self.widget.textChanged]


class ParameterForm(QWidget):
    """Fields for a process's parameters, each with its message; the geometry parameter is filled per tile."""

    changed = pyqtSignal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.editors: dict[str, FieldEditor] = {}
        self.geometry_parameter: Optional[str] = None
        self._form: QFormLayout = new_form()
        self.setLayout(self._form)

    def set_fields(self, fields: list[ps.FieldSpec], geometry_parameter: Optional[str] = None) -> None:
        while self._form.rowCount():
            self._form.removeRow(0)
        self.editors = {}
        for spec in fields:
            editor = FieldEditor(spec)
            label = spec.label + ("" if spec.required else tr(" (optional)"))
            editor.message = add_field(self._form, label, editor.widget, spec.description)
            for signal in editor.changed_signals():
                editor.message.follow(signal, lambda e=editor: self._problem_text(e))
            self.editors[spec.name] = editor
        self.set_geometry_parameter(geometry_parameter)

    def set_geometry_parameter(self, name: Optional[str]) -> None:
        self.geometry_parameter = name
        for editor_name, editor in self.editors.items():
            is_geometry = editor_name == name
            editor.set_enabled(not is_geometry)
            if is_geometry:
                editor.widget.setToolTip(tr("Each tile's geometry goes into this parameter."))
                editor.message.clear_message()

    def _problem_text(self, editor: FieldEditor) -> Optional[str]:
        if editor.spec.name == self.geometry_parameter:
            return None
        problem = editor.problem()
        return None if problem is None else problem_text(problem)

    def validate(self) -> bool:
        """Show a message beside every bad field; True when all are fine."""
        return all([editor.message.check(self._problem_text(editor)) for editor in self.editors.values()])

    def values(self) -> dict[str, Any]:
        """Parameter values shared by every tile (without the geometry parameter and unset optional ones)."""
        out = {}
        for name, editor in self.editors.items():
            if name == self.geometry_parameter:
                continue
            value = editor.value()
            if value is not None:
                out[name] = value
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name in self.editors:
                self.editors[name].set_value(value)
