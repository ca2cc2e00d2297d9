"""Which Python requirements of the plugin are missing, and how to install them.

The plugin must load in a user's QGIS even when a requirement is missing, and
then say what is missing instead of showing a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

#: pip distribution name -> module name, for the plugin's runtime requirements.
RUNTIME_MODULES: dict[str, str] = {
    "openeo": "openeo",
    "shapely": "shapely",
    "pyproj": "pyproj",
    "rasterio": "rasterio",
}

PLUGIN_DIR = Path(__file__).resolve().parent.parent


def missing(modules: dict[str, str]) -> list[str]:
    """Distribution names among ``modules`` whose module cannot be found."""
    return [dist for dist, module in modules.items() if not _findable(module)]


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken installation counts as missing
        return False


def missing_runtime() -> list[str]:
    return missing(RUNTIME_MODULES)


def install_command(requirements_file: str = "requirements.txt") -> str:
    """The command a user runs to install a requirements file of the plugin into QGIS's Python."""
    path = PLUGIN_DIR / requirements_file
    python = "python3" if sys.platform != "win32" else "python"
    return f'{python} -m pip install --user -r "{path}"'
