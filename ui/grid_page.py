"""Step 2, Grid: tile size, tiling CRS, anchor, clipping; a live tile count and preview; "Create grid".

The count and preview are computed by :func:`core.grid.make_grid` in a background task,
debounced while the user types; only the newest request's answer is shown.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry
from qgis.gui import QgsDoubleSpinBox, QgsFileWidget, QgsProjectionSelectionWidget, QgsSpinBox
from qgis.PyQt.QtCore import QTimer, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ..core import grid as core_grid
from . import settings
from .aoi import Aoi
from .i18n import translator
from .map_tools import AoiRubberBand
from .tasks import run_in_background
from .widgets import (
    ElidingComboBox,
    FieldMessage,
    WrapLabel,
    add_field,
    button_row,
    hint,
    icon,
    narrow_combo,
    new_form,
    tooltip_shows_text,
)

tr = translator("GridPage")
log = logging.getLogger(__name__)

#: Above this many tiles the preview shows the count only (drawing would slow the canvas).
PREVIEW_MAX_TILES = 5_000
DEBOUNCE_MS = 250
PREVIEW_STROKE = QColor(255, 140, 0)
PREVIEW_FILL = QColor(255, 140, 0, 0)


class GridParameters:
    """The grid step's choices, as :func:`core.grid.make_grid` takes them."""

    def __init__(self, tile_size: float, crs: Optional[str], anchor: str, clip: bool, max_tiles: int) -> None:
        self.tile_size = tile_size
        self.crs = crs
        self.anchor = anchor
        self.clip = clip
        self.max_tiles = max_tiles

    def make(self, aoi_wkt: str, aoi_crs: str, confirm_many: bool) -> core_grid.Grid:
        return core_grid.make_grid(
            aoi_wkt,
            tile_size=self.tile_size,
            crs=self.crs,
            aoi_crs=aoi_crs,
            anchor=self.anchor,
            clip=self.clip,
            max_tiles=self.max_tiles,
            confirm_many=confirm_many,
        )


def shapely_to_qgs(geometry: Any) -> QgsGeometry:
    import shapely

    result = QgsGeometry()
    result.fromWkb(shapely.to_wkb(geometry))
    return result


