"""Adaptive re-tiling: a tile whose job failed for its size is split into 4 child tiles.

What counts as "failed for its size" is a :class:`SizeErrorRules` (the engine's
``split_error_codes`` and ``split_log_patterns``): an entry of the job's error log whose
``code`` is one of the codes, or whose message matches one of the patterns (the Local demo
backend's ``--max-pixels-per-job`` gives code ``OutOfMemory``, "... ran out of memory ...").

The children live in the same job database, as ordinary tiles (``not_started``; they run like
any tile, with their own bounding box):

* ids: the parent's id plus the quadrant, ``x3_y5.0`` … ``x3_y5.3``; a grandchild ``x3_y5.2.1``;
* quadrant ``q = dx + 2 * dy`` of the parent's bounding box in the tiling CRS (the database's
  CRS): 0 south-west, 1 south-east, 2 north-west, 3 north-east; the child's geometry is the
  parent's geometry cut by that quadrant, so the children together are the parent (a quadrant
  outside a clipped parent's shape makes no child);
* ``parent_tile_id`` names the parent; ``row`` / ``col`` are the parent's;
* the parent's status becomes ``split`` (final, neither finished nor failed; no result).

:func:`split_tile` does all of it in ONE transaction, which first checks that the parent is
not split yet: a crash leaves either the parent as it was (its failed job is seen again when
the run resumes, and split then) or the parent split with all its children, never duplicates.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import shapely

from . import gpkg, statuses
from .jobdb import PARENT_COLUMN, JobDB, _to_sql, now_utc

NOT_STARTED = statuses.NOT_STARTED
_q = gpkg.quote_identifier
#: Error codes of the Local demo backend and of backends that name an executor's lack of memory.
DEFAULT_SIZE_ERROR_CODES: tuple[str, ...] = ("OutOfMemory",)
#: Log texts of jobs that were too big (Spark/YARN executors killed, JVM and Python out of memory).
DEFAULT_SIZE_LOG_PATTERNS: tuple[str, ...] = (
    r"\bout of memory\b",
    r"\bOutOfMemoryError\b",
    r"\bexceed(?:ing|ed|s)? (?:the )?memory limits?\b",
    r"\btoo much memory\b",
)


class SplitError(Exception):
    """The tile cannot be split (already split, not found, nothing of it in any quadrant)."""


@dataclass(frozen=True)
class SizeErrorRules:
    """Which job errors mean "the tile is too big" (codes exact, patterns searched; case-insensitive)."""

    codes: tuple[str, ...] = DEFAULT_SIZE_ERROR_CODES
    patterns: tuple[str, ...] = DEFAULT_SIZE_LOG_PATTERNS

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"Not a usable size-error pattern {pattern!r}: {exc}") from exc

    def match(self, logs: Iterable[Mapping[str, Any]]) -> Optional[str]:
        """What in these error-log entries says the job was too big (None: nothing does)."""
        codes = {c.lower() for c in self.codes}
        compiled = [re.compile(p, re.IGNORECASE) for p in self.patterns]
        for entry in logs:
            code = str(entry.get("code") or "")
            if code and code.lower() in codes:
                return f"error code {code}"
            message = str(entry.get("message") or "")
            for pattern in compiled:
                found = pattern.search(message)
                if found:
                    return f"log text {found.group(0)!r}"
        return None


@dataclass(frozen=True)
class Child:
    """One planned child tile (geometry in the tiling CRS)."""

    quadrant: int
    tile_id: str
    geometry: Any


@dataclass(frozen=True)
class SplitResult:
    """What :func:`split_tile` wrote."""

    parent_fid: int
    parent_tile_id: str
    level: int  # the children's level: 1 for children of an original tile
    children: tuple[tuple[int, str], ...]  # (fid, tile_id)


def child_id(parent_tile_id: str, quadrant: int) -> str:
    return f"{parent_tile_id}.{quadrant}"


def quadrant_boxes(bounds: Sequence[float]) -> list[tuple[int, Any]]:
    """The 4 quadrants of a bounding box, numbered ``dx + 2 * dy`` (0 SW, 1 SE, 2 NW, 3 NE)."""
    x0, y0, x1, y1 = bounds
    xm, ym = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    xs, ys = ((x0, xm), (xm, x1)), ((y0, ym), (ym, y1))
    return [(dx + 2 * dy, shapely.box(xs[dx][0], ys[dy][0], xs[dx][1], ys[dy][1])) for dy in (0, 1) for dx in (0, 1)]


def _polygonal(geom: Any) -> Any:
    """The polygon part of an intersection (lines and points where quadrants touch dropped)."""
    if geom.is_empty or geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def plan_children(parent_tile_id: str, geometry: Any) -> list[Child]:
    """The children of a tile: its geometry cut into the quadrants of its bounding box."""
    if geometry is None or geometry.is_empty:
        raise SplitError(f"Tile {parent_tile_id} has no geometry to split.")
    children = []
    for quadrant, box in quadrant_boxes(geometry.bounds):
        part = box if geometry.equals(shapely.box(*geometry.bounds)) else _polygonal(geometry.intersection(box))
        if not part.is_empty and part.area > 0:
            children.append(Child(quadrant, child_id(parent_tile_id, quadrant), part))
    return children


def split_level(db: JobDB, tile_id: str) -> int:
    """How many splits made this tile (0: a tile of the grid; 1: a child; 2: a grandchild)."""
    if PARENT_COLUMN not in db.columns:
        return 0
    level, current, seen = 0, tile_id, set()
    while current is not None and current not in seen:
        seen.add(current)
        row = db.get_by_tile_id(current, columns=[PARENT_COLUMN])
        current = row.get(PARENT_COLUMN) if row else None
        level += 1 if current is not None else 0
    return level


def _geometry_type(conn: Any) -> str:
    row = conn.execute(
        "SELECT geometry_type_name FROM gpkg_geometry_columns WHERE table_name = ?", (JobDB.table,)
    ).fetchone()
    return str(row[0]).upper() if row else "POLYGON"


def _insert_children(
    conn: sqlite3.Connection, db: JobDB, children: list[Child], parent: str, row_col: tuple[Any, Any], stamp: str
) -> list[tuple[int, str]]:
    """Insert the children (``not_started``, the parent's row and col); their (fid, tile_id)."""
    geoms = [c.geometry for c in children]
    if _geometry_type(conn) == "MULTIPOLYGON":
        geoms = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms]
    blobs = gpkg.geometry_blobs(geoms, db.srs_id)
    columns = ", ".join(_q(c) for c in ("geom", "tile_id", "row", "col", "status", PARENT_COLUMN, "updated"))
    try:
        conn.executemany(
            f"INSERT INTO {db.table} ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(b, c.tile_id, *row_col, NOT_STARTED, parent, stamp) for b, c in zip(blobs, children)],
        )
    except sqlite3.IntegrityError as exc:  # the unique tile_id index: children of this tile exist already
        raise SplitError(f"Tile {parent} cannot be split: {exc}") from exc
    ids = [c.tile_id for c in children]
    found = conn.execute(
        f"SELECT fid, tile_id FROM {db.table} WHERE tile_id IN ({','.join('?' * len(ids))}) ORDER BY fid", ids
    )
    return [(int(f), str(t)) for f, t in found.fetchall()]


