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
Linux only: ``RTLD_DEEPBIND`` does not exist elsewhere (macOS's two-level namespaces and
Windows' per-DLL imports do not have the problem).
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
