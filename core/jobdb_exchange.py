"""openeo's job databases and ours: the JobDatabaseInterface adapter, CSV/Parquet import/export.

Public API
----------
``OpenEOJobDatabase(path_or_db)``
    openeo's ``JobDatabaseInterface`` (``exists``, ``persist``, ``count_by_status``,
    ``get_by_status``, ``get_by_indices``, plus ``initialize_from_df``) over a run GeoPackage,
    so a script can run openeo's ``MultiBackendJobManager`` on the same file the plugin uses.
    DataFrames are indexed by ``fid`` and carry a ``geometry`` column in EPSG:4326 (a
    GeoDataFrame), what the seed notebook feeds to ``ProcessBasedJobCreator``. ``persist``
    writes only the given rows, in one transaction; usage columns openeo adds on the fly
    (``cpu``, ``memory``, ``duration`` are there from the start) become new columns.
``import_openeo_db(src, dst, *, crs=None, overwrite=False, run=None) -> JobDB``
    A GeoPackage run from openeo's ``jobs.csv`` / ``.parquet``, statuses and all.
``export_openeo_db(db, dst, *, overwrite=False) -> Path``
    Write a run as openeo's CSV or Parquet job database (by suffix), atomically.
``dataframe_to_grid(df, *, crs=None) -> Grid``  (used by both of the above)

CRS: openeo's CSV has none (the notebook's convention is EPSG:4326 WKT); Parquet keeps it in
its GeoParquet metadata. Exports write EPSG:4326 geometries plus a ``tiling_crs`` column;
imports reproject into ``crs``, else into the ``tiling_crs`` column's CRS when there is one
(so GeoPackage -> CSV -> GeoPackage gives back the tiling CRS), else keep the file's CRS
(EPSG:4326 for a CSV). Requires geopandas (openeo's job management imports it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
from openeo.extra.job_management import JobDatabaseInterface

from .grid import Grid, crs_string, grid_from_polygons, transform_geometries
from .jobdb import JSON_COLUMNS, READ_ONLY_COLUMNS, JobDB, JobDBError, _fsync

#: Columns never copied from a DataFrame into the tiles table.
_SKIP_COLUMNS = frozenset({"geometry", "fid", "tiling_crs"})


def _sql_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "INTEGER"
    if pd.api.types.is_float_dtype(series):
        return "REAL"
    return "TEXT"


def _rows_to_frame(db: JobDB, rows: list[dict[str, Any]], cache: Optional[dict[int, Any]] = None) -> pd.DataFrame:
    """Rows -> GeoDataFrame indexed by fid with ``geometry`` in EPSG:4326 (``cache``: fid -> geometry)."""
    import geopandas as gpd

    columns = [c for c in db.columns if c != "fid"]
    fids = [r["fid"] for r in rows]
    data = {c: [r.get(c) for r in rows] for c in columns}
    for c in JSON_COLUMNS & set(columns):  # keep lists as JSON text, like openeo's CSV would
        data[c] = [v if v is None or isinstance(v, str) else _json(v) for v in data[c]]
    index = pd.Index(fids, dtype="int64")
    if cache is None:
        cache = {}
    missing = [f for f in fids if f not in cache]
    if missing:
        cache.update(db.geometries_4326_shapely(missing))
    geometry = gpd.GeoSeries([cache.get(f) for f in fids], index=index, crs="EPSG:4326")
    return gpd.GeoDataFrame(pd.DataFrame(data, index=index, columns=columns), geometry=geometry)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


class OpenEOJobDatabase(JobDatabaseInterface):
    """openeo's JobDatabaseInterface over a run GeoPackage (see module docstring)."""

    def __init__(self, path_or_db: Union[str, Path, JobDB]):
        if isinstance(path_or_db, JobDB):
            self._db: Optional[JobDB] = path_or_db
            self.path = path_or_db.path
        else:
            self._db = None
            self.path = Path(path_or_db)
        self._geometry_cache: dict[int, Any] = {}  # fid -> EPSG:4326 geometry (tiles do not move)

    def __repr__(self) -> str:
        return f"OpenEOJobDatabase({str(self.path)!r})"

    @property
    def db(self) -> JobDB:
        if self._db is None:
            self._db = JobDB.open(self.path)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def exists(self) -> bool:
        return self._db is not None or self.path.is_file()

    def initialize_from_df(self, df: pd.DataFrame, *, on_exists: str = "error") -> OpenEOJobDatabase:
        """Create the GeoPackage from a (Geo)DataFrame, like openeo's ``initialize_from_df``."""
        if self.exists():
            if on_exists == "skip":
                return self
            if on_exists == "error":
                raise FileExistsError(f"Job database {self!r} already exists.")
            raise ValueError(f"Invalid on_exists={on_exists!r}")
        self._db = _create_from_frame(self.path, df, crs=None, run={"imported_from": "DataFrame"})
        return self

    def persist(self, df: pd.DataFrame) -> None:
        """Write the given rows (index = fid), only their columns, in one transaction."""
        if df is None or len(df) == 0:
            return
        db = self.db
        _add_missing_columns(db, df)
        cols = [c for c in df.columns if c not in _SKIP_COLUMNS and c not in READ_ONLY_COLUMNS]
        records = df[cols].to_dict(orient="index")
        db.update_many({int(fid): values for fid, values in records.items()})

    def count_by_status(self, statuses: Iterable[str] = ()) -> dict:
        return self.db.count_by_status(statuses)

    def get_by_status(self, statuses, max=None) -> pd.DataFrame:  # noqa: A002 (openeo's signature)
        return _rows_to_frame(self.db, self.db.get_by_status(list(statuses), max=max), self._geometry_cache)

    def get_by_indices(self, indices: Iterable[Union[int, str]]) -> pd.DataFrame:
        return _rows_to_frame(self.db, self.db.get_many(int(i) for i in indices), self._geometry_cache)

    def read(self) -> pd.DataFrame:
        """All rows (like openeo's ``FullDataFrameJobDatabase.read``)."""
        return _rows_to_frame(self.db, self.db.all_rows())


