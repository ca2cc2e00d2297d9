"""Step 5, Run: output folder; start, stop, resume, retry failed tiles, cancel remote jobs;
live counts by status and backend, costs, elapsed time and time left; the tile table and its menu.

The page shows what the run engine reports; the run controller wires its buttons to the engine.
Every figure belongs to the run shown: opening another run resets them to that run's own.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QModelIndex, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QStyle,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core import statuses
from . import settings
from .flow_layout import FlowLayout
from .i18n import translator
from .run_estimate import EstimateView
from .run_figures import Clock, RunClock
from .tile_table import COLUMNS, FID_ROLE, TileFilterModel, TileTableModel
from .widgets import ElidingComboBox, FieldMessage, WrapLabel, add_field, button_row, icon, new_form, tooltip_shows_text

tr = translator("RunPage")

FAILED_STATUSES = tuple(sorted(statuses.FAILED_STATUSES))


def status_names() -> dict[str, str]:
    """Translated display names of the job statuses."""
    return {
        statuses.NOT_STARTED: tr("not started"),
        statuses.QUEUED_FOR_START: tr("queued for start"),
        statuses.CREATED: tr("created"),
        statuses.QUEUED: tr("queued"),
        statuses.RUNNING: tr("running"),
        statuses.FINISHED: tr("finished"),
        statuses.ERROR: tr("error"),
        statuses.CANCELED: tr("canceled"),
        statuses.SKIPPED: tr("skipped"),
        statuses.START_FAILED: tr("start failed"),
    }


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "–"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TileActions:
    """What the tile menu does; the dock fills these in with the engine's and the map's functions."""

    def __init__(self) -> None:
        self.show_logs: Optional[Callable[[dict], None]] = None
        self.retry: Optional[Callable[[list[int]], None]] = None
        self.open_folder: Optional[Callable[[dict], None]] = None
        self.add_result_layer: Optional[Callable[[dict], None]] = None
        self.copy_job_id: Optional[Callable[[dict], None]] = None
        self.zoom_to: Optional[Callable[[int], None]] = None
        self.preview: Optional[Callable[[dict], None]] = None


def build_tile_menu(menu: QMenu, rows: list[dict], actions: TileActions) -> None:
    """Fill ``menu`` for the selected tile rows (shared by the table and the map)."""
    if not rows:
        return
    first = rows[0]
    has_job = bool(first.get("id"))
    if actions.zoom_to:
        menu.addAction(tr("Zoom to tile"), lambda: actions.zoom_to(int(first["fid"])))
    if actions.preview:
        preview = menu.addAction(tr("Preview this tile"), lambda: actions.preview(first))
        preview.setToolTip(tr("Compute this tile now and show it in the Preview group; the run is not changed"))
    logs = menu.addAction(tr("Show job logs…"), lambda: actions.show_logs(first) if actions.show_logs else None)
    logs.setEnabled(has_job and actions.show_logs is not None)
    failed = [int(r["fid"]) for r in rows if r.get("status") in FAILED_STATUSES]
    retry = menu.addAction(
        icon("retry"),
        tr("Retry tile") if len(rows) == 1 else tr("Retry {count} failed tiles").format(count=len(failed)),
        lambda: actions.retry(failed) if actions.retry else None,
    )
    retry.setEnabled(bool(failed) and actions.retry is not None)
    menu.addSeparator()
    folder = menu.addAction(
        tr("Open result folder"), lambda: actions.open_folder(first) if actions.open_folder else None
    )
    folder.setEnabled(bool(first.get("result_dir")) and actions.open_folder is not None)
    layer = menu.addAction(
        tr("Add result layer"), lambda: actions.add_result_layer(first) if actions.add_result_layer else None
    )
    layer.setEnabled(bool(first.get("result_dir")) and actions.add_result_layer is not None)
    copy = menu.addAction(tr("Copy job id"), lambda: actions.copy_job_id(first) if actions.copy_job_id else None)
    copy.setEnabled(has_job and actions.copy_job_id is not None)


class RunPage(QWidget):
    startRequested = pyqtSignal()
    openRequested = pyqtSignal(str)
    #: A run of the project's run list was chosen (its job database's path).
    runChosen = pyqtSignal(str)
    stopRequested = pyqtSignal()
    retryFailedRequested = pyqtSignal()
    cancelRemoteRequested = pyqtSignal()
    checkNowRequested = pyqtSignal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.actions = TileActions()
        self.running = False
        #: Seconds for the run's clock (tests give a fake one).
        self.time_source: Clock = time.monotonic
        #: Active time and pace of the run shown (replaced by :meth:`set_database`).
        self.clock = RunClock(0.0, self.time_source)
        self.total = 0
        self.done = 0

        layout = QVBoxLayout(self)
        box = QGroupBox(tr("Run"))
        form = new_form()
        box.setLayout(form)
        self.database_label = WrapLabel(tr("Create the grid first (step Grid)."))
        form.addRow(tr("Job database:"), self.database_label)
        self.open_button = QPushButton(tr("Open a run…"))
        self.open_button.setToolTip(tr("Open the job database of an earlier run to watch or resume it"))
        form.addRow(self.open_button)
        self.runs = ElidingComboBox()  # a run's caption is its file name: as long as the analyst made it
        self.runs.setToolTip(tr("The runs whose tile layers are in this project"))
        self.show_run_button = QPushButton(tr("Show"))
        self.show_run_button.setToolTip(tr("Show this run here (Start resumes it)"))
        runs_row = QHBoxLayout()
        runs_row.addWidget(self.runs, 1)
        runs_row.addWidget(self.show_run_button)
        form.addRow(tr("Runs in this project:"), runs_row)
        self.set_runs([])
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        tooltip_shows_text(self.output)
        self.output_message = add_field(
            form, tr("Output folder"), self.output, tr("Where this run's results go (recorded with the run)")
        )
        self.start_button = QPushButton(icon("run"), tr("Start"))
        self.stop_button = QPushButton(icon("stop"), tr("Stop"))
        self.retry_button = QPushButton(icon("retry"), tr("Retry failed"))
        self.cancel_remote_button = QPushButton(tr("Cancel remote jobs"))
        self.start_button.setToolTip(tr("Start the run, or resume it where it stopped"))
        self.stop_button.setToolTip(tr("Stop watching and starting jobs; jobs already on the backends go on"))
        self.cancel_remote_button.setToolTip(tr("Cancel every job of this run that is still on a backend"))
        self.estimate = EstimateView()
        form.addRow(QLabel(tr("Estimate:")))
        form.addRow(self.estimate)  # the whole width: its text is a few lines long
        form.addRow(button_row(self.start_button, self.stop_button, self.retry_button, self.cancel_remote_button))
        self.start_message = FieldMessage()
        form.addRow(self.start_message)
        layout.addWidget(box)

        progress_box = QGroupBox(tr("Progress"))
        column = QVBoxLayout(progress_box)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)  # some styles draw the text over the bar: it goes below
        column.addWidget(self.progress)
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(True)
        column.addWidget(self.progress_label)
        self.counts_grid = FlowLayout()  # two columns of counts, one in a narrow dock
        self.count_labels: dict[str, QLabel] = {}
        cells = [self._count_cell(status) for status in statuses.ALL_STATUSES]
        cell_width = max(cell.sizeHint().width() for cell in cells)
        for cell in cells:
            cell.setFixedWidth(cell_width)
            self.counts_grid.addWidget(cell)
        column.addLayout(self.counts_grid)
        stats = new_form()
        self.backends_label = WrapLabel("–")
        self.costs_label = WrapLabel("–")
        self.elapsed_label = QLabel("–")
        self.eta_label = QLabel("–")
        self.downloads_label = QLabel("–")
        self.downloads_label.setWordWrap(True)
        self.next_check_label = QLabel("–")
        self.check_now_button = QPushButton(tr("Check now"))
        self.check_now_button.setToolTip(tr("Ask the backends about their jobs now, instead of when they are due"))
        next_check = QHBoxLayout()
        next_check.addWidget(self.next_check_label, 1)
        next_check.addWidget(self.check_now_button)
        stats.addRow(tr("Backends:"), self.backends_label)
        stats.addRow(tr("Next check:"), next_check)
        stats.addRow(tr("Results:"), self.downloads_label)
        stats.addRow(tr("Costs so far:"), self.costs_label)
        stats.addRow(tr("Elapsed:"), self.elapsed_label)
        stats.addRow(tr("Time left:"), self.eta_label)
        column.addLayout(stats)
        layout.addWidget(progress_box)

        tiles_box = QGroupBox(tr("Tiles"))
        column = QVBoxLayout(tiles_box)
        filter_row = QHBoxLayout()
        filter_row.addWidget(QLabel(tr("Show:")))
        self.filter = ElidingComboBox()
        self.filter.addItem(tr("All tiles"), ())
        self.filter.addItem(tr("Failed"), FAILED_STATUSES)
        self.filter.addItem(tr("Active"), tuple(statuses.ACTIVE_STATUSES))
        self.filter.addItem(tr("Finished"), (statuses.FINISHED,))
        filter_row.addWidget(self.filter, 1)
        column.addLayout(filter_row)
        self.model = TileTableModel(self)
        self.proxy = TileFilterModel(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(180)
        column.addWidget(self.table)
        self.map_tool_button = QToolButton()
        self.map_tool_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.map_tool_button.hide()
        column.addWidget(self.map_tool_button)
        layout.addWidget(tiles_box, 1)

        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)
        self.output_message.follow(self.output.fileChanged, self.output_problem)
        self.open_button.clicked.connect(self._choose_run)
        self.show_run_button.clicked.connect(self._show_chosen_run)
        self.start_button.clicked.connect(self.startRequested)
        self.stop_button.clicked.connect(self.stopRequested)
        self.retry_button.clicked.connect(self.retryFailedRequested)
        self.cancel_remote_button.clicked.connect(self.cancelRemoteRequested)
        self.check_now_button.clicked.connect(self.checkNowRequested)
        self.filter.currentIndexChanged.connect(lambda _: self.proxy.set_statuses(self.filter.currentData() or ()))
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.set_running(False)

    def _count_cell(self, status: str) -> QWidget:
        """Colour swatch, status name and its count (the count label is kept in :attr:`count_labels`)."""
        cell = QWidget()
        row = QHBoxLayout(cell)
        row.setContentsMargins(0, 0, 8, 0)
        swatch = QLabel()
        swatch.setFixedSize(12, 12)
        swatch.setStyleSheet(f"background: {statuses.CSS_HEX.get(statuses.color_of(status))}; border: 1px solid #333;")
        name = QLabel(status_names().get(status, status))
        count = QLabel("0")
        count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        count.setMinimumWidth(count.fontMetrics().horizontalAdvance("00,000"))
        count.setObjectName(f"count_{status}")
        self.count_labels[status] = count
        row.addWidget(swatch)
        row.addWidget(name, 1)
        row.addWidget(count)
        return cell

    def _choose_run(self) -> None:
        from qgis.PyQt.QtWidgets import QFileDialog

        start = settings.value("grid/database", "", str)
        path, _ = QFileDialog.getOpenFileName(self, tr("Open a run"), start, tr("GeoPackage (*.gpkg)"))
        if path:
            self.openRequested.emit(path)

    def _show_chosen_run(self) -> None:
        if self.runs.currentData():
            self.runChosen.emit(self.runs.currentData())

    def set_runs(self, runs: list[tuple[str, str]]) -> None:
        """The project's runs as (caption, job database path); the shown one stays selected."""
        current = self.runs.currentData()
        self.runs.clear()
        for caption, path in runs:
            self.runs.addItem(caption, path)
        self.runs.setCurrentIndex(max(0, self.runs.findData(current)))
        self.runs.setEnabled(bool(runs))
        self.show_run_button.setEnabled(bool(runs) and not self.running)

    def set_map_tool_action(self, action) -> None:
        """The action that turns on the tile menu on the map (owned by the run controller)."""
        self.map_tool_button.setDefaultAction(action)
        self.map_tool_button.show()

    # state -------------------------------------------------------------------------------
    def set_database(
        self,
        path: Optional[str],
        rows: Optional[list[dict]] = None,
        *,
        output_dir: str = "",
        costs: tuple[Optional[float], dict[str, float]] = (None, {}),
        active_s: float = 0.0,
    ) -> None:
        """Show a run: its tiles, its output folder, its own costs and active time (nothing of the last run)."""
        self.database_label.setText(path or tr("Create the grid first (step Grid)."))
        self.database_label.setToolTip(path or "")
        self.output.setFilePath(output_dir)
        self.output_message.clear_message()
        self.start_message.clear_message()
        self.model.set_rows(rows or [])
        self.table.resizeColumnsToContents()
        self.clock = RunClock(active_s, self.time_source)
        total, per_backend = costs
        self.show_costs(total, per_backend)
        self.show_backends({})
        self.show_counts(self.model.counts())

    def set_running(self, running: bool) -> None:
        self.running = running
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.output.setEnabled(not running)
        self.open_button.setEnabled(not running)
        self.show_run_button.setEnabled(not running and self.runs.count() > 0)
        self.estimate.set_enabled(not running)
        if running:
            self.clock.start()
            self._clock.start()
        else:
            self.clock.stop()
            self._clock.stop()
        self._tick()

    def output_problem(self) -> Optional[str]:
        """What is wrong with the output folder field (None when it is fine)."""
        from pathlib import Path

        path = self.output.filePath().strip()
        if not path:
            return tr("Choose a folder for the results.")
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            return tr("This is a file, not a folder.")
        if not folder.exists() and not folder.parent.is_dir():
            return tr("The folder {folder} does not exist.").format(folder=folder.parent)
        return None

    def validate_output(self) -> bool:
        return self.output_message.check(self.output_problem())

    # events -------------------------------------------------------------------------------
    def show_counts(self, counts: dict[str, int], total: Optional[int] = None) -> None:
        for status, label in self.count_labels.items():
            label.setText(f"{counts.get(status, 0):,}")
        self.total = total if total is not None else sum(counts.values())
        self.done = sum(n for s, n in counts.items() if s in statuses.FINAL_STATUSES)
        self.progress.setMaximum(max(1, self.total))
        self.progress.setValue(self.done)
        self.progress_label.setText(tr("{done:,} of {total:,} tiles done").format(done=self.done, total=self.total))
        self.clock.observe(self.done)
        self._tick()

    def show_backends(self, active_per_backend: dict[str, int], states: Optional[dict[str, str]] = None) -> None:
        names = sorted(set(active_per_backend) | set(states or {}))
        parts = []
        for name in names:
            text = tr("{backend}: {count} active").format(backend=name, count=active_per_backend.get(name, 0))
            state = (states or {}).get(name)
            if state and state != "ok":
                text += f" ({state.replace('_', ' ')})"
            parts.append(text)
        self.backends_label.setText("\n".join(parts) or "–")

    def show_next_check(self, seconds: Optional[float]) -> None:
        """When the engine asks the backends next (None: no job on any backend)."""
        text = "–" if seconds is None else tr("in {seconds} s").format(seconds=int(round(seconds)))
        self.next_check_label.setText(text)
        self.check_now_button.setEnabled(self.running and seconds is not None)

    def show_downloads(self, downloads: dict[str, int]) -> None:
        """Results downloaded, and those of finished tiles that could not be (the run is not complete)."""
        text = tr("{count} downloaded").format(count=downloads.get("downloaded", 0))
        failed = downloads.get("failed", 0)
        if failed:
            text += tr(", {count} not downloaded (Start tries again)").format(count=failed)
        self.downloads_label.setText(text)

    def show_costs(self, total: Optional[float], per_backend: Optional[dict[str, float]] = None) -> None:
        """The run's costs as its backends report them (``None``: none reported yet)."""
        if total is None:
            self.costs_label.setText("–")
            return
        text = f"{total:,.2f}"
        if per_backend and len(per_backend) > 1:
            text += " (" + ", ".join(f"{k}: {v:,.2f}" for k, v in sorted(per_backend.items())) + ")"
        self.costs_label.setText(text)

    def update_rows(self, rows: list[dict]) -> None:
        self.model.update_rows(rows)
        self._fit_columns(rows)

    def _fit_columns(self, rows: list[dict]) -> None:
        """Widen a column when a new value (a job id arriving) does not fit: no "j-..." cells."""
        metrics = self.table.fontMetrics()
        margin = 2 * self.table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin) + 12
        for column, field in enumerate(COLUMNS[:-1]):  # the last column stretches
            texts = {str(r[field]) for r in rows if r.get(field) is not None}
            if not texts:
                continue
            needed = max(metrics.horizontalAdvance(t) for t in texts) + margin
            if field == "status":
                needed += self.table.iconSize().width() + 6  # the colour swatch
            if needed > self.table.columnWidth(column):
                self.table.setColumnWidth(column, needed)

    def _tick(self) -> None:
        elapsed = self.clock.elapsed()
        self.elapsed_label.setText(format_duration(elapsed) if elapsed > 0 or self.running else "–")
        if self.total and self.done >= self.total:
            self.eta_label.setText(tr("done"))
        elif not self.running:
            self.eta_label.setText("–")
        else:
            span = self.clock.remaining_span(self.total)
            if span is None:
                self.eta_label.setText(tr("estimating…"))
            else:
                low, value, high = span
                text = format_duration(value)
                if format_duration(low) != format_duration(high):
                    text += f" ({format_duration(low)}–{format_duration(high)})"
                self.eta_label.setText(text)

    # table --------------------------------------------------------------------------------
    def selected_rows(self) -> list[dict]:
        rows = []
        for index in self.table.selectionModel().selectedRows():
            source = self.proxy.mapToSource(index)
            rows.append(self.model.row_data(source.row()))
        return rows

    def _double_clicked(self, index: QModelIndex) -> None:
        fid = self.proxy.data(index, FID_ROLE)
        if fid is not None and self.actions.zoom_to:
            self.actions.zoom_to(int(fid))

    def tile_menu(self, rows: Optional[list[dict]] = None) -> QMenu:
        menu = QMenu(self)
        build_tile_menu(menu, rows if rows is not None else self.selected_rows(), self.actions)
        return menu

    def _context_menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if index.isValid() and not self.table.selectionModel().isRowSelected(index.row(), QModelIndex()):
            self.table.selectRow(index.row())
        menu = self.tile_menu()
        if not menu.isEmpty():
            menu.exec(self.table.viewport().mapToGlobal(pos))

    def select_fid(self, fid: int) -> bool:
        row = self.model.row_of_fid(fid)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            self.filter.setCurrentIndex(0)
            index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectRow(index.row())
        self.table.scrollTo(index)
        return True

    def close_down(self) -> None:
        self._clock.stop()
