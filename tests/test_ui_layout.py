"""The panel's layout at the screen sizes analysts use (1600x1000, 1280x800), at the dock's
default width and at its narrowest: every step's tab reachable without scrolling the tabs, no
text clipped or pushed past the dock's right edge (wrapped, or elided with the full text in a
tooltip). Each state is also saved as a PNG under build/ui-layout/ to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsProject, QgsSettings
from qgis.gui import QgsDateEdit, QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QLabel,
    QLineEdit,
    QMainWindow,
    QStyle,
    QStyleOptionComboBox,
    QToolButton,
    QWidget,
)
from ui_helpers import ready_to_run

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.ui import local_demo
from openeo_tile_jobs.ui.dock import TileJobsDock
from openeo_tile_jobs.ui.widgets import ElidingComboBox

OUT = Path(__file__).resolve().parent.parent / "build" / "ui-layout"
SCREENS = [(1600, 1000), (1280, 800)]
LONG_ERROR = (
    "HTTPConnectionPool(host='127.0.0.1', port=8089): Max retries exceeded with url: "
    "/udp/cloud_free_composite.json (Caused by NewConnectionError('<urllib3.connection.HTTPConnection "
    "object at 0x7f3a2c1d5e50>: Failed to establish a new connection: [Errno 111] Connection refused'))"
)


class Iface:
    """The QgisInterface calls the panel makes, on a window of the screen's size."""

    def __init__(self, window, canvas, bar) -> None:
        self._window, self._canvas, self._bar = window, canvas, bar

    def mainWindow(self):
        return self._window

    def mapCanvas(self):
        return self._canvas

    def messageBar(self):
        return self._bar

    def activeLayer(self):
        return None


@pytest.fixture()
def window(qgis_app, qtbot):
    QgsSettings().remove("openeo_tile_jobs")
    main = QMainWindow()
    canvas = QgsMapCanvas()
    main.setCentralWidget(canvas)
    dock = TileJobsDock(main, iface=Iface(main, canvas, QgsMessageBar()))
    main.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    main.dock = dock
    yield main
    dock.close_down()
    main.close()
    main.deleteLater()
    QgsProject.instance().removeAllMapLayers()
    QgsSettings().remove("openeo_tile_jobs")
    local_demo.use_backend(None)


def _fill(dock, qtbot, backend, tmp_path) -> None:
    """A panel as analysts see it mid-run: long paths, long job ids, an error or two."""
    folder = tmp_path / "projects_2024" / "belgium_summer_composites"
    folder.mkdir(parents=True)
    ready_to_run(dock, qtbot, backend, folder)
    page = dock.backends_page
    page.start_add()
    page.preset.setCurrentIndex(page.preset.findData("cdse"))
    page.auth.setCurrentIndex(page.auth.findData("oidc_client_credentials"))
    page.url_message.show_message("Cannot start the Local demo backend: " + LONG_ERROR)
    page.state_label.setText("Cannot connect to Local demo: " + LONG_ERROR)
    dock.process_page.load_message.show_message(LONG_ERROR)
    run = dock.run_page
    rows = [run.model.row_data(i) for i in range(run.model.rowCount())]
    updates = []
    for i, row in enumerate(rows):
        status = (statuses.FINISHED, statuses.RUNNING, statuses.ERROR, statuses.QUEUED)[i % 4]
        updates.append({**row, "status": status, "id": f"j-2411{i:02d}c0ffee1234567890abcdef", "costs": 0.0125 * i})
    run.update_rows(updates)
    run.show_counts(run.model.counts())
    run.show_costs(1.23, {"Local demo": 1.0, "CDSE federation": 0.23})
    run.show_backends({"Local demo": 2, "CDSE federation": 1}, {"CDSE federation": "backoff"})
    run.set_runs([("belgium_summer_composites_2024_run2 — 120 of 240 tiles left", str(folder / "run2.gpkg"))])


def _fits(widget, text: str, room: int) -> bool:
    return widget.fontMetrics().horizontalAdvance(text) <= room


def _line_edit_room(edit) -> int:
    """Width for text inside a line edit: minus its side buttons (clear, ...) and text margins."""
    side = sum(b.width() for b in edit.findChildren(QWidget) if b.isVisibleTo(edit) and b.parent() is edit)
    return edit.contentsRect().width() - side - 8


def _combo_room(combo) -> int:
    option = QStyleOptionComboBox()
    option.initFrom(combo)  # initStyleOption is protected on combos QGIS created
    option.editable = combo.isEditable()
    field = combo.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, combo
    )
    return field.width() - (combo.iconSize().width() + 4 if not combo.itemIcon(combo.currentIndex()).isNull() else 0)


