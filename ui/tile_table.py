"""The tile table: a QAbstractTableModel over the job database's rows.

It loads every row once (:meth:`JobDB.all_rows` on the columns it shows) and then
refreshes only the rows an event names, by feature id (adding those it does not have: the
children of a split tile).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional

from qgis.PyQt.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from qgis.PyQt.QtGui import QBrush, QColor

from ..core import statuses
from ..gis.tile_style import MAP_TIP_FIELDS
from .i18n import translator

tr = translator("TileTable")

#: Job database columns shown, in display order: the map tip's, but the last error (too long for a cell).
COLUMNS: tuple[str, ...] = tuple(field for field, _caption in MAP_TIP_FIELDS if field != "last_error")
DB_COLUMNS = ("fid", "tile_id", "status", "id", "backend_name", "duration", "costs", "result_dir", "last_error")
FID_ROLE = Qt.ItemDataRole.UserRole + 1
STATUS_ROLE = Qt.ItemDataRole.UserRole + 2


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: Any) -> tuple:
    """Sort key that orders numbers inside text by value: ``x0_y2`` before ``x0_y10``."""
    parts = _DIGITS.split("" if text is None else str(text))
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts if part)


def headers() -> list[str]:
    """Column titles, one per :data:`COLUMNS` entry (written out so translation tools find them)."""
    return [tr("Tile"), tr("Status"), tr("Job id"), tr("Backend"), tr("Duration"), tr("Costs")]


class TileTableModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[dict[str, Any]] = []
        self._index: dict[int, int] = {}  # fid -> row
        self._headers = headers()

    # loading ------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = [dict(r) for r in rows]
        self._index = {int(r["fid"]): i for i, r in enumerate(self._rows)}
        self.endResetModel()

    def load(self, db) -> None:
        self.set_rows(db.all_rows(columns=[c for c in DB_COLUMNS if c != "fid"]))

    def update_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the rows with these fids (e.g. from :meth:`JobDB.get_many`); rows with fids the
        model does not have yet are added (tiles split from a tile too big, :mod:`core.retile`)."""
        new = []
        for row in rows:
            i = self._index.get(int(row["fid"]))
            if i is None:
                new.append(dict(row))
                continue
            self._rows[i].update(row)
            self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for row in new:
                self._index[int(row["fid"])] = len(self._rows)
                self._rows.append(row)
            self.endInsertRows()

    def row_data(self, row: int) -> dict[str, Any]:
        return self._rows[row]

    def row_of_fid(self, fid: int) -> Optional[int]:
        return self._index.get(fid)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self._rows:
            out[row.get("status") or ""] = out.get(row.get("status") or "", 0) + 1
        return out

    # Qt API ----------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self._headers[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = COLUMNS[index.column()]
        value = row.get(column)
        if role == Qt.ItemDataRole.DisplayRole:
            if column == "costs":
                return "" if value is None else f"{float(value):.2f}"
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.DecorationRole and column == "status":
            return QColor(statuses.CSS_HEX.get(statuses.color_of(value), "#808080"))
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == "status" and row.get("last_error"):
                return str(row["last_error"])
            return None if value is None else str(value)  # the full text of a narrow cell
        if role == Qt.ItemDataRole.ForegroundRole and column == "status" and value in statuses.FAILED_STATUSES:
            return QBrush(QColor("#b00000"))
        if role == FID_ROLE:
            return int(row["fid"])
        if role == STATUS_ROLE:
            return row.get("status")
        if role == Qt.ItemDataRole.UserRole:  # sort key
            if column == "costs":
                return float(value) if value is not None else -1.0
            return "" if value is None else str(value)
        return None


class TileFilterModel(QSortFilterProxyModel):
    """Sorts the table and filters it by status (empty filter: every tile)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self._statuses: frozenset[str] = frozenset()

    def set_statuses(self, wanted: Sequence[str]) -> None:
        self._statuses = frozenset(wanted)
        self.invalidateFilter()

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:
        """Tile ids and job ids sort naturally, costs by value."""
        a, b = left.data(self.sortRole()), right.data(self.sortRole())
        if isinstance(a, str) and isinstance(b, str):
            return natural_key(a) < natural_key(b)
        return super().lessThan(left, right)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        if not self._statuses:
            return True
        model = self.sourceModel()
        return model.data(model.index(source_row, 0, source_parent), STATUS_ROLE) in self._statuses
