"""`make package`: the ZIP that QGIS's "Install from ZIP" takes, installed into a fresh profile:
it has everything the plugin imports (nothing is left out by the file filter), none of the
development files, and qgis_process sees its Processing provider."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/lib/qgis/qgis_process.bin"


def version() -> str:
    for line in (REPO / "metadata.txt").read_text().splitlines():
        if line.startswith("version="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("metadata.txt has no version")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(["bash", "scripts/package.sh", str(out)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out / f"openeo_tile_jobs-{version()}.zip"


def test_zip_has_the_plugin_and_no_development_files(package) -> None:
    names = zipfile.ZipFile(package).namelist()
    assert all(n.startswith("openeo_tile_jobs/") for n in names)
    for needed in ("metadata.txt", "__init__.py", "plugin.py", "README.md", "CHANGELOG.md", "resources/icon.svg"):
        assert f"openeo_tile_jobs/{needed}" in names
    for package_dir in ("core", "gis", "ui", "processing", "local_backend"):
        assert f"openeo_tile_jobs/{package_dir}/__init__.py" in names
    assert "openeo_tile_jobs/local_backend/processes/cloud_free_composite.json" in names
    for left_out in ("tests/", "benchmarks/", "scripts/", "demo/", "docs/", "Makefile", ".gitignore"):
        assert not any(n.startswith(f"openeo_tile_jobs/{left_out}") for n in names), left_out


@pytest.mark.skipif(not shutil.which("qgis_process.bin"), reason="qgis_process.bin not installed")
def test_installed_zip_loads_in_qgis(package, qgis_profile) -> None:
    plugins = Path(qgis_profile["QGIS_CUSTOM_CONFIG_PATH"]) / "profiles" / "default" / "python" / "plugins"
    (plugins / "openeo_tile_jobs").unlink()  # the fixture links the checkout: use the ZIP instead
    zipfile.ZipFile(package).extractall(plugins)
    run = lambda *args: subprocess.run(  # noqa: E731
        [QGIS_PROCESS, *args], env=qgis_profile, capture_output=True, text=True, timeout=120
    )
    enabled = run("plugins", "enable", "openeo_tile_jobs")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    listed = run("list")
    assert listed.returncode == 0, listed.stderr
    assert "openEO Tile Jobs" in listed.stdout


def test_every_module_of_the_zip_imports(package, tmp_path) -> None:
    """All of it, the panel's modules too (qgis_process only loads the Processing side)."""
    zipfile.ZipFile(package).extractall(tmp_path)
    script = (
        "import importlib, pkgutil, sys\n"
        "import openeo_tile_jobs as p\n"
        f"assert p.__file__.startswith({str(tmp_path)!r}), p.__file__\n"
        "names = [m.name for m in pkgutil.walk_packages(p.__path__, 'openeo_tile_jobs.')]\n"
        "for name in names:\n"
        "    if '.local_backend.__main__' not in name:\n"
        "        importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 40
