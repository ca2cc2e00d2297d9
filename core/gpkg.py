"""Low-level GeoPackage writing with the standard library's ``sqlite3``.

Public API
----------
``register_st_functions(conn)``
    Register ``ST_IsEmpty``, ``ST_MinX``, ``ST_MaxX``, ``ST_MinY``, ``ST_MaxY`` on a connection:
    the R-tree triggers GDAL (and we) put on a feature table call them, so without them every
    UPDATE of that table fails with "no such function: ST_IsEmpty".
``init_geopackage(conn)``
    Create the mandatory GeoPackage 1.3 tables (``gpkg_spatial_ref_sys`` with its three
    default rows, ``gpkg_contents``, ``gpkg_geometry_columns``, ``gpkg_extensions``) and set
    ``application_id`` / ``user_version``.
``add_srs(conn, crs) -> int``
    Register a pyproj-readable CRS; returns its ``srs_id`` (the EPSG code when there is one).
``create_feature_table(conn, table, columns_sql, *, geometry_type, srs_id, description="")``
    A feature table with ``fid`` and ``geom`` plus ``columns_sql``, registered in the metadata
    tables, and its (empty) R-tree.
``create_rtree_triggers(conn, table)``
    The standard GeoPackage 1.3 R-tree triggers (create them after a bulk fill).
``fill_rtree(conn, table, fids, bounds)``
    Bulk-fill the R-tree from known envelopes (much faster than the triggers row by row).
``register_attributes_table(conn, table, description="")``
    Register a non-spatial table (``data_type='attributes'``).
``box_blobs(minx, miny, maxx, maxy, srs_id) -> list[bytes]``
    GeoPackage geometry blobs of axis-aligned rectangles, built with numpy.
``geometry_blobs(geoms, srs_id) -> list[bytes]``
    GeoPackage geometry blobs of any shapely geometries.
``blob_envelope(blob) -> (minx, miny, maxx, maxy) | None`` and ``blob_to_shapely(blob)``.
``update_extent(conn, table, bounds)``
    Store the layer extent in ``gpkg_contents``.

Written by hand because GDAL's own writer (pyogrio/OGR) is not a runtime dependency of the
plugin and is 3-4x slower here for 100,000 rectangles; the files are checked with ``ogrinfo``
and QGIS in the tests. GeoPackage spec: https://www.geopackage.org/spec130/
"""

from __future__ import annotations

import math
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import numpy as np
import pyproj
import shapely

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
GPKG_USER_VERSION = 10300  # GeoPackage 1.3.0
GEOMETRY_COLUMN = "geom"
FID_COLUMN = "fid"

