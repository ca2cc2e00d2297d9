"""The job database: one GeoPackage per run, which is also the tile layer QGIS draws.

Public API
----------
``JobDB.create(path, grid, run=None, *, overwrite=False) -> JobDB``
    Write a new GeoPackage from a :class:`core.grid.Grid` and a run record. The file appears
    atomically (built under a temporary name, then renamed); on any error nothing is left.
``JobDB.open(path) -> JobDB``
    Open an existing run file (raises :class:`JobDBError` when it is not one of ours).
``db.run_record() -> dict`` / ``db.update_run_record(changes: Mapping) -> dict``
    The run record: ``aoi_wkt``, ``aoi_crs``, ``aoi_wkt_tiling`` (AOI in the tiling CRS),
    ``tiling`` (``crs``, ``tile_size``, ``anchor``, ``fit``, ``clip``, ``tile_count``), ``job_spec``,
    ``backends``, ``created``, ``plugin_version``, ``schema_version`` and whatever else the caller
    stores (JSON values). Keys that look like credentials are refused (:func:`check_no_secrets`).
``db.count_by_status(statuses=()) -> dict[str, int]``
``db.get_by_status(statuses, max=None, columns=None) -> list[dict]``   (ordered by fid)
``db.get(fid) -> dict | None``, ``db.get_by_tile_id(tile_id) -> dict | None``,
``db.get_many(fids) -> list[dict]``, ``db.all_rows(columns=None) -> list[dict]``
``db.find_by_job_id(job_id, backend_name=None) -> dict | None``, ``db.find_by_client_token(token)``
``db.get_where(column, values, max=None, columns=None) -> list[dict]``, ``db.count_by(column) -> dict``,
``db.sum_costs() -> (total | None, {backend_name: costs})``, ``db.recount()`` (repair the counts)
``db.update(fid, **values)`` / ``db.update_many({fid: {column: value}}) -> int``
    One transaction for the whole batch, touching only those rows; ``updated`` is set to now
    (UTC) on every row in the batch. Unknown columns raise ``KeyError`` (see ``add_column``).
``db.add_column(name, sql_type="TEXT")``  extra attribute column (e.g. usage stats).
``db.transaction()``  one write transaction on the raw connection (e.g. :mod:`core.retile`'s inserts).
``db.geometry_4326(fid) -> dict`` (GeoJSON), ``db.geometries_4326(fids) -> dict[fid, dict]``,
``db.bbox(fid, crs="EPSG:4326") -> dict`` (``west``, ``south``, ``east``, ``north``, ``crs``),
``db.geometries_4326_shapely(fids)``, ``db.geometry(fid)`` / ``db.geometries(fids)`` (shapely,
tiling CRS), ``db.crs`` (tiling CRS; EPSG:4326 for a run imported from an openeo CSV),
``db.path``, ``db.table`` (``"tiles"``), ``db.columns``, ``db.close()``; a context manager.
``db.conn`` + ``db.lock``: the raw sqlite3 connection, for read-only SQL under ``with db.lock:``.
``hold_wal(path) -> sqlite3.Connection``: keeps the WAL files in place for QGIS's readers (below).

Files and tables
----------------
* ``tiles`` (the layer): ``fid``, ``geom`` (tiling CRS, POLYGON or MULTIPOLYGON), and the
  columns in :data:`TILE_COLUMNS`. Index on ``status``, ``id``, ``client_token``; ``tile_id``
  unique. R-tree spatial index kept by the standard GeoPackage triggers.
* ``run``: key/value (JSON text) rows, registered as a GeoPackage attributes table.
* ``tiles_status_counts`` (status, n): kept by triggers on ``tiles`` (so also after edits made
  in QGIS), which makes ``count_by_status`` independent of the number of tiles. Like GDAL's
  ``gpkg_ogr_contents`` it is a helper table, not registered in ``gpkg_contents``.
* WAL journal, so readers (QGIS's OGR provider, other processes) never block the writer and
  never see a half-written transaction; ``synchronous=FULL``, so a committed row (e.g. a
  ``client_token`` written before POST /jobs) survives a power cut, not only a crash (~0.5 ms).
  QGIS (GDAL >= 3.4.2) opens a GeoPackage layer read-only with ``NOLOCK=ON``, which GDAL obeys
  only when no ``-wal`` file exists at that moment: such a connection fails every read
  ("unable to open database file") once a writer creates the ``-wal``. :func:`hold_wal` keeps
  the ``-wal`` in place while a layer shows the file (``gis.tile_layer``). A rollback journal is
  no way out: QGIS's lock-free readers then read pages mid-commit (measured: 8 of 47 full reads
  incomplete, "database disk image is malformed"; ``benchmarks/bench_gis_live_layer.py``).

The EPSG:4326 geometry is not stored: it is computed on demand from the tiling-CRS geometry
with pyproj, vertex by vertex (exactly what geopandas ``to_crs`` does, so the process parameter
is what openeo's notebook would send). Storing it would make the layer carry a second geometry
(poorly supported by QGIS) or a long text column in the attribute table, would double the
creation time at 100,000 tiles, and could disagree with the real geometry after an edit.
Reading and transforming one tile costs ~0.05 ms.

Threading
---------
A ``JobDB`` holds one sqlite3 connection opened with ``check_same_thread=False`` and guarded by
a lock: every method may be called from any thread (e.g. created on QGIS's main thread, written
from the scheduler's worker thread); calls are serialised. Other processes and OGR connections
read the file concurrently (WAL). Do not share the object across ``fork``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import shapely

from . import gpkg, statuses
from .grid import Grid, crs_string, transform_geometries

SCHEMA_VERSION = 1
TILES_TABLE = "tiles"
RUN_TABLE = "run"
#: Tile counts per status, kept by triggers (count_by_status is O(statuses), not O(tiles)).
COUNTS_TABLE = "tiles_status_counts"

#: The tile a child tile was split from (:mod:`core.retile`); NULL for the grid's own tiles.
PARENT_COLUMN = "parent_tile_id"
#: Columns of the tiles table besides ``fid`` and ``geom``: name -> SQL type.
#: openeo MultiBackendJobManager's columns first, then ours.
TILE_COLUMNS: dict[str, str] = {
    "tile_id": "TEXT NOT NULL",  # stable tile name (see core.grid); unique index
    "row": "INTEGER",  # northwards index (NULL for a predefined grid)
    "col": "INTEGER",  # eastwards index
    "status": f"TEXT NOT NULL DEFAULT '{statuses.NOT_STARTED}'",  # openeo status vocabulary
    "id": "TEXT",  # openEO batch job id
    "backend_name": "TEXT",
    "start_time": "TEXT",  # RFC 3339, as openeo writes it
    "running_start_time": "TEXT",
    "costs": "REAL",
    "cpu": "TEXT",  # usage, formatted like openeo: "123 cpu-seconds"
    "memory": "TEXT",
    "duration": "TEXT",
    "title": "TEXT",
    "description": "TEXT",
    "progress": "REAL",  # job progress in % as the backend reports it (panel)
    "attempts": "INTEGER NOT NULL DEFAULT 0",  # how many times a job was started for this tile
    "last_error": "TEXT",
    "client_token": "TEXT",  # unique token recorded before POST /jobs (crash recovery)
    "result_dir": "TEXT",  # folder of this tile's downloaded results
    "result_files": "TEXT",  # JSON list of downloaded file paths
    "result_status": "TEXT",  # download state, e.g. pending / downloading / done / failed
    "updated": "DATETIME",  # last change of this row, UTC 'YYYY-MM-DDTHH:MM:SS.sssZ'
    PARENT_COLUMN: "TEXT",
}
#: Columns stored as JSON text and returned decoded.
JSON_COLUMNS = frozenset({"result_files"})
#: Columns the caller may not write.
READ_ONLY_COLUMNS = frozenset({"fid", "geom", "tile_id", "updated"})

_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|credential|api[_-]?key|authorization|bearer)", re.I)
_SQL_TYPES = {"TEXT", "INTEGER", "REAL", "DATETIME", "DATE", "BOOLEAN"}


class JobDBError(Exception):
    """A file that cannot be used as a job database, or a bad request to it."""


def now_utc() -> str:
    """UTC now in GeoPackage DATETIME form (millisecond precision)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def plugin_version() -> str:
    meta = Path(__file__).resolve().parent.parent / "metadata.txt"
    with contextlib.suppress(OSError):
        for line in meta.read_text(encoding="utf-8").splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    return "unknown"


