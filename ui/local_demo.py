"""The Local demo backend the panel's preset starts: in a Python process of its own beside QGIS.

Inside QGIS the backend's request handling and numpy work would share the GIL with QGIS's
main thread (measured: up to ~150 ms of main-thread delay per job); in its own process it
costs QGIS nothing. :func:`find_python` looks for a Python beside QGIS that can import the
backend's requirements: the venv QGIS's Python was pointed at (``PYTHONPATH``), the system
``python3`` on Linux, OSGeo4W's ``python3.exe`` on Windows, the one inside ``QGIS.app`` on
macOS. When there is none the backend runs inside QGIS, with a note in the log.

It serves synthetic Sentinel-2 data and the demo process on 127.0.0.1 (port
:data:`PREFERRED_PORT` when free, so saved URLs keep working after a restart), keeps its jobs
under the QGIS profile folder (so they survive restarts), and is stopped with the plugin.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

_lock = threading.Lock()
_backend: Optional[Any] = None
_started_here = False
#: Keyword arguments for the LocalBackend the preset starts (tests and the demo may change them first);
#: in its own process they become the command line's flags (``--pixel-size 20``...). The pixel size
#: is the backend's default (10 m), as in ``make demo``.
OPTIONS: dict[str, Any] = {"auth": "oidc"}
#: ``BackendProfile.preset`` of a profile made with the Local demo preset.
PRESET = "local"
#: The port tried first, so that the URL saved with a backend (and a run's process URL) still
#: works after QGIS restarts; a free port is used when it is taken.
PREFERRED_PORT = 8089
#: Seconds to wait for the backend's process to say it is ready.
START_TIMEOUT_S = 60.0
#: Why the backend runs inside QGIS (None when it runs in its own process or is not started).
note: Optional[str] = None

PACKAGE = __name__.split(".")[0]  # the plugin's import name ("openeo_tile_jobs")
PLUGIN_PARENT = Path(__file__).resolve().parent.parent.parent
_READY = re.compile(r"Local demo backend: (http://\S+)")


def data_dir() -> Path:
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath()) / "openeo_tile_jobs" / "local_backend"


def pixel_size() -> float:
    """Metres per pixel of the synthetic Sentinel-2 the preset's backend computes on."""
    from ..local_backend.config import BackendConfig

    return float(OPTIONS.get("pixel_size", BackendConfig.pixel_size))


# -- a Python beside QGIS ----------------------------------------------------------------------


def python_candidates() -> list[Path]:
    """Pythons to try, best first, for this platform."""
    found: list[Path] = []
    for entry in sys.path:  # a venv whose site-packages QGIS's Python was given (PYTHONPATH)
        site = Path(entry)
        if site.name == "site-packages":
            root = site.parent.parent.parent if site.parent.name.startswith("python") else site.parent.parent
            if (root / "pyvenv.cfg").is_file():
                found += [root / "bin" / "python", root / "Scripts" / "python.exe"]
    prefix, exe = Path(sys.prefix), Path(sys.executable)
    if sys.platform.startswith("win"):
        osgeo4w = os.environ.get("OSGEO4W_ROOT")
        found += [Path(osgeo4w) / "bin" / "python3.exe"] if osgeo4w else []
        found += [prefix / "python3.exe", prefix / "python.exe"]
    elif sys.platform == "darwin":
        found += [exe.parent / "bin" / "python3", prefix / "bin" / "python3"]
    else:
        found += [Path("/usr/bin/python3"), prefix / "bin" / "python3"]
    if exe.name.lower().startswith("python"):
        found.insert(0, exe)  # a plain Python process (tests, scripts)
    unique: list[Path] = []
    for path in found:
        if path.is_file() and path not in unique:
            unique.append(path)
    return unique


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_PARENT), env.get("PYTHONPATH", "")) if p)
    env.pop("QT_QPA_PLATFORM", None)
    return env


