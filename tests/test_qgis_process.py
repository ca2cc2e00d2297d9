"""qgis_process (the headless Processing runner) sees the plugin's provider."""

from __future__ import annotations

import shutil
import subprocess

import pytest

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/lib/qgis/qgis_process.bin"


def _qgis_process(env: dict[str, str], *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not shutil.which("qgis_process.bin"), reason="qgis_process.bin not installed")
def test_provider_listed_when_plugin_enabled(qgis_profile: dict[str, str]) -> None:
    before = _qgis_process(qgis_profile, "list")
    assert "openEO Tile Jobs" not in before.stdout

    enabled = _qgis_process(qgis_profile, "plugins", "enable", "openeo_tile_jobs")
    assert enabled.returncode == 0, enabled.stderr

    after = _qgis_process(qgis_profile, "list")
    assert after.returncode == 0, after.stderr
    assert "openEO Tile Jobs" in after.stdout
