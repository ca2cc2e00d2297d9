"""Shared test set-up: real headless QGIS (pytest-qgis) and the plugin's import name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Test helper modules (e.g. engine_crash_worker) import by plain name from every test file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
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


# -- Local demo backend (issue 3) -------------------------------------------------------------
# Imports stay inside the fixtures: tests that do not use them never import flask.
FAST_BACKEND = {"workers": 2, "pixel_size": 200.0}


@pytest.fixture()
def local_backend_factory(tmp_path: Path):
    """``make(**config)`` starts a Local demo backend (coarse pixels unless overridden) with a
    fresh data dir (or ``data_dir=...`` to reuse one); all are stopped after the test."""
    from openeo_tile_jobs.local_backend import LocalBackend

    started = []

    def make(**config):
        data_dir = config.pop("data_dir", None) or tmp_path / f"backend-{len(started)}"
        backend = LocalBackend(data_dir=data_dir, port=config.pop("port", 0), **{**FAST_BACKEND, **config})
        started.append(backend.start())
        return backend

    yield make
    for backend in started:
        backend.stop()


@pytest.fixture()
def local_backend(local_backend_factory):
    """A running Local demo backend: no auth, 2 workers, 200 m pixels (jobs take milliseconds)."""
    return local_backend_factory()
