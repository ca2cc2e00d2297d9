"""One virtual mosaic (GDAL VRT) over a run's result GeoTIFFs, rebuilt atomically as tiles finish.

Plain GDAL, no qgis import: the run task calls :meth:`MosaicBuilder.build` in its worker
thread (reading 1,000 file headers is I/O that must stay off QGIS's main thread), and the
main thread only reloads the layer (:func:`result_layers.show_mosaic`).

``gdal.BuildVRT`` needs one CRS, band count and data type per VRT, so results are grouped by
those and each group gets its own file.

Every build writes NEW files, ``mosaic-000007.vrt`` (``mosaic_2-000007.vrt`` for a second
group), each first as ``.part`` then renamed, and removes versions older than the previous
one. Rewriting one fixed file does not work: GDAL rewrites a VRT it has open when it closes
it if anything was cached in it (QGIS's statistics and histograms, measured here), so QGIS
closing the old mosaic would put the old list of tiles back over the new file.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from osgeo import gdal

from ..core.downloads import is_raster_result

gdal.UseExceptions()


@dataclass(frozen=True)
class RasterKey:
    """What must be equal for two rasters to share one VRT."""

    crs_wkt: str
    band_count: int
    data_type: int


@dataclass(frozen=True)
class RasterInfo:
    key: RasterKey
    nodata: float | None
    band_names: tuple[str, ...]


def inspect(path: str | os.PathLike) -> RasterInfo:
    """Read a raster's header: CRS, bands, type, nodata, band descriptions."""
    ds = gdal.Open(str(path))
    try:
        srs = ds.GetSpatialRef()
        band = ds.GetRasterBand(1)
        key = RasterKey(srs.ExportToWkt() if srs is not None else "", ds.RasterCount, band.DataType)
        names = tuple(ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount))
        return RasterInfo(key, band.GetNoDataValue(), names)
    finally:
        ds = None


def _default_nodata(data_type: int) -> float:
    if data_type in (gdal.GDT_Float32, gdal.GDT_Float64):
        return math.nan
    if data_type == gdal.GDT_Byte:
        return 0
    if data_type in (gdal.GDT_UInt16, gdal.GDT_UInt32):
        return 0
    return -32768 if data_type == gdal.GDT_Int16 else -2147483648


def build_vrt(paths: Iterable[str | os.PathLike], vrt_path: str | os.PathLike, nodata: float | None = None) -> Path:
    """Write a VRT mosaic of ``paths`` to ``vrt_path`` atomically and return its path.

    Areas no result covers are ``nodata`` (the sources' nodata, or a type-specific default),
    so they render transparent.
    """
    vrt_path = Path(vrt_path)
    vrt_path.parent.mkdir(parents=True, exist_ok=True)
    part = vrt_path.with_name(vrt_path.name + ".part")
    sources = [str(p) for p in paths]
    options = {"resolution": "highest"}
    if nodata is not None:
        options["VRTNodata"] = nodata
    ds = gdal.BuildVRT(str(part), sources, options=gdal.BuildVRTOptions(**options))
    if ds is None:
        raise RuntimeError(f"GDAL could not build a VRT from {len(sources)} rasters")
    ds.FlushCache()
    ds = None
    os.replace(part, vrt_path)
    return vrt_path


class MosaicBuilder:
    """Keeps the set of result rasters of one run and writes their VRT(s) on demand.

    Thread-safe: :meth:`add` may be called from one thread and :meth:`build` from another.
    Each file's header is read once.
    """

    def __init__(self, folder: str | os.PathLike, stem: str = "mosaic") -> None:
        self.folder = Path(folder)
        self.stem = stem
        self._lock = threading.Lock()
        self._infos: dict[str, RasterInfo] = {}
        self._order: list[RasterKey] = []
        self._dirty = False
        self.skipped: dict[str, str] = {}
        self._pattern = re.compile(rf"^{re.escape(stem)}(?:_(\d+))?-(\d{{6}})\.vrt$")
        self.generation = max((gen for _, gen, _ in self._versions()), default=0)

    def add(self, paths: Iterable[str | os.PathLike]) -> int:
        """Register result files (non-rasters and unreadable files are skipped); returns how many are new."""
        added = 0
        for path in paths:
            path = str(Path(path).resolve())
            if not is_raster_result(path):
                continue
            with self._lock:
                if path in self._infos:
                    continue
            try:
                info = inspect(path)
            except RuntimeError as exc:
                self.skipped[path] = str(exc)
                continue
            with self._lock:
                self._infos[path] = info
                if info.key not in self._order:
                    self._order.append(info.key)
                self._dirty = True
            added += 1
        return added

    def vrt_path(self, index: int, generation: int | None = None) -> Path:
        """The VRT of raster group ``index`` (0-based) in a generation (default: the current one)."""
        gen = self.generation if generation is None else generation
        group = "" if index == 0 else f"_{index + 1}"
        return self.folder / f"{self.stem}{group}-{gen:06d}.vrt"

    def _versions(self) -> list[tuple[int, int, Path]]:
        """(group index, generation, path) of the VRT files on disk."""
        found = []
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                match = self._pattern.match(path.name)
                if match:
                    found.append((int(match.group(1) or 1) - 1, int(match.group(2)), path))
        return found

    def current(self) -> list[Path]:
        """The newest VRT of each group on disk (e.g. after a restart)."""
        newest: dict[int, tuple[int, Path]] = {}
        for index, gen, path in self._versions():
            if index not in newest or gen > newest[index][0]:
                newest[index] = (gen, path)
        return [newest[i][1] for i in sorted(newest)]

    def _remove_old(self) -> None:
        for _, gen, path in self._versions():
            if gen < self.generation - 1:
                try:
                    path.unlink()
                except OSError:
                    pass  # still open somewhere (Windows): removed by a later build

    @property
    def dirty(self) -> bool:
        return self._dirty

    def __len__(self) -> int:
        return len(self._infos)

    def build(self, force: bool = False) -> list[Path]:
        """Write one VRT per raster kind if files were added since the last build; returns all VRT paths."""
        with self._lock:
            groups = [[p for p, info in self._infos.items() if info.key == key] for key in self._order]
            nodatas = [
                next(
                    (info.nodata for info in self._infos.values() if info.key == key and info.nodata is not None), None
                )
                for key in self._order
            ]
            keys = list(self._order)
            dirty, self._dirty = self._dirty, False
        if not (dirty or force):
            return [self.vrt_path(i) for i in range(len(groups))] if self.generation else []
        generation = self.generation + 1
        out = [self.vrt_path(i, generation) for i in range(len(groups))]
        try:
            for path, group, nodata, key in zip(out, groups, nodatas, keys):
                build_vrt(group, path, nodata if nodata is not None else _default_nodata(key.data_type))
        except Exception:
            self._dirty = True  # try again on the next build
            raise
        self.generation = generation
        self._remove_old()
        return out
