"""GeoTIFF output of save_result: tiled, compressed, nodata set, written atomically."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GTIFF_MEDIA_TYPE = "image/tiff; application=geotiff"


@dataclass
class WrittenAsset:
    name: str
    path: Path
    media_type: str
    size: int
    checksum: str  # multihash: sha2-256 code 0x12, length 0x20, hex digest
    epsg: int
    shape: tuple[int, int]
    bounds: tuple[float, float, float, float]
    bands: list[str]
    date: str | None


def multihash_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "1220" + digest.hexdigest()


def write_geotiff(
    path: Path,
    array: np.ndarray,
    epsg: int,
    bounds: tuple[float, float, float, float],
    band_names: list[str],
    date: str | None = None,
) -> WrittenAsset:
    """Write ``array`` (bands, y, x) north-up over ``bounds`` (west, south, east, north)."""
    import rasterio
    from rasterio.transform import from_bounds

    if array.dtype == np.float64 or array.dtype == np.bool_:
        array = array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        nodata, predictor = float("nan"), 3
    else:
        nodata, predictor = np.iinfo(array.dtype).min if np.issubdtype(array.dtype, np.signedinteger) else 0, 2
    count, height, width = array.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": array.dtype.name,
        "crs": f"EPSG:{epsg}",
        "transform": from_bounds(*bounds, width, height),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": predictor,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array)
        for i, name in enumerate(band_names, start=1):
            dst.set_band_description(i, str(name))
        if date:
            dst.update_tags(DATETIME=date)
    os.replace(tmp, path)
    return WrittenAsset(
        name=path.name,
        path=path,
        media_type=GTIFF_MEDIA_TYPE,
        size=path.stat().st_size,
        checksum=multihash_sha256(path),
        epsg=epsg,
        shape=(height, width),
        bounds=bounds,
        bands=[str(b) for b in band_names],
        date=date,
    )