_HEADER = struct.Struct("<2sBBi")  # magic, version, flags, srs_id
_ENVELOPE_SIZES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def quote_identifier(name: str) -> str:
    """An SQLite identifier in double quotes (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------------
# Geometry blobs


def box_blobs(minx: np.ndarray, miny: np.ndarray, maxx: np.ndarray, maxy: np.ndarray, srs_id: int) -> list[bytes]:
    """GeoPackage blobs (little-endian, XY envelope) of rectangles as WKB Polygons.

    Ring order as shapely.box(ccw=True): (maxx miny, maxx maxy, minx maxy, minx miny, maxx miny).
    """
    n = len(minx)
    dt = np.dtype(
        [
            ("magic", "S2"),
            ("version", "u1"),
            ("flags", "u1"),
            ("srs", "<i4"),
            ("env", "<f8", 4),
            ("bo", "u1"),
            ("wkbtype", "<u4"),
            ("nrings", "<u4"),
            ("npts", "<u4"),
            ("xy", "<f8", 10),
        ]
    )
    arr = np.zeros(n, dtype=dt)
    arr["magic"] = b"GP"
    arr["flags"] = 0b00000011  # little endian, envelope [minx, maxx, miny, maxy]
    arr["srs"] = srs_id
    env = arr["env"]
    env[:, 0], env[:, 1], env[:, 2], env[:, 3] = minx, maxx, miny, maxy
    arr["bo"] = 1
    arr["wkbtype"] = 3
    arr["nrings"] = 1
    arr["npts"] = 5
    xy = arr["xy"]
    xy[:, 0], xy[:, 1] = maxx, miny
    xy[:, 2], xy[:, 3] = maxx, maxy
    xy[:, 4], xy[:, 5] = minx, maxy
    xy[:, 6], xy[:, 7] = minx, miny
    xy[:, 8], xy[:, 9] = maxx, miny
    buf = arr.tobytes()
    size = dt.itemsize
    return [buf[i : i + size] for i in range(0, n * size, size)]


def geometry_blobs(geoms: Sequence[Any], srs_id: int) -> list[bytes]:
    """GeoPackage blobs of shapely geometries (2D, little endian, with XY envelope)."""
    geoms = np.asarray(geoms, dtype=object)
    wkbs = shapely.to_wkb(geoms, output_dimension=2, byte_order=1)
    bounds = shapely.bounds(geoms)
    out = []
    for wkb, (x0, y0, x1, y1), g in zip(wkbs, bounds.tolist(), geoms):
        if g is None or g.is_empty:
            out.append(_HEADER.pack(b"GP", 0, 0b00010001, srs_id) + wkb)
        else:
            out.append(_HEADER.pack(b"GP", 0, 0b00000011, srs_id) + struct.pack("<4d", x0, x1, y0, y1) + wkb)
    return out


def _header(blob: bytes) -> tuple[int, bool, int, str]:
    """(envelope type, empty flag, offset of WKB, struct byte-order char)."""
    if blob is None or len(blob) < 8 or blob[:2] != b"GP":
        raise ValueError("not a GeoPackage geometry blob")
    flags = blob[3]
    order = "<" if flags & 1 else ">"
    env_type = (flags >> 1) & 0b111
    empty = bool(flags & 0b10000)
    return env_type, empty, 8 + _ENVELOPE_SIZES.get(env_type, 0), order


def blob_to_shapely(blob: Optional[bytes]) -> Any:
    if blob is None:
        return None
    _, _, offset, _ = _header(blob)
    return shapely.from_wkb(bytes(blob[offset:]))


def blobs_to_shapely(blobs: Sequence[Optional[bytes]]) -> np.ndarray:
    """Vectorised :func:`blob_to_shapely` (None stays None)."""
    wkbs = np.empty(len(blobs), dtype=object)
    for i, blob in enumerate(blobs):
        if blob is not None:
            wkbs[i] = bytes(blob[_header(blob)[2] :])
    return shapely.from_wkb(wkbs)


def blob_envelope(blob: Optional[bytes]) -> Optional[tuple[float, float, float, float]]:
    """(minx, miny, maxx, maxy) from the blob's header, or from its WKB; None when empty."""
    if blob is None:
        return None
    env_type, empty, offset, order = _header(blob)
    if empty:
        return None
    if env_type:
        x0, x1, y0, y1 = struct.unpack_from(order + "4d", blob, 8)
        return x0, y0, x1, y1
    geom = shapely.from_wkb(bytes(blob[offset:]))
    if geom.is_empty:
        return None
    return tuple(geom.bounds)


# ---------------------------------------------------------------------------------------------
# SQL functions for the R-tree triggers


def _st_is_empty(blob: Optional[bytes]) -> Optional[int]:
    if blob is None:
        return None
    try:
        return int(blob_envelope(blob) is None)
    except ValueError:
        return None


def _envelope_part(index: int):
    def fn(blob: Optional[bytes]) -> Optional[float]:
        try:
            env = blob_envelope(blob)
        except ValueError:
            return None
        return None if env is None else env[index]

    return fn


def register_st_functions(conn: sqlite3.Connection) -> None:
    """Make the GeoPackage R-tree triggers usable on a plain sqlite3 connection."""
    conn.create_function("ST_IsEmpty", 1, _st_is_empty, deterministic=True)
    conn.create_function("ST_MinX", 1, _envelope_part(0), deterministic=True)
    conn.create_function("ST_MinY", 1, _envelope_part(1), deterministic=True)
    conn.create_function("ST_MaxX", 1, _envelope_part(2), deterministic=True)
    conn.create_function("ST_MaxY", 1, _envelope_part(3), deterministic=True)


