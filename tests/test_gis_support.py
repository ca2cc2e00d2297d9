"""Helpers shared by the gis/processing tests (no tests here): small fixture files and a renderer.

Import as ``from openeo_tile_jobs.tests.test_gis_support import ...``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from osgeo import ogr, osr
from qgis.core import QgsMapLayer, QgsMapRendererParallelJob, QgsMapSettings, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QImage

ORIGIN = (590000.0, 5660000.0)  # the seed's AOI (EPSG:32631)
EPSG = 32631


def write_tiles_gpkg(
    path: Path,
    n_side: int = 4,
    tile_size: float = 5000.0,
    table: str = "tiles",
    status: str = "not_started",
) -> Path:
    """A GeoPackage table of ``n_side``² square tiles with the job-database columns the style uses."""
    ogr.UseExceptions()
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    layer = ds.CreateLayer(table, srs, ogr.wkbPolygon, options=["GEOMETRY_NAME=geom"])
    for name, kind in (
        ("tile_id", ogr.OFTString),
        ("status", ogr.OFTString),
        ("id", ogr.OFTString),
        ("backend_name", ogr.OFTString),
        ("row", ogr.OFTInteger),
        ("col", ogr.OFTInteger),
        ("costs", ogr.OFTReal),
        ("duration", ogr.OFTString),
        ("last_error", ogr.OFTString),
        ("result_files", ogr.OFTString),
    ):
        layer.CreateField(ogr.FieldDefn(name, kind))
    layer.StartTransaction()
    defn = layer.GetLayerDefn()
    x0, y0 = ORIGIN
    for col in range(n_side):
        for row in range(n_side):
            x, y = x0 + col * tile_size, y0 + row * tile_size
            feature = ogr.Feature(defn)
            ring = f"{x} {y},{x + tile_size} {y},{x + tile_size} {y + tile_size},{x} {y + tile_size},{x} {y}"
            feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({ring}))"))
            feature["tile_id"] = f"x{col}_y{row}"
            feature["status"] = status
            feature["row"] = row
            feature["col"] = col
            layer.CreateFeature(feature)
    layer.CommitTransaction()
    ds = None
    return path


def sqlite_connect(path: Path):
    """A plain sqlite3 connection able to UPDATE a GDAL-written GeoPackage table (WAL on)."""
    import sqlite3

    con = sqlite3.connect(str(path))
    con.execute("PRAGMA journal_mode=WAL")
    for name in ("ST_IsEmpty", "ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"):
        con.create_function(name, 1, lambda _blob: None)
    return con


def write_rgb_tif(
    path: Path, bounds: Sequence[float], seed: int = 0, size: int = 50, nodata: int = -32768
) -> np.ndarray:
    """A 3-band int16 GeoTIFF (B04, B03, B02; reflectance × 10000) over ``bounds``; returns the data."""
    import rasterio
    from rasterio.transform import from_bounds

    rng = np.random.default_rng(seed)
    data = rng.integers(0, 6000, size=(3, size, size)).astype("int16")
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="int16",
        crs=f"EPSG:{EPSG}",
        transform=from_bounds(*bounds, size, size),
        nodata=nodata,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("B04", "B03", "B02")
    return data


def write_float_tif(path: Path, bounds: Sequence[float], size: int = 50, value: float | None = None) -> np.ndarray:
    import rasterio
    from rasterio.transform import from_bounds

    y, x = np.mgrid[0:size, 0:size]
    data = (np.full((size, size), value) if value is not None else (x + y) / (2 * size - 2) * 2 - 1).astype("float32")
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="float32",
        crs=f"EPSG:{EPSG}",
        transform=from_bounds(*bounds, size, size),
        nodata=np.nan,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return data


def tile_bounds(col: int, row: int, tile_size: float = 5000.0) -> tuple[float, float, float, float]:
    x, y = ORIGIN[0] + col * tile_size, ORIGIN[1] + row * tile_size
    return x, y, x + tile_size, y + tile_size


def render(layers: Iterable[QgsMapLayer], extent: QgsRectangle, size: int = 200) -> np.ndarray:
    """Render layers (first on top) over opaque white with QgsMapRendererParallelJob; returns RGBA uint8."""
    layers = list(layers)
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[0].crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage().convertToFormat(QImage.Format.Format_ARGB32)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    bgra = np.frombuffer(bits, np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width()]
    return bgra[..., [2, 1, 0, 3]].copy()


def pixel_at(rgba: np.ndarray, extent: QgsRectangle, x: float, y: float) -> tuple[int, ...]:
    """RGBA of the rendered pixel at map coordinates (x, y)."""
    height, width = rgba.shape[:2]
    col = int((x - extent.xMinimum()) / extent.width() * width)
    row = int((extent.yMaximum() - y) / extent.height() * height)
    return tuple(int(v) for v in rgba[min(row, height - 1), min(col, width - 1)])


def region(rgba: np.ndarray, extent: QgsRectangle, bounds: Sequence[float], margin: float = 0.2) -> np.ndarray:
    """Rendered pixels inside map ``bounds`` (shrunk by ``margin`` of its size on each side)."""
    x0, y0, x1, y1 = bounds
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    height, width = rgba.shape[:2]
    c0 = int((x0 + dx - extent.xMinimum()) / extent.width() * width)
    c1 = int((x1 - dx - extent.xMinimum()) / extent.width() * width)
    r0 = int((extent.yMaximum() - (y1 - dy)) / extent.height() * height)
    r1 = int((extent.yMaximum() - (y0 + dy)) / extent.height() * height)
    return rgba[r0:r1, c0:c1]


def is_blank(pixels: np.ndarray) -> bool:
    """Only the white background shows."""
    return bool((pixels[..., :3] == 255).all())


def over_white(css_hex: str, opacity: float) -> tuple[int, int, int]:
    """The colour a fill of ``css_hex`` at ``opacity`` shows over white."""
    color = QColor(css_hex)
    return tuple(round(opacity * c + (1 - opacity) * 255) for c in (color.red(), color.green(), color.blue()))


def close_to(pixel: Sequence[int], rgb: Sequence[int], tolerance: int = 3) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel[:3], rgb))


def clear_project() -> None:
    """Remove every layer (and the layer tree) so nothing outlives exitQgis()."""
    project = QgsProject.instance()
    project.removeAllMapLayers()
    project.clear()


class SubprocessBackend:
    """The Local demo backend as its own process (``python -m local_backend``), reached over HTTP.

    The main-thread heartbeat tests need it: the in-process server computes jobs in Python
    threads of the test process, and holding the GIL they delay QGIS's main thread by up to
    ~150 ms (measured here), which is not what the plugin's own code does.
    """

    def __init__(self, data_dir: Path, **options) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.data_dir = Path(data_dir)
        self.options = {"workers": 2, "pixel-size": 200, **{k.replace("_", "-"): v for k, v in options.items()}}
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def demo_process_url(self) -> str:
        return f"{self.url}/udp/cloud_free_composite.json"

    def start(self, timeout: float = 30.0) -> SubprocessBackend:
        import subprocess
        import sys
        import time
        import urllib.request

        args = [sys.executable, "-m", "local_backend", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        for key, value in self.options.items():
            args += [f"--{key}", str(value)]
        repo = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(args, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Local demo backend exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the Local demo backend did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:  # noqa: BLE001
                self.process.kill()
                self.process.wait()

    def jobs(self) -> list[dict]:
        """The backend's own job listing (every page)."""
        import openeo

        return list(openeo.connect(self.url).list_jobs(limit=1000))


def test_native_library_round_trips_pass_beside_qgis():
    """shapely, pyproj and rasterio work in this QGIS process (the check the plugin runs when it loads)."""
    from openeo_tile_jobs.gis.native_libs import check_bundled_libraries

    assert check_bundled_libraries() == []
