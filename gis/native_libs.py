"""Let the venv's binary wheels use the C libraries they ship with inside QGIS applications.

The shapely, pyproj and rasterio wheels bundle their own GEOS, PROJ and GDAL under private
names, but the QGIS executables (``qgis``, ``qgis_process.bin``) link the system GEOS 3.11,
PROJ 9.1 and GDAL 3.6 into the global symbol namespace, and the dynamic linker then binds the
wheels' calls to those. Measured in ``qgis_process.bin`` on Debian bookworm: shapely's
``geom.wkt`` fails ("WKT output dimension must be 2 or 3", a GEOS 3.12 feature), and the
process aborts at exit in libproj's destructors ("free(): invalid pointer") once pyproj was
used. Importing the wheels' extension modules with ``RTLD_DEEPBIND`` makes each prefer the
libraries it ships with; with it both problems are gone.

A plain Python process (pytest, ``make demo``) loads QGIS as a module with local symbols
and is not affected; the function is then a no-op when those packages were imported first.
Linux only: ``RTLD_DEEPBIND`` does not exist elsewhere. macOS's two-level namespaces and
Windows' per-DLL imports bind each library's calls to the library it was linked with, so the
clash should not arise there, and where QGIS's installer already ships shapely/pyproj/rasterio
(OSGeo4W, the macOS bundle) requirements.txt's ranges keep those builds on QGIS's own libraries.
Not proven on those platforms here, so ``check_bundled_libraries`` runs a round trip through each
package when the plugin loads and the plugin reports a failure in the message bar instead of
running on a broken library.
"""

from __future__ import annotations

import importlib
import os
import sys

#: Extension modules to load with their bundled libraries bound first (in this order).
BUNDLED_NATIVE_MODULES = (
    "shapely",
    "shapely.lib",
    "pyproj",
    "pyproj._crs",
    "pyproj._transformer",
    "rasterio",
)


def isolate_bundled_libraries(modules: tuple[str, ...] = BUNDLED_NATIVE_MODULES) -> list[str]:
    """Import ``modules`` with ``RTLD_DEEPBIND``; returns those imported here (already imported ones are skipped).

    Must run before anything else imports them: the plugin's ``classFactory`` is the place.
    """
    deepbind = getattr(os, "RTLD_DEEPBIND", None)
    if deepbind is None or not hasattr(sys, "getdlopenflags"):
        return []
    imported = []
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | deepbind)
    try:
        for name in modules:
            if name in sys.modules or name.split(".")[0] in sys.modules and name == name.split(".")[0]:
                continue
            try:
                importlib.import_module(name)
            except ImportError:
                continue
            imported.append(name)
    finally:
        sys.setdlopenflags(flags)
    return imported


def _shapely_round_trip() -> None:
    import shapely

    square = shapely.from_wkt("POLYGON ((0 0, 2 0, 2 2, 0 2, 0 0))")
    if shapely.from_wkt(square.wkt).area != 4.0:
        raise RuntimeError("a WKT round trip changed the geometry")


def _pyproj_round_trip() -> None:
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(500000.0, 0.0)
    if abs(lon - 3.0) > 1e-6 or abs(lat) > 1e-6:
        raise RuntimeError(f"UTM 31N's origin came out at {lon}, {lat}")


def _rasterio_round_trip() -> None:
    import numpy as np
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "width": 2, "height": 2, "count": 1, "dtype": "uint16", "crs": "EPSG:32631"}
    with MemoryFile() as memory:
        with memory.open(**profile, transform=from_origin(500000.0, 10.0, 5.0, 5.0)) as dataset:
            dataset.write(np.full((1, 2, 2), 7, dtype="uint16"))
        with memory.open() as dataset:
            if int(dataset.read(1).sum()) != 28:
                raise RuntimeError("a GeoTIFF written in memory read back different pixels")


def check_bundled_libraries() -> list[str]:
    """One line per package whose round trip failed (empty when shapely, pyproj and rasterio work)."""
    problems = []
    for name, check in (
        ("shapely", _shapely_round_trip),
        ("pyproj", _pyproj_round_trip),
        ("rasterio", _rasterio_round_trip),
    ):
        try:
            check()
        except ImportError:
            continue  # reported as a missing requirement
        except Exception as error:  # noqa: BLE001 - any failure of a native library is reported, not raised
            problems.append(f"{name}: {error}")
    return problems
