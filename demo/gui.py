"""``make demo GUI=1``: open the demo project in QGIS itself, with the plugin enabled.

QGIS starts with its own profile folder (``build/qgis-demo-profiles``, profile ``demo``), so
your own QGIS profile is left alone: the checkout is linked there as the plugin
``openeo_tile_jobs`` and enabled, and QGIS's Python sees the venv's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Optional

PROFILE = "demo"
PLUGIN = "openeo_tile_jobs"


def display_problem(env: Optional[dict[str, str]] = None) -> Optional[str]:
    """Why QGIS cannot open a window here, or None."""
    env = os.environ if env is None else env
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return (
            "GUI=1 needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set (an SSH session without -X, "
            "a container or a CI runner). The demo's outputs are ready: open demo_output/demo.qgz in QGIS on a "
            "machine with a screen, or look at demo_output/demo.png and demo_output/demo.gif."
        )
    if shutil.which("qgis") is None:
        return "GUI=1 needs the `qgis` command (Debian: apt-get install qgis)."
    return None


def prepare_profile(profiles_path: Path, repo_root: Path) -> Path:
    """A QGIS profile with this checkout as the plugin, enabled; returns the profile folder."""
    profile = profiles_path / "profiles" / PROFILE
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / PLUGIN
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == repo_root:
            pass
        else:
            link.unlink()
    if not link.exists():
        link.symlink_to(repo_root, target_is_directory=True)
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "PythonPlugins": {PLUGIN: "true"},
        "qgis": {"checkVersion": "false"},
    }
    _merge_ini(ini, settings)
    return profile


def _merge_ini(path: Path, values: dict[str, dict[str, str]]) -> None:
    """Set keys in a Qt INI file, keeping what QGIS wrote there before."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # Qt keys are case-sensitive
    if path.exists():
        parser.read(path, encoding="utf-8")
    for section, items in values.items():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in items.items():
            parser.set(section, key, value)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        parser.write(f, space_around_delimiters=False)
    tmp.replace(path)


def qgis_command(project: Path, profiles_path: Path, code: Optional[Path] = None) -> list[str]:
    cmd = ["qgis", "--profiles-path", str(profiles_path), "--profile", PROFILE, "--nologo", "--project", str(project)]
    if code is not None:
        cmd += ["--code", str(code)]
    return cmd


def qgis_environment(base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment for QGIS: a real window (not the Makefile's offscreen), the venv's packages.

    (The plugin loads the wheels' bundled GEOS/PROJ/GDAL itself: ``gis.native_libs``.)
    """
    env = dict(os.environ if base is None else base)
    if env.get("QT_QPA_PLATFORM") == "offscreen":
        del env["QT_QPA_PLATFORM"]
    site = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH", "")) if p)
    env.pop("QGIS_CUSTOM_CONFIG_PATH", None)
    return env


def open_in_qgis(project: Path, repo_root: Path, profiles_path: Path, code: Optional[Path] = None) -> int:
    """Open ``project`` in QGIS (blocks until QGIS is closed); returns QGIS's exit code, or 3 without a display."""
    problem = display_problem()
    if problem:
        print(problem)
        return 3
    prepare_profile(profiles_path, repo_root)
    cmd = qgis_command(project, profiles_path, code)
    print("Opening QGIS:", " ".join(cmd))
    return subprocess.call(cmd, env=qgis_environment())