def can_serve(python: Path, timeout: float = 60.0) -> bool:
    """Whether ``python`` imports the plugin's backend package and finds all its requirements."""
    code = f"import sys; from {PACKAGE}.local_backend import missing_requirements as m; sys.exit(1 if m() else 0)"
    try:
        done = subprocess.run(
            [str(python), "-c", code], env=_child_env(), capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def find_python() -> Optional[Path]:
    """The first Python beside QGIS that can run the Local demo backend, or None."""
    return next((p for p in python_candidates() if can_serve(p)), None)


# -- the backend in its own process ---------------------------------------------------------------


def command_line(python: Path, folder: Path, port: int, options: dict[str, Any]) -> list[str]:
    """``python -m <plugin>.local_backend`` with :data:`OPTIONS` as flags."""
    args = [str(python), "-m", f"{PACKAGE}.local_backend", "--port", str(port), "--data-dir", str(folder)]
    for key, value in options.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "users":
            for name, password in dict(value).items():
                args += ["--user", f"{name}:{password}"]
        elif key == "faults":
            args += [flag, json.dumps(value)]
        else:
            args += [flag, str(value)]
    return args + ["--log-level", "WARNING"]


class BackendProcess:
    """A Local demo backend in a child process; what the panel needs of a ``LocalBackend``."""

    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process = process
        self.url = url

    @property
    def demo_process_url(self) -> str:
        return f"{self.url}/udp/cloud_free_composite.json"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @classmethod
    def start(cls, python: Path, folder: Path, port: int, options: dict[str, Any]) -> BackendProcess:
        """Start it and wait for its "ready" line; raises OSError when it exits first (a taken port)."""
        errors = open(folder / "backend.log", "ab")
        creation = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        process = subprocess.Popen(
            command_line(python, folder, port, options),
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            env=_child_env(),
            creationflags=creation,
        )
        errors.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode("utf-8", "replace")
            if not line and process.poll() is not None:
                process.stdout.close()
                raise OSError(f"the Local demo backend exited ({process.returncode}); see {folder / 'backend.log'}")
            match = _READY.search(line)
            if match:
                return cls(process, match.group(1))
        process.kill()
        raise OSError(f"the Local demo backend did not start within {START_TIMEOUT_S:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: it stops like Ctrl+C
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _start(folder: Path) -> Any:
    """A running backend: in its own process when a Python beside QGIS can, else in this one."""
    global note
    python = find_python()
    if python is not None:
        note = None
        try:
            return BackendProcess.start(python, folder, PREFERRED_PORT, OPTIONS)
        except OSError:  # the port is taken (another QGIS, `make demo`): any free one
            return BackendProcess.start(python, folder, 0, OPTIONS)
    from ..local_backend import LocalBackend

    note = "No Python beside QGIS can run the Local demo backend: it runs inside QGIS (the map may react slower)."
    log.warning(note)
    try:
        return LocalBackend(data_dir=str(folder), port=PREFERRED_PORT, **OPTIONS).start()
    except OSError:
        return LocalBackend(data_dir=str(folder), port=0, **OPTIONS).start()


def local_backend_url() -> str:
    """Start the Local demo backend (once) on 127.0.0.1 and return its URL.

    Starting takes a while (finding a Python, the child's imports): call it from a background
    task, or use :func:`running_url` on the main thread.
    """
    global _backend, _started_here
    with _lock:
        if _backend is None:
            folder = data_dir()
            folder.mkdir(parents=True, exist_ok=True)
            _backend = _start(folder)
            _started_here = True
            log.info("Local demo backend started at %s", _backend.url)
        return _backend.url


def ready_profile(profile: Any) -> Any:
    """The backend profile at the URL the Local demo backend has now, started when needed.

    A profile made with the Local demo preset (``preset == PRESET``) may have been saved with
    another port; any other profile is returned unchanged. Call it from a background task.
    """
    if getattr(profile, "preset", None) != PRESET:
        return profile
    url = local_backend_url()
    return profile if profile.url == url else dataclasses.replace(profile, url=url)


def running_url() -> Optional[str]:
    """The URL of the Local demo backend when it is already running (no start: main-thread safe)."""
    backend = _backend
    return backend.url if backend is not None else None


def running_backend() -> Optional[Any]:
    """The backend started by the preset (a :class:`BackendProcess` or a LocalBackend), if any."""
    return _backend


def use_backend(backend: Any) -> None:
    """Make an already running LocalBackend the preset's (tests, ``make demo``)."""
    global _backend, _started_here
    with _lock:
        _backend = backend
        _started_here = False


def stop() -> None:
    """Stop the Local demo backend if this module started it (the plugin's unload)."""
    global _backend, _started_here
    with _lock:
        if _backend is not None and _started_here:
            _backend.stop()
        _backend = None
        _started_here = False
