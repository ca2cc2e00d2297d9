"""Deterministic synthetic Sentinel-2 L2A data, generated on the fly for any extent and dates.

Every value is a pure function of the pixel centre (UTM metres) and the acquisition date,
so overlapping requests agree pixel for pixel and a test can recompute what a job saw.
The landscape (water, built-up, forest, crop fields with their own phenology) and the
clouds (thick, medium, cirrus, with shadows; new positions every acquisition) come from
hashed value noise evaluated on a coarse lattice and interpolated, which keeps a 5 km tile
at 10 m well under a second per date.

Only numpy here: no I/O, no process engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "SCL")
SPECTRAL_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
EPOCH = dt.date(2015, 7, 4)  # first acquisition; one more every REVISIT_DAYS
REVISIT_DAYS = 5

# Scene classification values used here (Sentinel-2 L2A SCL).
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_CIRRUS = 10
SCL_CLOUDY = (SCL_CLOUD_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS)

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0x165667B19E3779F9)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_SPLIT1 = np.uint64(0xBF58476D1CE4E5B9)
_SPLIT2 = np.uint64(0x94D049BB133111EB)


def acquisition_dates(start: dt.date, end: dt.date) -> list[dt.date]:
    """Acquisition dates in ``[start, end)`` (openEO's temporal extent: end excluded)."""
    first = -(-(start - EPOCH).days // REVISIT_DAYS)  # ceil division
    out = []
    k = first
    while True:
        day = EPOCH + dt.timedelta(days=k * REVISIT_DAYS)
        if day >= end:
            return out
        out.append(day)
        k += 1


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing a point."""
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def pixel_centres(west: float, south: float, east: float, north: float, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the pixels of the grid anchored at multiples of ``res`` whose centre lies
    inside the box (openEO's rule for load_collection). ``ys`` descend (north up)."""
    i0, i1 = int(np.ceil(west / res - 0.5 - 1e-9)), int(np.floor(east / res - 0.5 + 1e-9))
    j0, j1 = int(np.ceil(south / res - 0.5 - 1e-9)), int(np.floor(north / res - 0.5 + 1e-9))
    xs = (np.arange(i0, i1 + 1) + 0.5) * res
    ys = (np.arange(j1, j0 - 1, -1) + 0.5) * res
    return xs, ys


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) from integer lattice coordinates (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        h = (ix.astype(np.int64).astype(np.uint64) * _M1) ^ (iy.astype(np.int64).astype(np.uint64) * _M2)
        h ^= np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _M3
        h ^= h >> _S30
        h *= _SPLIT1
        h ^= h >> _S27
        h *= _SPLIT2
        h ^= h >> _S31
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def value_noise(xs: np.ndarray, ys: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1) on the grid ``ys x xs``: lattice hashes, bilinear smoothstep."""
    gx, gy = xs / cell, ys / cell
    ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx, fy = _smooth(gx - ix), _smooth(gy - iy)
    lx = np.arange(ix.min(), ix.max() + 2)
    ly = np.arange(iy.min(), iy.max() + 2)
    lattice = _hash(lx[None, :], ly[:, None], seed)
    cx, cy = ix - lx[0], iy - ly[0]
    left, right = lattice[:, cx], lattice[:, cx + 1]
    rows = left + (right - left) * fx[None, :]  # interpolated along x: (lattice rows, nx)
    top, bottom = rows[cy], rows[cy + 1]
    return top + (bottom - top) * fy[:, None]


def fbm(xs: np.ndarray, ys: np.ndarray, cells: Sequence[float], seed: int) -> np.ndarray:
    """Sum of octaves of value noise (weights halve), normalised to about [0, 1)."""
    total = np.zeros((ys.size, xs.size))
    weight, norm = 1.0, 0.0
    for i, cell in enumerate(cells):
        total += weight * value_noise(xs, ys, cell, seed * 131 + i)
        norm += weight
        weight *= 0.5
    return total / norm


def _texture(xs: np.ndarray, ys: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Per-cell white noise in [-1, 1) (no interpolation): pixel/block texture."""
    ix = np.floor(xs / cell).astype(np.int64)
    iy = np.floor(ys / cell).astype(np.int64)
    return _hash(ix[None, :], iy[:, None], seed) * 2.0 - 1.0


# Land cover classes of the static landscape.
WATER, BUILT, FOREST, FIELD = 0, 1, 2, 3

# Reflectance x 10000 for B02, B03, B04, B08.
_WATER = np.array([600.0, 520.0, 320.0, 160.0])
_BUILT = np.array([1150.0, 1250.0, 1350.0, 1900.0])
_FOREST = np.array([260.0, 480.0, 270.0, 2900.0])
_SOIL = np.array([950.0, 1150.0, 1450.0, 2050.0])
_CROP = np.array([320.0, 650.0, 330.0, 4200.0])
_CROP_PEAKS = np.array([120.0, 160.0, 200.0, 240.0])  # day of year of full canopy per crop type


def land_cover(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Static land cover class per pixel (WATER, BUILT, FOREST or FIELD)."""
    water = fbm(xs, ys, (3200.0, 1100.0, 400.0), seed=11) < 0.25
    built = fbm(xs, ys, (5200.0, 1500.0), seed=12) > 0.70
    forest = fbm(xs, ys, (2600.0, 900.0, 300.0), seed=13) > 0.60
    cover = np.full(water.shape, FIELD, dtype=np.int8)
    cover[forest] = FOREST
    cover[built] = BUILT
    cover[water] = WATER
    return cover


def _field_parcels(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop type (0..3) and a sowing shift in days per pixel, constant per 240 m x 380 m parcel."""
    crop = np.minimum((_texture(xs, ys, 240.0, seed=21) + 1.0) * 2.0, 3.999).astype(np.int64)
    shift = _texture(xs, ys, 240.0, seed=22) * 12.0
    # Parcel rows are 380 m high: re-hash with the row index so that parcels are not square.
    row = _texture(xs, ys, 380.0, seed=23)
    crop = (crop + (row > 0.3).astype(np.int64)) % 4
    return crop, shift


@dataclass
class _Landscape:
    """What does not change with the date, computed once per request."""

    cover: np.ndarray
    crop_peak: np.ndarray  # day of year of full canopy, per pixel (fields)
    brightness: np.ndarray  # static per-pixel texture factor
    block_tex: np.ndarray
    vegetated_forest: np.ndarray


def _landscape(xs: np.ndarray, ys: np.ndarray) -> _Landscape:
    cover = land_cover(xs, ys)
    crop, shift = _field_parcels(xs, ys)
    return _Landscape(
        cover=cover,
        crop_peak=_CROP_PEAKS[crop] + shift,
        brightness=0.06 * _texture(xs, ys, 10.0, seed=31),
        block_tex=_texture(xs, ys, 40.0, seed=32),
        vegetated_forest=cover == FOREST,
    )


def _clear_sky(
    xs: np.ndarray, ys: np.ndarray, day: dt.date, land: _Landscape, band_idx: Sequence[int]
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Cloud-free reflectance per spectral band index and SCL (ny, nx) for one date."""
    doy = day.timetuple().tm_yday
    season = 0.5 - 0.5 * np.cos(2.0 * np.pi * (doy - 30) / 365.25)  # 0 in winter, 1 in summer
    cover = land.cover
    canopy = np.exp(-(((doy - land.crop_peak) / 38.0) ** 2))
    noise = _texture(xs, ys, 10.0, seed=1000 + (day - EPOCH).days)
    factor = 1.0 + land.brightness + 0.03 * noise
    refl = {}
    for b in band_idx:
        field = _SOIL[b] + (_CROP[b] - _SOIL[b]) * canopy
        forest = _FOREST[b] * (1.0 + (0.15 * season if b == 3 else -0.1 * season))
        values = np.where(cover == FIELD, field, 0.0)
        values = np.where(cover == FOREST, forest, values)
        values = np.where(cover == BUILT, _BUILT[b] * (1.0 + 0.25 * land.block_tex), values)
        values = np.where(cover == WATER, _WATER[b], values)
        refl[b] = values * factor
    scl = np.full(cover.shape, SCL_NOT_VEGETATED, dtype=np.int16)
    scl[land.vegetated_forest | ((cover == FIELD) & (canopy > 0.35))] = SCL_VEGETATION
    scl[cover == WATER] = SCL_WATER
    return refl, scl


def _clouds(xs: np.ndarray, ys: np.ndarray, day: dt.date) -> tuple[np.ndarray, np.ndarray, float]:
    """Cloud probability field, its shadow-displaced copy and the threshold for one date.

    Clouds drift about 9 km east and 4 km north between acquisitions; each date has its own
    cloudiness (0 to ~75 % of the sky)."""
    k = (day - EPOCH).days // REVISIT_DAYS
    cover_fraction = float(_hash(np.array([k]), np.array([7]), seed=41)[0]) ** 1.5 * 0.75
    threshold = 1.0 - cover_fraction
    # Map cover fraction to a threshold of the (bell-shaped) fbm distribution.
    threshold = 0.5 + (threshold - 0.5) * 0.8
    dx, dy = 9000.0 * k, 4000.0 * k
    cells = (7000.0, 2300.0, 800.0, 260.0)
    prob = fbm(xs - dx, ys - dy, cells, seed=50 + k % 9973)
    shadow = fbm(xs - dx + 350.0, ys - dy + 250.0, cells, seed=50 + k % 9973)
    return prob, shadow, threshold


def generate(xs: np.ndarray, ys: np.ndarray, dates: Sequence[dt.date], bands: Sequence[str] = BANDS) -> np.ndarray:
    """Synthetic L2A cube ``(time, band, y, x)`` as int16: reflectance x 10000, SCL as class codes.

    ``xs``/``ys`` are pixel centres in metres of the UTM zone of the request (see
    :func:`pixel_centres`)."""
    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise ValueError(f"unknown bands {unknown}")
    land = _landscape(xs, ys)
    band_idx = [SPECTRAL_BANDS.index(b) for b in bands if b != "SCL"]
    out = np.empty((len(dates), len(bands), ys.size, xs.size), dtype=np.int16)
    bright = np.array([7600.0, 7400.0, 7200.0, 7900.0])
    for t, day in enumerate(dates):
        refl, scl = _clear_sky(xs, ys, day, land, band_idx)
        prob, shadow, thr = _clouds(xs, ys, day)
        thick = prob > thr + 0.06
        medium = (prob > thr) & ~thick
        cirrus = (prob > thr - 0.035) & ~(thick | medium)
        shade = (shadow > thr) & ~(prob > thr - 0.035)
        haze = 0.55 + 0.45 * np.clip((prob - thr + 0.035) / 0.095, 0.0, 1.0)
        clouded = medium | thick
        for b in band_idx:
            v = refl[b]
            v = np.where(cirrus, v + 900.0, v)
            v = np.where(clouded, v + (bright[b] - v) * haze, v)
            v = np.where(shade, v * 0.42, v)
            refl[b] = v
        scl = scl.copy()
        scl[cirrus] = SCL_CIRRUS
        scl[medium] = SCL_CLOUD_MEDIUM
        scl[thick] = SCL_CLOUD_HIGH
        scl[shade] = SCL_CLOUD_SHADOW
        for i, band in enumerate(bands):
            if band == "SCL":
                out[t, i] = scl
            else:
                out[t, i] = np.clip(np.rint(refl[SPECTRAL_BANDS.index(band)]), 1, 32767).astype(np.int16)
    return out
