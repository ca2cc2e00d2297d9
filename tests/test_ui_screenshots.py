"""`make screenshots` ends cleanly: every PNG written and exit status 0 (it segfaulted at exit
when a window, canvas or layer was still alive after QgsApplication.exitQgis())."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOTS = (
    "01_area",
    "02_grid_preview",
    "03_sign_in_dialog",
    "03_backends",
    "04_process",
    "05_run_estimate",
    "05_run_during",
    "map_during",
    "05_run_done",
    "map_after",
)


@pytest.mark.slow
def test_screenshots_script_writes_every_png_and_exits_cleanly(repo_root, tmp_path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    script = repo_root / "scripts" / "screenshots.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "shots"), "--small"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]  # -11 (SIGSEGV) before the teardown order was fixed
    assert sorted(p.stem for p in (tmp_path / "shots").glob("*.png")) == sorted(SHOTS)