def check_no_secrets(value: Any, where: str = "run record") -> None:
    """Refuse values whose keys look like credentials (the run file is shared freely)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if _SECRET_KEY.search(str(k)) and k != "client_token":
                raise JobDBError(f"The {where} must not hold credentials (key {k!r}).")
            check_no_secrets(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_no_secrets(v, f"{where}[{i}]")


def _to_sql(column: str, value: Any) -> Any:
    """Python/numpy/pandas value -> SQLite value (NaN/NaT/None -> NULL)."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    if column in JSON_COLUMNS and not isinstance(value, str) and not _is_na(value):
        return json.dumps(list(value) if isinstance(value, (tuple, set, np.ndarray)) else value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) else v
    if isinstance(value, (np.bool_, bool)):
        return int(value)
    if isinstance(value, (int, str, bytes)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    try:  # pandas NA / NaT
        import pandas as pd

        if pd.isna(value):
            return None
    except (ImportError, TypeError, ValueError):
        pass
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


def _is_na(value: Any) -> bool:
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:
        return False


def _from_sql(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


_q = gpkg.quote_identifier


class JobDB:
    """A run's GeoPackage (see module docstring). Use :meth:`create` or :meth:`open`."""

    table = TILES_TABLE

    def __init__(self, path: Union[str, Path], _conn: sqlite3.Connection):
        self.path = Path(path)
        self._conn = _conn
        self._lock = threading.RLock()
        self._columns = self._read_columns()
        row = _conn.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name = ?", (TILES_TABLE,)).fetchone()
        srs_id = row[0]
        defn = _conn.execute(
            "SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys WHERE srs_id = ?",
            (srs_id,),
        ).fetchone()
        self.srs_id = srs_id
        self.crs = f"EPSG:{defn[1]}" if defn[0].upper() == "EPSG" else crs_string(_pyproj_crs(defn[2]))

    # ------------------------------------------------------------------ creation / opening
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        gpkg.register_st_functions(conn)
        return conn

    @classmethod
    def create(
        cls,
        path: Union[str, Path],
        grid: Grid,
        run: Optional[Mapping[str, Any]] = None,
        *,
        overwrite: bool = False,
    ) -> JobDB:
        """Write a new run file from ``grid``; ``run`` adds to / overrides the derived run record.

        ``overwrite=True`` replaces an existing file (never one that is open elsewhere).
        """
        path = Path(path)
        if path.suffix.lower() != ".gpkg":
            raise JobDBError(f"A job database is a GeoPackage: the file name must end in .gpkg, not {path.name!r}.")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists.")
        if not path.parent.is_dir():
            raise JobDBError(f"The folder {path.parent} does not exist.")
        if len(grid) == 0:
            raise JobDBError("The grid has no tiles.")
        record = {
            "schema_version": SCHEMA_VERSION,
            "plugin_version": plugin_version(),
            "created": now_utc(),
            "aoi_wkt": grid.aoi_input_wkt,
            "aoi_crs": grid.aoi_input_crs,
            "aoi_wkt_tiling": grid.aoi.wkt if grid.aoi is not None else None,
            "tiling": grid.parameters(),
            "grid_messages": list(grid.messages),
            "job_spec": None,
            "backends": [],
        }
        record.update(dict(run or {}))
        check_no_secrets(record)
        try:
            encoded = {k: json.dumps(v) for k, v in record.items()}
        except (TypeError, ValueError) as exc:
            raise JobDBError(f"The run record is not JSON-able: {exc}") from exc

        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".gpkg.tmp", dir=str(path.parent))
        os.close(fd)
        tmp = Path(tmp_name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a run file is an ordinary file
        try:
            conn = cls._connect(tmp)
            try:
                # Building a private temporary file: no journal, no fsync, all in cache.
                conn.execute("PRAGMA journal_mode = OFF")
                conn.execute("PRAGMA synchronous = OFF")
                conn.execute("PRAGMA locking_mode = EXCLUSIVE")
                conn.execute("PRAGMA cache_size = -262144")
                conn.execute("BEGIN")
                _write_tiles(conn, grid)
                conn.execute(
                    f"CREATE TABLE {RUN_TABLE} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
                    "key TEXT NOT NULL UNIQUE, value TEXT)"
                )
                gpkg.register_attributes_table(conn, RUN_TABLE, "openEO Tile Jobs run record (JSON values)")
                conn.executemany(f"INSERT INTO {RUN_TABLE} (key, value) VALUES (?, ?)", encoded.items())
                conn.execute("COMMIT")
                conn.execute("PRAGMA locking_mode = NORMAL")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            _fsync(tmp)
            if not overwrite and path.exists():
                raise FileExistsError(f"{path} already exists.")
            for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
                # an old run's WAL must never be applied to the new file (do not overwrite an open run)
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            os.replace(tmp, path)
            _fsync(path.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return cls.open(path)

    @classmethod
    def open(cls, path: Union[str, Path]) -> JobDB:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No job database at {path}.")
        conn = cls._connect(path)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            if app_id != gpkg.GPKG_APPLICATION_ID:
                raise JobDBError(f"{path} is not a GeoPackage.")
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {TILES_TABLE, RUN_TABLE} <= names:
                raise JobDBError(f"{path} is a GeoPackage but not an openEO Tile Jobs run (no tiles/run tables).")
            _ensure_wal(conn)
            conn.execute(
                "PRAGMA synchronous = FULL"
            )  # a commit (e.g. a client_token before POST /jobs) survives a power cut
            if COUNTS_TABLE not in names:  # a file from before the counts table, or trimmed by a tool
                conn.execute("BEGIN IMMEDIATE")
                _create_status_counts(conn)
                conn.execute("COMMIT")
            return cls(path, conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JobDBError(f"{path} is not a readable job database: {exc}") from exc
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> JobDB:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JobDB({str(self.path)!r})"

    @property
    def lock(self) -> threading.RLock:
        """Hold it around raw SQL on :attr:`conn` (every method of this class takes it)."""
        return self._lock

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JobDBError(f"{self.path} is closed.")
        return self._conn

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction (IMMEDIATE, under the lock, rolled back on error) for writes that
        :meth:`update_many` cannot express, e.g. inserting split tiles (:mod:`core.retile`)."""
        return self._write()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction under the lock; rolled back on error."""
        with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ------------------------------------------------------------------ schema
    def _read_columns(self) -> list[str]:
        return [r[1] for r in self._conn.execute(f"PRAGMA table_info({TILES_TABLE})")]

    @property
    def columns(self) -> list[str]:
        """Attribute columns of the tiles table (``fid`` first, without ``geom``)."""
        return [c for c in self._columns if c != gpkg.GEOMETRY_COLUMN]

    def add_column(self, name: str, sql_type: str = "TEXT") -> None:
        """Add an attribute column (no-op when it exists). ``sql_type``: TEXT, INTEGER, REAL, DATETIME..."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise JobDBError(f"Not a usable column name: {name!r}.")
        if sql_type.upper() not in _SQL_TYPES:
            raise JobDBError(f"Unsupported column type {sql_type!r}.")
        with self._lock:
            if name.lower() in (c.lower() for c in self._columns):
                return
            with self._write() as conn:
                conn.execute(f"ALTER TABLE {TILES_TABLE} ADD COLUMN {_q(name)} {sql_type.upper()}")
            self._columns = self._read_columns()

    # ------------------------------------------------------------------ run record
    def run_record(self) -> dict[str, Any]:
        with self._lock:
            rows = self.conn.execute(f"SELECT key, value FROM {RUN_TABLE} ORDER BY fid").fetchall()
        return {k: (json.loads(v) if v is not None else None) for k, v in rows}

    def update_run_record(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Set (upsert) keys of the run record in one transaction; returns the whole record."""
        check_no_secrets(dict(changes))
        try:
            encoded = [(str(k), json.dumps(v)) for k, v in changes.items()]
        except (TypeError, ValueError) as exc:
            raise JobDBError(f"The run record is not JSON-able: {exc}") from exc
        with self._write() as conn:
            conn.executemany(
                f"INSERT INTO {RUN_TABLE} (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                encoded,
            )
        return self.run_record()

    # ------------------------------------------------------------------ reads
    def _select(self, columns: Optional[Sequence[str]]) -> tuple[list[str], str]:
        cols = list(columns) if columns else self.columns
        if "fid" not in cols:
            cols = ["fid", *cols]
        unknown = [c for c in cols if c not in self._columns]
        if unknown:
            raise KeyError(f"Unknown column(s) {unknown}; the tiles table has {self.columns}.")
        return cols, ", ".join(_q(c) for c in cols)

    def _rows(self, sql: str, params: Sequence[Any], cols: list[str]) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.conn.execute(sql, params).fetchall()
        json_idx = [i for i, c in enumerate(cols) if c in JSON_COLUMNS]
        out = []
        for r in rows:
            d = dict(zip(cols, r))
            for i in json_idx:
                d[cols[i]] = _from_sql(cols[i], r[i])
            out.append(d)
        return out

    def count_by_status(self, statuses: Iterable[str] = ()) -> dict[str, int]:
        """Number of tiles per status (only the given statuses when some are given)."""
        wanted = list(statuses)
        with self._lock:
            rows = self.conn.execute(f"SELECT status, n FROM {COUNTS_TABLE} WHERE n > 0").fetchall()
        counts = {s: n for s, n in rows}
        if wanted:
            counts = {s: n for s, n in counts.items() if s in wanted}
        return counts

    def get_by_status(
        self,
        statuses: Iterable[str],
        max: Optional[int] = None,  # noqa: A002 (openeo JobDatabaseInterface spelling)
        columns: Optional[Sequence[str]] = None,
    ) -> list[dict[str, Any]]:
        """Rows whose status is one of ``statuses``, by fid, at most ``max``."""
        wanted = list(statuses)
        if not wanted:
            return []
        cols, sel = self._select(columns)
        sql = f"SELECT {sel} FROM {TILES_TABLE} WHERE status IN ({','.join('?' * len(wanted))}) ORDER BY fid"
        params: list[Any] = list(wanted)
        if max is not None:
            sql += " LIMIT ?"
            params.append(int(max))
        return self._rows(sql, params, cols)

    def get_where(
        self,
        column: str,
        values: Iterable[Any],
        max: Optional[int] = None,  # noqa: A002
        columns: Optional[Sequence[str]] = None,
    ) -> list[dict[str, Any]]:
        """Rows whose ``column`` is one of ``values`` (e.g. ``result_status``), by fid."""
        if column not in self._columns:
            raise KeyError(f"Unknown column {column!r}.")
        wanted = [_to_sql(column, v) for v in values]
        if not wanted:
            return []
        cols, sel = self._select(columns)
        sql = f"SELECT {sel} FROM {TILES_TABLE} WHERE {_q(column)} IN ({','.join('?' * len(wanted))}) ORDER BY fid"
        if max is not None:
            sql += f" LIMIT {int(max)}"
        return self._rows(sql, wanted, cols)

    def count_by(self, column: str) -> dict[Any, int]:
        """Number of tiles per non-NULL value of ``column`` (e.g. ``result_status``, ``backend_name``)."""
        if column not in self._columns:
            raise KeyError(f"Unknown column {column!r}.")
        with self._lock:
            rows = self.conn.execute(
                f"SELECT {_q(column)}, COUNT(*) FROM {TILES_TABLE} WHERE {_q(column)} IS NOT NULL GROUP BY 1"
            ).fetchall()
        return dict(rows)

    def sum_costs(self) -> tuple[Optional[float], dict[str, float]]:
        """(total costs or None when no tile has costs, costs per backend_name)."""
        with self._lock:
            rows = self.conn.execute(
                f"SELECT backend_name, SUM(costs) FROM {TILES_TABLE} WHERE costs IS NOT NULL GROUP BY backend_name"
            ).fetchall()
        per_backend = {str(k): float(v or 0.0) for k, v in rows}
        return (sum(per_backend.values()) if rows else None), per_backend

    def get(self, fid: int, columns: Optional[Sequence[str]] = None) -> Optional[dict[str, Any]]:
        cols, sel = self._select(columns)
        rows = self._rows(f"SELECT {sel} FROM {TILES_TABLE} WHERE fid = ?", [int(fid)], cols)
        return rows[0] if rows else None

    def get_by_tile_id(self, tile_id: str, columns: Optional[Sequence[str]] = None) -> Optional[dict[str, Any]]:
        cols, sel = self._select(columns)
        rows = self._rows(f"SELECT {sel} FROM {TILES_TABLE} WHERE tile_id = ?", [str(tile_id)], cols)
        return rows[0] if rows else None

    def find_by_job_id(self, job_id: str, backend_name: Optional[str] = None) -> Optional[dict[str, Any]]:
        cols, sel = self._select(None)
        sql, params = f"SELECT {sel} FROM {TILES_TABLE} WHERE id = ?", [job_id]
        if backend_name is not None:
            sql += " AND backend_name = ?"
            params.append(backend_name)
        rows = self._rows(sql + " ORDER BY fid LIMIT 1", params, cols)
        return rows[0] if rows else None

    def find_by_client_token(self, token: str) -> Optional[dict[str, Any]]:
        cols, sel = self._select(None)
        rows = self._rows(f"SELECT {sel} FROM {TILES_TABLE} WHERE client_token = ? LIMIT 1", [token], cols)
        return rows[0] if rows else None

    def get_many(self, fids: Iterable[int], columns: Optional[Sequence[str]] = None) -> list[dict[str, Any]]:
        """Rows with these fids, by fid (unknown fids are left out)."""
        ids = sorted({int(f) for f in fids})
        cols, sel = self._select(columns)
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            out += self._rows(
                f"SELECT {sel} FROM {TILES_TABLE} WHERE fid IN ({','.join('?' * len(chunk))}) ORDER BY fid", chunk, cols
            )
        return out

    def all_rows(self, columns: Optional[Sequence[str]] = None) -> list[dict[str, Any]]:
        cols, sel = self._select(columns)
        return self._rows(f"SELECT {sel} FROM {TILES_TABLE} ORDER BY fid", [], cols)

    def recount(self) -> dict[str, int]:
        """Rebuild the per-status counts from the tiles (they are kept by triggers; this is a repair)."""
        with self._write() as conn:
            _create_status_counts(conn)
        return self.count_by_status()

    def __len__(self) -> int:
        with self._lock:
            return self.conn.execute(f"SELECT COUNT(*) FROM {TILES_TABLE}").fetchone()[0]

    # ------------------------------------------------------------------ geometry
    def _blobs(self, fids: Sequence[int]) -> dict[int, bytes]:
        ids = [int(f) for f in fids]
        out: dict[int, bytes] = {}
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                q = f"SELECT fid, geom FROM {TILES_TABLE} WHERE fid IN ({','.join('?' * len(chunk))})"
                out.update(self.conn.execute(q, chunk).fetchall())
        return out

    def geometries(self, fids: Iterable[int]) -> dict[int, Any]:
        """Shapely geometries in the tiling CRS (:attr:`crs`) of these tiles, by fid."""
        blobs = self._blobs(list(fids))
        keys = list(blobs)
        geoms = gpkg.blobs_to_shapely([blobs[k] for k in keys])
        return dict(zip(keys, geoms))

    def geometry(self, fid: int) -> Any:
        """The tile's shapely geometry in the tiling CRS (:attr:`crs`)."""
        out = self.geometries([fid])
        if int(fid) not in out:
            raise KeyError(f"No tile with fid {fid}.")
        return out[int(fid)]

    def geometries_4326_shapely(self, fids: Iterable[int]) -> dict[int, Any]:
        """Shapely geometries in EPSG:4326 (lon/lat) of these tiles, by fid."""
        geoms = self.geometries(fids)
        keys = list(geoms)
        values = np.array([geoms[k] for k in keys], dtype=object)
        if len(values) and self.crs != "EPSG:4326":
            values = transform_geometries(values, self.crs, "EPSG:4326")
        return dict(zip(keys, values))

    def geometries_4326(self, fids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """GeoJSON geometries in EPSG:4326 (lon/lat) of these tiles, by fid."""
        geoms = self.geometries_4326_shapely(fids)
        texts = shapely.to_geojson(np.array(list(geoms.values()), dtype=object)) if geoms else []
        return {k: json.loads(t) for k, t in zip(geoms, texts)}

    def geometry_4326(self, fid: int) -> dict[str, Any]:
        """GeoJSON geometry in EPSG:4326 of one tile (what the process parameter is filled with)."""
        out = self.geometries_4326([fid])
        if int(fid) not in out:
            raise KeyError(f"No tile with fid {fid}.")
        return out[int(fid)]

    def bbox(self, fid: int, crs: str = "EPSG:4326") -> dict[str, Any]:
        """openeo-style bbox dict of a tile in ``crs`` (EPSG:4326 or the tiling CRS :attr:`crs`)."""
        geom = self.geometry(fid)
        if crs_string(_pyproj_crs(crs)) != self.crs:
            geom = transform_geometries(geom, self.crs, crs)
        west, south, east, north = geom.bounds
        return {"west": west, "south": south, "east": east, "north": north, "crs": crs}

    # ------------------------------------------------------------------ writes
    def update(self, fid: int, **values: Any) -> None:
        """Update one row (see :meth:`update_many`)."""
        self.update_many({fid: values})

    def update_many(
        self, updates: Union[Mapping[int, Mapping[str, Any]], Iterable[tuple[int, Mapping[str, Any]]]]
    ) -> int:
        """Apply ``{fid: {column: value}}`` in ONE transaction; returns the number of rows changed.

        Only the listed rows and columns are written, plus ``updated`` (now, UTC). Values may be
        numpy/pandas scalars; NaN/NA become NULL; ``result_files`` may be a list. Raises
        ``KeyError`` for an unknown or read-only column and leaves the file unchanged.
        """
        items = list(updates.items()) if isinstance(updates, Mapping) else list(updates)
        if not items:
            return 0
        writable = set(self._columns) - READ_ONLY_COLUMNS
        for _, values in items:
            bad = [c for c in values if c not in writable]
            if bad:
                raise KeyError(f"Cannot write column(s) {bad} of {self.path.name}; writable: {sorted(writable)}.")
        stamp = now_utc()
        # Group rows by their set of columns so each group is one executemany.
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for fid, values in items:
            cols = tuple(values)
            groups.setdefault(cols, []).append(tuple(_to_sql(c, values[c]) for c in cols) + (stamp, int(fid)))
        changed = 0
        with self._write() as conn:
            for cols, rows in groups.items():
                sets = ", ".join(f"{_q(c)} = ?" for c in (*cols, "updated"))
                cur = conn.executemany(f"UPDATE {TILES_TABLE} SET {sets} WHERE fid = ?", rows)
                changed += cur.rowcount
            conn.execute("UPDATE gpkg_contents SET last_change = ? WHERE table_name = ?", (stamp, TILES_TABLE))
        return changed


#: How long switching a file back to WAL may wait for other connections (QGIS's own, another
#: QGIS's) before the file is used in the journal mode it has (correct, only not lock-free).
WAL_SWITCH_TIMEOUT_MS = 500


def _ensure_wal(conn: sqlite3.Connection) -> str:
    """Put the file back in WAL mode when a tool switched it (QGIS returns GeoPackages it closes to
    a rollback journal); never waits long for it: returns the mode the file is used in."""
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
    if mode == "wal":
        return mode
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout = {WAL_SWITCH_TIMEOUT_MS}")
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower()
    except sqlite3.OperationalError:  # busy: another connection is in the middle of something
        pass
    finally:
        conn.execute(f"PRAGMA busy_timeout = {timeout}")
    return mode


def hold_wal(path: Union[str, Path]) -> sqlite3.Connection:
    """A connection that keeps a run file's WAL files (``-wal``, ``-shm``) in place while it is open.

    SQLite deletes them when its last connection closes; a QGIS layer opened after that uses a
    lock-free connection that cannot read the file once a writer starts (see the module
    docstring). Holding one idle WAL connection (it keeps a shared lock on the file) makes every
    later open in any process a normal WAL reader, and stops QGIS, when it closes its own
    handles, from switching the file back to a rollback journal. Close it when done.
    """
    conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        _ensure_wal(conn)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the WAL, takes the lock
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk (so a renamed file survives a power cut); best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pyproj_crs(value: Any) -> Any:
    import pyproj

    return pyproj.CRS.from_user_input(value)


def _create_status_counts(conn: sqlite3.Connection) -> None:
    """The per-status tile counts and the triggers that keep them (also for edits made by OGR/QGIS)."""
    t, c = TILES_TABLE, COUNTS_TABLE
    bump = f"INSERT INTO {c} (status, n) VALUES (NEW.status, 1) ON CONFLICT(status) DO UPDATE SET n = n + 1;"
    drop = f"UPDATE {c} SET n = n - 1 WHERE status IS OLD.status;"
    conn.execute(f"CREATE TABLE IF NOT EXISTS {c} (status TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL)")
    conn.execute(f"DELETE FROM {c}")
    conn.execute(
        f"INSERT INTO {c} (status, n) SELECT status, COUNT(*) FROM {t} WHERE status IS NOT NULL GROUP BY status"
    )
    conn.execute(
        f"CREATE TRIGGER IF NOT EXISTS {c}_insert AFTER INSERT ON {t} WHEN NEW.status NOTNULL BEGIN {bump} END"
    )
    conn.execute(f"CREATE TRIGGER IF NOT EXISTS {c}_delete AFTER DELETE ON {t} BEGIN {drop} END")
    conn.execute(
        f"CREATE TRIGGER IF NOT EXISTS {c}_update AFTER UPDATE OF status ON {t} "
        f"WHEN OLD.status IS NOT NEW.status BEGIN {drop} "
        f"INSERT INTO {c} (status, n) SELECT NEW.status, 1 WHERE NEW.status NOTNULL "
        "ON CONFLICT(status) DO UPDATE SET n = n + 1; END"
    )


def _write_tiles(conn: sqlite3.Connection, grid: Grid) -> None:
    """Create the GeoPackage metadata, the tiles table and its R-tree, and insert the grid."""
    gpkg.init_geopackage(conn)
    srs_id = gpkg.add_srs(conn, grid.crs)
    if grid.is_regular:
        geometry_type = "POLYGON"
    else:
        geoms = grid.geometries
        types = set(shapely.get_type_id(geoms).tolist())
        geometry_type = "POLYGON" if types == {3} else "MULTIPOLYGON"
        if geometry_type == "MULTIPOLYGON":
            geoms = np.array(
                [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms], dtype=object
            )
    cols_sql = ", ".join(f"{_q(c)} {t}" for c, t in TILE_COLUMNS.items())
    gpkg.create_feature_table(
        conn, TILES_TABLE, cols_sql, geometry_type=geometry_type, srs_id=srs_id, description="openEO Tile Jobs tiles"
    )
    bounds = grid.bounds
    if grid.is_regular:
        blobs = gpkg.box_blobs(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3], srs_id)
    else:
        blobs = gpkg.geometry_blobs(geoms, srs_id)
    n = len(grid)
    fids = range(1, n + 1)
    rows = grid.rows.tolist() if grid.rows is not None else [None] * n
    cols = grid.cols.tolist() if grid.cols is not None else [None] * n
    columns = ["fid", "geom", "tile_id", "row", "col"]
    gpkg.bulk_insert(conn, TILES_TABLE, columns, [fids, blobs, grid.tile_ids, rows, cols])
    gpkg.fill_rtree(conn, TILES_TABLE, fids, bounds)
    gpkg.create_rtree_triggers(conn, TILES_TABLE)
    gpkg.update_extent(conn, TILES_TABLE, bounds)
    # Indexes after the bulk insert (faster); partial ones stay empty until jobs exist.
    conn.execute(f"CREATE UNIQUE INDEX idx_{TILES_TABLE}_tile_id ON {TILES_TABLE} (tile_id)")
    conn.execute(f"CREATE INDEX idx_{TILES_TABLE}_status ON {TILES_TABLE} (status)")
    conn.execute(f"CREATE INDEX idx_{TILES_TABLE}_job_id ON {TILES_TABLE} (id) WHERE id IS NOT NULL")
    conn.execute(
        f"CREATE INDEX idx_{TILES_TABLE}_client_token ON {TILES_TABLE} (client_token) WHERE client_token IS NOT NULL"
    )
    conn.execute(
        f"CREATE INDEX idx_{TILES_TABLE}_result_status ON {TILES_TABLE} (result_status) WHERE result_status IS NOT NULL"
    )
    conn.execute(  # the same index core.retile makes in files from before it
        f"CREATE INDEX idx_{TILES_TABLE}_{PARENT_COLUMN} ON {TILES_TABLE} ({PARENT_COLUMN}) "
        f"WHERE {PARENT_COLUMN} IS NOT NULL"
    )
    _create_status_counts(conn)