class GridPage(QWidget):
    #: Emitted with (Grid, job database path) after "Create grid" wrote the database.
    gridCreated = pyqtSignal(object, str)
    #: (text, Qgis.MessageLevel) for the message bar.
    message = pyqtSignal(str, int)

    def __init__(self, canvas, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.aoi: Optional[Aoi] = None
        self.preview_grid: Optional[core_grid.Grid] = None
        self.preview_count: Optional[int] = None
        self.preview_error: Optional[str] = None
        self.created_grid: Optional[core_grid.Grid] = None
        self.job_database: Optional[str] = None
        #: Writes the job database, in a worker thread: ``writer(grid, path) -> None``, set by the dock.
        self.writer: Optional[Callable[[core_grid.Grid, str], Any]] = None
        self._generation = 0
        self._confirmed_overwrite: Optional[str] = None
        self._task = None
        self._create_task = None
        self.preview_band = AoiRubberBand(canvas, PREVIEW_STROKE, PREVIEW_FILL, 1)

        layout = QVBoxLayout(self)
        layout.addWidget(hint(tr("Split the area into square tiles: one openEO batch job runs per tile.")))

        box = QGroupBox(tr("Tiles"))
        form = new_form()
        box.setLayout(form)
        self.tile_size = QgsDoubleSpinBox()
        self.tile_size.setRange(0, 10_000_000)
        self.tile_size.setDecimals(0)
        self.tile_size.setSingleStep(1000)
        self.tile_size.setSuffix(" m")
        self.tile_size.setClearValue(20_000)
        self.tile_size.setValue(settings.value("grid/tile_size", 20_000.0, float))
        self.tile_size_message = add_field(form, tr("Tile size"), self.tile_size, tr("Side of each square tile"))

        crs_column = QVBoxLayout()
        self.auto_crs = QRadioButton(tr("Automatic UTM zone"))
        self.chosen_crs = QRadioButton(tr("Chosen CRS"))
        group = QButtonGroup(self)
        group.addButton(self.auto_crs)
        group.addButton(self.chosen_crs)
        self.crs_widget = QgsProjectionSelectionWidget()
        self.crs_widget.setOptionVisible(QgsProjectionSelectionWidget.CrsOption.CrsNotSet, True)
        self.crs_widget.setNotSetText(tr("Choose a projected CRS…"))
        for combo in self.crs_widget.findChildren(QComboBox):
            narrow_combo(combo)  # else as wide as the longest CRS name QGIS lists
        saved_crs = settings.value("grid/crs", "", str)
        self.crs_widget.setCrs(QgsCoordinateReferenceSystem(saved_crs) if saved_crs else QgsCoordinateReferenceSystem())
        self.auto_crs.setChecked(not saved_crs)
        self.chosen_crs.setChecked(bool(saved_crs))
        self.auto_crs_label = hint("")
        crs_column.addWidget(self.auto_crs)
        crs_column.addWidget(self.auto_crs_label)
        crs_column.addWidget(self.chosen_crs)
        crs_column.addWidget(self.crs_widget)
        self.crs_message = add_field(form, tr("Tiling CRS"), crs_column, below=True)

        self.anchor = ElidingComboBox()
        self.anchor.addItem(tr("Lower-left corner of the area"), "aoi")
        self.anchor.addItem(tr("Multiples of the tile size (stable ids)"), "global")
        self.anchor.setCurrentIndex(max(0, self.anchor.findData(settings.value("grid/anchor", "aoi", str))))
        add_field(form, tr("Anchor"), self.anchor, tr("Where the grid starts"))

        self.clip = QCheckBox(tr("Clip tiles to the area"))
        self.clip.setChecked(settings.value("grid/clip", False, bool))
        form.addRow(self.clip)

        self.max_tiles = QgsSpinBox()
        self.max_tiles.setRange(1, core_grid.HARD_MAX_TILES)
        self.max_tiles.setSingleStep(1000)
        self.max_tiles.setClearValue(core_grid.DEFAULT_MAX_TILES)
        self.max_tiles.setValue(settings.value("grid/max_tiles", core_grid.DEFAULT_MAX_TILES, int))
        add_field(form, tr("Tile limit"), self.max_tiles, tr("More tiles than this need a confirmation"))
        layout.addWidget(box)

        preview = QGroupBox(tr("Preview"))
        column = QVBoxLayout(preview)
        self.count_label = WrapLabel(tr("Draw an area first."))
        font = self.count_label.font()
        font.setBold(True)
        self.count_label.setFont(font)
        column.addWidget(self.count_label)
        self.show_preview = QCheckBox(tr("Show the tiles on the map"))
        self.show_preview.setChecked(True)
        column.addWidget(self.show_preview)
        self.limit_warning = FieldMessage()
        column.addWidget(self.limit_warning)
        self.confirm_many = QCheckBox()
        self.confirm_many.hide()
        column.addWidget(self.confirm_many)
        layout.addWidget(preview)

        output = QGroupBox(tr("Job database"))
        form = new_form()
        output.setLayout(form)
        self.database = QgsFileWidget()
        self.database.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.database.setFilter(tr("GeoPackage (*.gpkg)"))
        self.database.setConfirmOverwrite(False)
        tooltip_shows_text(self.database)
        self.database.setFilePath(settings.value("grid/database", "", str))
        self.database_message = add_field(
            form, tr("GeoPackage"), self.database, tr("The tiles and the state of their jobs, in one file")
        )
        self.create_button = QPushButton(icon("grid"), tr("Create grid"))
        form.addRow(button_row(self.create_button))
        self.create_message = FieldMessage()
        form.addRow(self.create_message)
        layout.addWidget(output)
        layout.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.update_preview)
        self.tile_size.valueChanged.connect(self.schedule_preview)
        self.auto_crs.toggled.connect(self.schedule_preview)
        self.crs_widget.crsChanged.connect(self._crs_changed)
        self.anchor.currentIndexChanged.connect(self.schedule_preview)
        self.clip.toggled.connect(self.schedule_preview)
        self.max_tiles.valueChanged.connect(self.schedule_preview)
        self.show_preview.toggled.connect(lambda _: self._draw_preview())
        self.confirm_many.toggled.connect(lambda _: self.create_message.clear_message())
        self.database.fileChanged.connect(self._database_changed)
        self.database_message.follow(self.database.fileChanged, lambda: self._database_problem(confirming=False))
        self.create_button.clicked.connect(self.create_grid)

    # inputs -------------------------------------------------------------------
    def set_aoi(self, aoi: Optional[Aoi]) -> None:
        self.aoi = aoi
        if aoi is not None and self.create_message.has_message():
            self.create_message.clear_message()  # it was about the area (or the grid of the last one)
        self._update_auto_crs_label()
        self.schedule_preview()

    def _database_changed(self, path: str) -> None:
        if path.strip() != self._confirmed_overwrite:
            self._confirmed_overwrite = None  # a replace confirmed for another file does not carry over

    def _crs_changed(self, *_: Any) -> None:
        crs = self.crs_widget.crs()
        self.crs_widget.setToolTip(f"{crs.authid()} · {crs.description()}" if crs.isValid() else "")
        if crs.isValid():
            self.chosen_crs.setChecked(True)
        self.schedule_preview()

    def _update_auto_crs_label(self) -> None:
        if self.aoi is None:
            self.auto_crs_label.setText(tr("The UTM zone of the area's centre"))
            return
        from qgis.core import QgsCoordinateTransform, QgsProject

        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        centre = self.aoi.geometry.centroid().asPoint()
        centre = QgsCoordinateTransform(self.aoi.crs, wgs84, QgsProject.instance()).transform(centre)
        try:
            authid = core_grid.utm_crs_for(centre.x(), centre.y())
        except Exception:  # noqa: BLE001 (outside UTM: make_grid says why)
            self.auto_crs_label.setText(tr("No UTM zone here: choose a CRS"))
            return
        self.auto_crs_label.setText(f"{authid} · {QgsCoordinateReferenceSystem(authid).description()}")

    def parameters(self) -> GridParameters:
        crs = None
        if self.chosen_crs.isChecked() and self.crs_widget.crs().isValid():
            crs = self.crs_widget.crs().authid() or self.crs_widget.crs().toWkt()
        return GridParameters(
            tile_size=self.tile_size.value(),
            crs=crs,
            anchor=self.anchor.currentData(),
            clip=self.clip.isChecked(),
            max_tiles=self.max_tiles.value(),
        )

    def _validate_inputs(self) -> bool:
        ok = True
        if self.tile_size.value() <= 0:
            self.tile_size_message.show_message(tr("The tile size must be more than 0 m."))
            ok = False
        else:
            self.tile_size_message.clear_message()
        crs = self.crs_widget.crs()
        if self.chosen_crs.isChecked() and not crs.isValid():
            self.crs_message.show_message(tr("Choose a CRS, or use the automatic UTM zone."))
            ok = False
        elif self.chosen_crs.isChecked() and crs.isGeographic():
            self.crs_message.show_message(tr("Choose a projected CRS in metres: tile sizes are in metres."))
            ok = False
        else:
            self.crs_message.clear_message()
        return ok

    # preview ------------------------------------------------------------------
    def schedule_preview(self, *_: Any) -> None:
        self._generation += 1
        self._timer.start()

    def update_preview(self) -> None:
        """Recount the tiles in the background (the newest request wins)."""
        self._timer.stop()
        self._generation += 1
        generation = self._generation
        self.preview_grid = None
        self.preview_count = None
        self.preview_error = None
        inputs_ok = self._validate_inputs()
        if self.aoi is None or not inputs_ok:
            if self.aoi is None:
                self.count_label.setText(tr("Draw an area first."))
            else:
                self.count_label.setText(tr("Fix the fields above to see the tiles."))
            self._show_limit(None)
            self._draw_preview()
            return
        params = self.parameters()
        wkt, aoi_crs = self.aoi.wkt(), self.aoi.crs_authid()
        self.count_label.setText(tr("Counting tiles…"))

        def work(_task):
            return params.make(wkt, aoi_crs, confirm_many=True)

        def done(grid: core_grid.Grid) -> None:
            if generation == self._generation:
                self._preview_ready(grid, None)

        def failed(error: BaseException) -> None:
            if generation == self._generation:
                self._preview_ready(None, error)

        self._task = run_in_background(tr("Counting tiles"), work, done, failed)

    def _preview_ready(self, grid: Optional[core_grid.Grid], error: Optional[BaseException]) -> None:
        if grid is None:
            if isinstance(error, core_grid.TooManyTilesError):
                self.preview_count = error.count
                self.count_label.setText(tr("At least {count:,} tiles: far too many.").format(count=error.count))
                self.preview_error = str(error)
            else:
                self.preview_error = str(error) if error else tr("Cannot make tiles.")
                self.count_label.setText(self.preview_error)
            self._show_limit(self.preview_count)
            self._draw_preview()
            return
        self.preview_grid = grid
        self.preview_count = len(grid)
        text = tr("{count:,} tiles of {size:g} m in {crs}").format(count=len(grid), size=grid.tile_size, crs=grid.crs)
        if grid.messages:
            text += "\n" + "\n".join(grid.messages)
        self.count_label.setText(text)
        self._show_limit(len(grid))
        self._draw_preview()

    def _show_limit(self, count: Optional[int]) -> None:
        limit = self.max_tiles.value()
        above = count is not None and count > limit and self.preview_grid is not None
        if above:
            self.limit_warning.show_message(
                tr(
                    "{count:,} tiles is above the limit of {limit:,}: so many batch jobs take long and may cost a lot."
                ).format(count=count, limit=limit)
            )
            self.confirm_many.setText(tr("Yes, create {count:,} tiles").format(count=count))
            self.confirm_many.show()
        else:
            self.limit_warning.clear_message()
            self.confirm_many.hide()
            self.confirm_many.setChecked(False)

    def _draw_preview(self) -> None:
        grid = self.preview_grid
        if grid is None or not self.show_preview.isChecked() or len(grid) > PREVIEW_MAX_TILES:
            self.preview_band.clear()
            return
        import shapely

        outlines = shapely.multipolygons(shapely.get_parts(grid.geometries))
        self.preview_band.show(shapely_to_qgs(outlines), QgsCoordinateReferenceSystem(grid.crs))

    # create ---------------------------------------------------------------------
    def validate(self) -> bool:
        """Check everything "Create grid" needs; show a message beside each bad field."""
        ok = self._validate_inputs()
        if self.aoi is None:
            self.create_message.show_message(tr("Draw an area first (step Area)."))
            return False
        if not self.database_message.check(self._database_problem(confirming=True)):
            ok = False
        if not ok:
            return False
        if self.preview_error and self.preview_grid is None:
            self.create_message.show_message(self.preview_error)
            return False
        if self.preview_count is not None and self.preview_count > self.max_tiles.value():
            if not self.confirm_many.isChecked():
                self.create_message.show_message(
                    tr("Confirm that you want {count:,} tiles, or use larger tiles.").format(count=self.preview_count)
                )
                return False
        self.create_message.clear_message()
        return True

    def _database_problem(self, confirming: bool) -> Optional[str]:
        """What is wrong with the job database field; ``confirming``: Create grid was pressed."""
        path = self.database.filePath().strip()
        if not path:
            return tr("Choose where to save the job database.")
        if not path.lower().endswith(".gpkg"):
            return tr("The job database is a GeoPackage: its name ends in .gpkg.")
        if Path(path).exists() and self._confirmed_overwrite != path:
            if not confirming:
                return tr("This file exists: press Create grid twice to replace it and its run.")
            self._confirmed_overwrite = path
            return tr("This file exists: press Create grid again to replace it and its run.")
        if not Path(path).parent.is_dir():
            return tr("The folder {folder} does not exist.").format(folder=Path(path).parent)
        return None

    def create_grid(self) -> None:
        if not self.validate():
            return
        if self.writer is None:
            self.create_message.show_message(tr("The job database cannot be written in this session."))
            return
        self._remember()
        params = self.parameters()
        wkt, aoi_crs = self.aoi.wkt(), self.aoi.crs_authid()
        confirm = self.confirm_many.isChecked()
        path = self.database.filePath().strip()
        self.create_button.setEnabled(False)
        self.create_message.clear_message()
        self.count_label.setText(tr("Creating the grid…"))

        writer = self.writer

        def work(_task):
            grid = params.make(wkt, aoi_crs, confirm_many=confirm)
            writer(grid, path)
            return grid

        def done(grid: core_grid.Grid) -> None:
            self.create_button.setEnabled(True)
            self.created_grid = grid
            self.job_database = path
            self.count_label.setText(tr("{count:,} tiles written to {path}").format(count=len(grid), path=path))
            self.preview_band.clear()
            self.gridCreated.emit(grid, path)

        self._create_task = run_in_background(tr("Creating the tile grid"), work, done, self._create_failed)

    def _create_failed(self, error: BaseException) -> None:
        log.warning("Cannot create the grid: %s", error)
        self.create_button.setEnabled(True)
        self.create_message.show_message(str(error))

    def _remember(self) -> None:
        params = self.parameters()
        settings.set_value("grid/tile_size", params.tile_size)
        settings.set_value("grid/crs", params.crs or "")
        settings.set_value("grid/anchor", params.anchor)
        settings.set_value("grid/clip", params.clip)
        settings.set_value("grid/max_tiles", params.max_tiles)
        settings.set_value("grid/database", self.database.filePath().strip())

    def close_down(self) -> None:
        self._timer.stop()
        self.preview_band.remove()