# ---------------------------------------------------------------------------------------------
# Schema

_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
    'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,'
    'AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)


_METADATA_TABLES = (
    """CREATE TABLE gpkg_spatial_ref_sys (
        srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY, organization TEXT NOT NULL,
        organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)""",
    """CREATE TABLE gpkg_contents (
        table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
        description TEXT DEFAULT '',
        last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
        CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    """CREATE TABLE gpkg_geometry_columns (
        table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
        srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
        CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
        CONSTRAINT uk_gc_table_name UNIQUE (table_name),
        CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
        CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""",
    """CREATE TABLE gpkg_extensions (
        table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
        scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))""",
)


def init_geopackage(conn: sqlite3.Connection) -> None:
    """Create the mandatory metadata tables inside the caller's transaction (no executescript)."""
    conn.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")
    for statement in _METADATA_TABLES:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
            ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, "longitude/latitude coordinates in decimal degrees"),
        ],
    )


def add_srs(conn: sqlite3.Connection, crs: Any) -> int:
    """Register ``crs`` (anything pyproj reads) and return its srs_id."""
    crs = pyproj.CRS.from_user_input(crs)
    epsg = crs.to_epsg()
    if epsg is not None:
        srs_id, org, org_id = epsg, "EPSG", epsg
        if conn.execute("SELECT 1 FROM gpkg_spatial_ref_sys WHERE srs_id = ?", (srs_id,)).fetchone():
            return srs_id
    else:
        wkt = crs.to_wkt(pyproj.enums.WktVersion.WKT1_GDAL)
        row = conn.execute("SELECT srs_id FROM gpkg_spatial_ref_sys WHERE definition = ?", (wkt,)).fetchone()
        if row:
            return int(row[0])
        srs_id = max(100000, conn.execute("SELECT MAX(srs_id) FROM gpkg_spatial_ref_sys").fetchone()[0] + 1)
        org, org_id = "NONE", srs_id
    try:
        wkt = crs.to_wkt(pyproj.enums.WktVersion.WKT1_GDAL)
    except pyproj.exceptions.CRSError:
        wkt = crs.to_wkt()
    conn.execute(
        "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
        (crs.name, srs_id, org, org_id, wkt, crs.name),
    )
    return srs_id


def create_feature_table(
    conn: sqlite3.Connection,
    table: str,
    columns_sql: str,
    *,
    geometry_type: str,
    srs_id: int,
    description: str = "",
) -> None:
    q = quote_identifier(table)
    conn.execute(
        f"CREATE TABLE {q} ({FID_COLUMN} INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
        f"{GEOMETRY_COLUMN} {geometry_type}, {columns_sql})"
    )
    conn.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) "
        "VALUES (?, 'features', ?, ?, ?)",
        (table, table, description, srs_id),
    )
    conn.execute(
        "INSERT INTO gpkg_geometry_columns VALUES (?, ?, ?, ?, 0, 0)", (table, GEOMETRY_COLUMN, geometry_type, srs_id)
    )
    conn.execute(
        "INSERT INTO gpkg_extensions VALUES (?, ?, 'gpkg_rtree_index', "
        "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
        (table, GEOMETRY_COLUMN),
    )
    conn.execute(f'CREATE VIRTUAL TABLE "rtree_{table}_{GEOMETRY_COLUMN}" USING rtree(id, minx, maxx, miny, maxy)')


def register_attributes_table(conn: sqlite3.Connection, table: str, description: str = "") -> None:
    conn.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description) VALUES (?, 'attributes', ?, ?)",
        (table, table, description),
    )


def bulk_insert(conn: sqlite3.Connection, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]]) -> None:
    """``INSERT INTO table (columns) VALUES ...`` for equally long value lists, as ONE statement.

    One statement instead of ``executemany``'s one per row: SQLite then updates an AUTOINCREMENT
    counter once, not per row, and Python binds nothing per row (~30 % faster at 100,000 rows).
    The values are read through SQL functions registered on ``conn`` for the statement's duration.
    """
    n = len(values[0]) if values else 0
    if n == 0:
        return
    names = [f"_bulk_value_{k}" for k in range(len(values))]
    for name, seq in zip(names, values):
        conn.create_function(name, 1, seq.__getitem__, deterministic=True)
    try:
        cols = ", ".join(quote_identifier(c) for c in columns)
        calls = ", ".join(f"{name}(i)" for name in names)
        conn.execute(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
            f"INSERT INTO {quote_identifier(table)} ({cols}) SELECT {calls} FROM s",
            (n - 1,),
        )
    finally:
        for name in names:
            conn.create_function(name, 1, None)