def _layout_problems(dock) -> list[str]:
    """What a user would see wrong on the current step: clipped text, text past the dock's edge."""
    problems = []
    scroll = dock.tabs.currentWidget()
    page = scroll.widget()
    if page.width() > scroll.viewport().width():
        problems.append(f"step wider than the dock: {page.width()} > {scroll.viewport().width()}")
    for widget in page.findChildren(QWidget):
        if not widget.isVisibleTo(page) or widget.width() <= 0:
            continue
        name = f"{type(widget).__name__} {widget.objectName()}".strip()
        if isinstance(widget, QLabel) and widget.text() and widget.pixmap() is None:
            if widget.wordWrap():
                if widget.width() < widget.minimumSizeHint().width():
                    problems.append(f"{name} {widget.text()[:30]!r} squeezed")
            elif not _fits(widget, widget.text(), widget.contentsRect().width()):
                problems.append(f"{name} {widget.text()!r} clipped")
        elif isinstance(widget, ElidingComboBox):
            if widget.displayed_text() != widget.currentText() and widget.currentText() not in widget.toolTip():
                problems.append(f"{name} {widget.currentText()!r} elided without a tooltip")
        elif isinstance(widget, QComboBox) and not widget.isEditable():  # QGIS's own combos clip
            if not _fits(widget, widget.currentText(), _combo_room(widget)) and widget.currentText() not in {
                widget.toolTip(),
                widget.parent().toolTip(),
            }:
                problems.append(f"{name} {widget.currentText()!r} clipped without a tooltip")
        elif isinstance(widget, QLineEdit) and widget.text():
            owner = widget.parent()
            if isinstance(owner, QgsDateEdit):  # a date must always show whole
                if not _fits(widget, widget.text(), _line_edit_room(widget)):
                    problems.append(f"date {widget.text()!r} clipped")
            elif not _fits(widget, widget.text(), _line_edit_room(widget)):
                tips = {widget.toolTip(), owner.toolTip() if owner is not None else ""}
                if widget.text() not in tips:
                    problems.append(f"{name} {widget.text()!r} clipped without a tooltip")
    return problems


def _table_problems(run) -> list[str]:
    table, problems = run.table, []
    for column in range(run.proxy.columnCount() - 1):  # the last column stretches
        for row in range(run.proxy.rowCount()):
            text = run.proxy.index(row, column).data() or ""
            if not _fits(table, text, table.columnWidth(column) - 12):
                problems.append(f"cell {text!r} clipped")
    return problems


def _check_and_grab(main, qtbot, name: str) -> list[str]:
    OUT.mkdir(parents=True, exist_ok=True)
    dock = main.dock
    bar = dock.tabs.tabBar()
    problems = []
    if sum(bar.tabRect(i).width() for i in range(bar.count())) > bar.width():
        problems.append("the steps' tabs need scrolling")
    if any(b.isVisibleTo(bar) for b in bar.findChildren(QToolButton)):
        problems.append("tab scroll arrows shown")
    for index in range(dock.tabs.count()):
        dock.tabs.setCurrentIndex(index)
        qtbot.wait(20)
        problems += [f"{dock.tabs.tabText(index)}: {p}" for p in _layout_problems(dock)]
        stem = f"{name}_{index + 1}_{dock.tabs.tabText(index).lower()}"
        dock.grab().save(str(OUT / f"{stem}.png"))
        dock.tabs.currentWidget().widget().grab().save(str(OUT / f"{stem}_whole.png"))
    return problems + _table_problems(dock.run_page)


@pytest.mark.parametrize(("width", "height"), SCREENS)
def test_layout_at_screen_size(window, qtbot, tmp_path, local_backend, width, height) -> None:
    dock = window.dock
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    _fill(dock, qtbot, local_backend, tmp_path)
    qtbot.wait(50)
    assert _check_and_grab(window, qtbot, f"{width}x{height}_default") == []
    window.resizeDocks([dock], [1], Qt.Orientation.Horizontal)  # the narrowest the dock goes
    qtbot.wait(50)
    assert dock.width() <= 340
    assert _check_and_grab(window, qtbot, f"{width}x{height}_narrowest") == []
    run = dock.run_page
    assert not run.progress.isTextVisible()  # no text drawn over the bar: it is below it
    assert run.progress_label.text() == "2 of 4 tiles done"


def test_tiles_sort_naturally(qgis_app) -> None:
    from openeo_tile_jobs.ui.run_page import RunPage

    page = RunPage()
    ids = ["x0_y10", "x0_y2", "x10_y0", "x2_y0", "x0_y1"]
    page.set_database("run.gpkg", [{"fid": i, "tile_id": t, "status": "not_started"} for i, t in enumerate(ids)])
    page.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    shown = [page.proxy.index(row, 0).data() for row in range(page.proxy.rowCount())]
    assert shown == ["x0_y1", "x0_y2", "x0_y10", "x2_y0", "x10_y0"]