def _add_missing_columns(db: JobDB, df: pd.DataFrame) -> None:
    for c in df.columns:
        if c in _SKIP_COLUMNS or c in db.columns or c == db.table:
            continue
        db.add_column(str(c), _sql_type(df[c]))


def dataframe_to_grid(df: pd.DataFrame, *, crs: Any = None) -> Grid:
    """A predefined grid from a (Geo)DataFrame's ``geometry`` column (WKT strings allowed).

    Geometry without a CRS (openeo CSV) is taken as EPSG:4326. The result is in ``crs``, else in
    the CRS named by a uniform ``tiling_crs`` column, else in the frame's own CRS.
    """
    import geopandas as gpd
    import shapely

    if "geometry" not in df.columns:
        raise JobDBError("The job database has no geometry column: a tile layer needs one polygon per job.")
    geometry = df["geometry"]
    src_crs = getattr(df, "crs", None) if isinstance(df, gpd.GeoDataFrame) else None
    if not isinstance(geometry, gpd.GeoSeries):
        values = [shapely.from_wkt(v) if isinstance(v, str) else v for v in geometry]
        geometry = gpd.GeoSeries(values, index=df.index)
    src = crs_string(src_crs) if src_crs is not None else "EPSG:4326"
    if geometry.isna().any():
        raise JobDBError(f"{int(geometry.isna().sum())} row(s) have no geometry.")
    target = crs
    if target is None and "tiling_crs" in df.columns:
        values = set(df["tiling_crs"].dropna().astype(str))
        if len(values) == 1:
            target = values.pop()
    target = crs_string(_pyproj(target)) if target is not None else src
    geoms = np.asarray(geometry.values, dtype=object)
    if target != src:
        geoms = transform_geometries(geoms, src, target)
    ids = df["tile_id"].astype(str).tolist() if "tile_id" in df.columns else [f"t{i}" for i in df.index]
    return grid_from_polygons(list(geoms), crs=target, tile_ids=ids, confirm_many=True)


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _pyproj(value: Any) -> Any:
    import pyproj

    return pyproj.CRS.from_user_input(value)


def _create_from_frame(path: Path, df: pd.DataFrame, *, crs: Any, run: Optional[Mapping[str, Any]]) -> JobDB:
    grid = dataframe_to_grid(df, crs=crs)
    db = JobDB.create(path, grid, dict(run or {}))
    try:
        _add_missing_columns(db, df)
        cols_to_copy = [c for c in df.columns if c not in _SKIP_COLUMNS and c not in READ_ONLY_COLUMNS]
        records = df[cols_to_copy].to_dict(orient="records")
        updates = {}
        for fid, rec in enumerate(records, start=1):  # JobDB.create numbers the tiles 1..n in order
            for column, default in (("status", "not_started"), ("attempts", 0)):
                if column in rec and _missing(rec[column]):
                    rec[column] = default
            updates[fid] = rec
        if cols_to_copy:
            db.update_many(updates)
    except BaseException:
        db.close()
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return db


def import_openeo_db(
    src: Union[str, Path],
    dst: Union[str, Path],
    *,
    crs: Any = None,
    overwrite: bool = False,
    run: Optional[Mapping[str, Any]] = None,
) -> JobDB:
    """Create the GeoPackage ``dst`` from openeo's CSV/Parquet job database ``src``."""
    from openeo.extra.job_management import get_job_db

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"No job database at {src}.")
    try:
        source = get_job_db(src)
    except ValueError as exc:
        raise JobDBError(f"{src.name}: not an openeo job database (expected .csv or .parquet).") from exc
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists.")
    try:
        df = source.read()
    except Exception as exc:
        raise JobDBError(f"Cannot read {src.name}: {exc}") from exc
    record = {"imported_from": str(src), **dict(run or {})}
    if dst.exists():
        dst.unlink()
    return _create_from_frame(dst, df, crs=crs, run=record)


def export_openeo_db(db: JobDB, dst: Union[str, Path], *, overwrite: bool = False) -> Path:
    """Write ``db`` as openeo's job database (``.csv`` or ``.parquet``), atomically."""
    from openeo.extra.job_management import CsvJobDatabase, ParquetJobDatabase

    dst = Path(dst)
    suffix = dst.suffix.lower()
    if suffix not in (".csv", ".parquet", ".geoparquet"):
        raise JobDBError(f"Export to .csv or .parquet, not {dst.name!r}.")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists.")
    frame = _rows_to_frame(db, db.all_rows())
    frame.insert(0, "fid", frame.index)
    frame["tiling_crs"] = db.crs
    frame = frame.reset_index(drop=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=dst.suffix, dir=str(dst.parent))
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        target = CsvJobDatabase(tmp) if suffix == ".csv" else ParquetJobDatabase(tmp)
        target.persist(frame)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        _fsync(tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return dst