RTREE_MAX_CELLS = 51  # SQLite's RTREE_MAXCELLS: cells per node with 4096-byte pages


def _f32_down(v: np.ndarray) -> np.ndarray:
    f = v.astype(np.float32)
    over = f.astype(np.float64) > v
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    return f


def _f32_up(v: np.ndarray) -> np.ndarray:
    f = v.astype(np.float32)
    under = f.astype(np.float64) < v
    f[under] = np.nextafter(f[under], np.float32(np.inf))
    return f


def _str_order(cx: np.ndarray, cy: np.ndarray, per_node: int) -> np.ndarray:
    """Sort-Tile-Recursive order: vertical slices by x, each sorted by y."""
    n = len(cx)
    n_nodes = math.ceil(n / per_node)
    n_slices = max(1, math.ceil(math.sqrt(n_nodes)))
    per_slice = n_slices and math.ceil(n_nodes / n_slices) * per_node
    by_x = np.argsort(cx, kind="stable")
    slice_of = np.empty(n, dtype=np.int64)
    slice_of[by_x] = np.arange(n) // per_slice
    return np.lexsort((cy, slice_of))


def fill_rtree(conn: sqlite3.Connection, table: str, fids: Iterable[int], bounds: np.ndarray) -> None:
    """Bulk-load the (empty) R-tree of ``table`` with envelopes ``bounds`` (n, 4: minx, miny, maxx, maxy).

    Writes SQLite's R-tree shadow tables (``_node``, ``_rowid``, ``_parent``) directly with a
    Sort-Tile-Recursive packing, like GDAL's own bulk loader; inserting row by row through the
    virtual table costs ~10 µs per row (1.1 s at 100,000 tiles). The layout is SQLite's
    (ext/rtree/rtree.c): node blob = depth (u16 BE, root only) + cell count (u16 BE) + cells
    (rowid i64 BE, minx maxx miny maxy float32 BE, min rounded down and max up).
    Call inside the transaction that created the R-tree, before any other R-tree write.
    """
    rt = f"rtree_{table}_{GEOMETRY_COLUMN}"
    node_size = conn.execute(f'SELECT length(data) FROM "{rt}_node" WHERE nodeno = 1').fetchone()[0]
    per_node = min(RTREE_MAX_CELLS, (node_size - 4) // 24)
    b = np.asarray(bounds, dtype=np.float64)
    ids = np.fromiter(fids, dtype=np.int64, count=len(b))
    if len(ids) == 0:
        return
    level_ids = ids
    level_box = np.column_stack([_f32_down(b[:, 0]), _f32_up(b[:, 2]), _f32_down(b[:, 1]), _f32_up(b[:, 3])])
    cell_dt = np.dtype([("id", ">i8"), ("box", ">f4", 4)])
    nodes: list[tuple[int, bytes]] = []
    parents: list[tuple[int, int]] = []
    leaf_rows: Optional[tuple[list[int], list[int]]] = None
    next_node = 2  # 1 is the root
    depth = 0
    while True:
        n = len(level_ids)
        is_root = n <= per_node
        if is_root:
            order = np.arange(n)
            node_numbers = np.array([1], dtype=np.int64)
        else:
            cx = (level_box[:, 0] + level_box[:, 1]) / 2
            cy = (level_box[:, 2] + level_box[:, 3]) / 2
            order = _str_order(cx, cy, per_node)
            n_nodes = math.ceil(n / per_node)
            node_numbers = np.arange(next_node, next_node + n_nodes, dtype=np.int64)
            next_node += n_nodes
        ids_sorted = level_ids[order]
        box_sorted = level_box[order]
        member_node = node_numbers[np.arange(n) // per_node]
        cells = np.empty(n, dtype=cell_dt)
        cells["id"] = ids_sorted
        cells["box"] = box_sorted
        raw = cells.tobytes()
        for k, nodeno in enumerate(node_numbers.tolist()):
            lo, hi = k * per_node, min((k + 1) * per_node, n)
            head = struct.pack(">HH", depth if nodeno == 1 else 0, hi - lo)
            body = raw[lo * 24 : hi * 24]
            nodes.append((nodeno, head + body + bytes(node_size - 4 - len(body))))
        if leaf_rows is None:
            leaf_rows = (ids_sorted.tolist(), member_node.tolist())
        else:
            parents.extend(zip(ids_sorted.tolist(), member_node.tolist()))
        if is_root:
            break
        # Next level: one entry per node, its box the union of its cells.
        starts = np.arange(0, n, per_node)
        level_box = np.column_stack(
            [
                np.minimum.reduceat(box_sorted[:, 0], starts),
                np.maximum.reduceat(box_sorted[:, 1], starts),
                np.minimum.reduceat(box_sorted[:, 2], starts),
                np.maximum.reduceat(box_sorted[:, 3], starts),
            ]
        )
        level_ids = node_numbers
        depth += 1
    conn.execute(f'DELETE FROM "{rt}_node"')
    conn.executemany(f'INSERT INTO "{rt}_node" (nodeno, data) VALUES (?, ?)', nodes)
    bulk_insert(conn, f"{rt}_rowid", ["rowid", "nodeno"], leaf_rows)
    conn.executemany(f'INSERT INTO "{rt}_parent" (nodeno, parentnode) VALUES (?, ?)', parents)


def create_rtree_triggers(conn: sqlite3.Connection, table: str) -> None:
    t, c, i = table, GEOMETRY_COLUMN, FID_COLUMN
    rt = f'"rtree_{t}_{c}"'
    q = quote_identifier(t)
    values = f"(NEW.{i}, ST_MinX(NEW.{c}), ST_MaxX(NEW.{c}), ST_MinY(NEW.{c}), ST_MaxY(NEW.{c}))"
    script = f"""
        CREATE TRIGGER "rtree_{t}_{c}_insert" AFTER INSERT ON {q}
        WHEN (new.{c} NOT NULL AND NOT ST_IsEmpty(NEW.{c}))
        BEGIN INSERT OR REPLACE INTO {rt} VALUES {values}; END;
        CREATE TRIGGER "rtree_{t}_{c}_update1" AFTER UPDATE OF {c} ON {q}
        WHEN OLD.{i} = NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c}))
        BEGIN INSERT OR REPLACE INTO {rt} VALUES {values}; END;
        CREATE TRIGGER "rtree_{t}_{c}_update2" AFTER UPDATE OF {c} ON {q}
        WHEN OLD.{i} = NEW.{i} AND (NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c}))
        BEGIN DELETE FROM {rt} WHERE id = OLD.{i}; END;
        CREATE TRIGGER "rtree_{t}_{c}_update3" AFTER UPDATE ON {q}
        WHEN OLD.{i} != NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c}))
        BEGIN DELETE FROM {rt} WHERE id = OLD.{i}; INSERT OR REPLACE INTO {rt} VALUES {values}; END;
        CREATE TRIGGER "rtree_{t}_{c}_update4" AFTER UPDATE ON {q}
        WHEN OLD.{i} != NEW.{i} AND (NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c}))
        BEGIN DELETE FROM {rt} WHERE id IN (OLD.{i}, NEW.{i}); END;
        CREATE TRIGGER "rtree_{t}_{c}_delete" AFTER DELETE ON {q}
        WHEN old.{c} NOT NULL
        BEGIN DELETE FROM {rt} WHERE id = OLD.{i}; END;
        """
    # One execute per trigger (executescript would commit the caller's transaction).
    for statement in script.split("END;"):
        if statement.strip():
            conn.execute(statement + "END;")


def update_extent(conn: sqlite3.Connection, table: str, bounds: np.ndarray) -> None:
    b = np.asarray(bounds, dtype=float)
    if len(b) == 0:
        return
    conn.execute(
        "UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE table_name = ?",
        (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()), table),
    )