def split_tile(
    db: JobDB,
    fid: int,
    parent_values: Optional[Mapping[str, Any]] = None,
    *,
    before_commit: Optional[Callable[[], None]] = None,
) -> SplitResult:
    """Split one tile into its children in one transaction; the parent becomes ``split``.

    ``parent_values``: more columns written on the parent in the same transaction (e.g. its
    ``last_error``, costs). ``before_commit``: called inside the transaction (crash tests).
    Raises :class:`SplitError` when the tile is unknown, already split or has no area.
    """
    db.add_column(PARENT_COLUMN)  # runs made before re-tiling existed lack it (no-op otherwise)
    row = db.get(fid, columns=["tile_id"])
    if row is None:
        raise SplitError(f"No tile with fid {fid}.")
    tile_id = str(row["tile_id"])
    children = plan_children(tile_id, db.geometry(fid))
    if not children:
        raise SplitError(f"Tile {tile_id} has no area in any quadrant.")
    level = split_level(db, tile_id) + 1
    values = {k: v for k, v in dict(parent_values or {}).items() if k in db.columns and k not in ("fid", "tile_id")}
    values["status"] = statuses.SPLIT
    stamp = now_utc()
    with db.transaction() as conn:
        conn.execute(  # children are few: an index of only them keeps counting and finding them cheap
            f"CREATE INDEX IF NOT EXISTS idx_{db.table}_{PARENT_COLUMN} ON {db.table} ({_q(PARENT_COLUMN)}) "
            f"WHERE {_q(PARENT_COLUMN)} IS NOT NULL"
        )
        current = conn.execute(f"SELECT status, {_q('row')}, {_q('col')} FROM {db.table} WHERE fid = ?", (int(fid),))
        current = current.fetchone()
        if current is None or current[0] == statuses.SPLIT:
            raise SplitError(f"Tile {tile_id} is already split.")
        fids = _insert_children(conn, db, children, tile_id, (current[1], current[2]), stamp)
        sets = ", ".join(f"{_q(c)} = ?" for c in (*values, "updated"))
        params = [_to_sql(c, v) for c, v in values.items()]
        conn.execute(f"UPDATE {db.table} SET {sets} WHERE fid = ?", (*params, stamp, int(fid)))
        conn.execute("UPDATE gpkg_contents SET last_change = ? WHERE table_name = ?", (stamp, db.table))
        if before_commit is not None:
            before_commit()
    return SplitResult(int(fid), tile_id, level, tuple(fids))


def split_children(db: JobDB, parent_tile_id: str) -> list[dict[str, Any]]:
    """The child rows of a split tile, by fid."""
    if PARENT_COLUMN not in db.columns:
        return []
    return db.get_where(PARENT_COLUMN, [parent_tile_id])
