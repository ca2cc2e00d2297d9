"""Shared test set-up: real headless QGIS (pytest-qgis) and the plugin's import name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_SITE = next((REPO_ROOT / ".venv" / "lib").glob("python3*/site-packages"), None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture()
def qgis_profile(tmp_path: Path) -> dict[str, str]:
    """Environment for a ``qgis_process.bin`` child: a temporary profile with the plugin
    linked and enabled, and the venv's packages visible to QGIS's Python."""
    config = tmp_path / "qgis-config"
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "openeo_tile_jobs").symlink_to(REPO_ROOT, target_is_directory=True)
    env = dict(os.environ)
    env.update(
        QGIS_CUSTOM_CONFIG_PATH=str(config),
        HOME=str(tmp_path),
        QT_QPA_PLATFORM="offscreen",
        PYTHONPATH=os.pathsep.join(p for p in (str(VENV_SITE or ""), env.get("PYTHONPATH", "")) if p),
    )
    return env


def pytest_report_header(config) -> str:
    from qgis.core import Qgis

    platform = os.environ.get("QT_QPA_PLATFORM")
    return f"QGIS {Qgis.QGIS_VERSION}, Python {sys.version.split()[0]}, QT_QPA_PLATFORM={platform}"
