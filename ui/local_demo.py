"""The Local demo backend, started inside this QGIS when the user picks its preset.

It serves synthetic Sentinel-2 data and the demo process on 127.0.0.1 (a free port),
keeps its jobs under the QGIS profile folder, and signs users in through the OIDC
device flow (approve the code on its own page, or ``approve_device`` in tests).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

_lock = threading.Lock()
_backend: Optional[Any] = None
_started_here = False
#: Keyword arguments for the LocalBackend the preset starts (tests and the demo may change them first);
#: the pixel size is the backend's default (10 m), as in ``make demo``.
OPTIONS: dict[str, Any] = {"auth": "oidc"}
#: The port tried first, so that the URL saved with a backend (and a run's process URL) still
#: works after QGIS restarts; a free port is used when it is taken.
PREFERRED_PORT = 8089


def data_dir() -> Path:
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath()) / "openeo_tile_jobs" / "local_backend"


def pixel_size() -> float:
    """Metres per pixel of the synthetic Sentinel-2 the preset's backend computes on."""
    from ..local_backend.config import BackendConfig

    return float(OPTIONS.get("pixel_size", BackendConfig.pixel_size))


def local_backend_url() -> str:
    """Start the Local demo backend (once) on 127.0.0.1 and return its URL.

    Starting takes a noticeable fraction of a second (imports, SQLite, threads): call it from a
    background task, or use :func:`running_url` on the main thread.
    """
    global _backend, _started_here
    with _lock:
        if _backend is None:
            from ..local_backend import LocalBackend

            folder = data_dir()
            folder.mkdir(parents=True, exist_ok=True)
            try:
                _backend = LocalBackend(data_dir=str(folder), port=PREFERRED_PORT, **OPTIONS).start()
            except OSError:  # the port is taken (another QGIS, `make demo`): any free one
                _backend = LocalBackend(data_dir=str(folder), port=0, **OPTIONS).start()
            _started_here = True
            log.info("Local demo backend started at %s", _backend.url)
        return _backend.url


def running_url() -> Optional[str]:
    """The URL of the Local demo backend when it is already running (no start: main-thread safe)."""
    backend = _backend
    return backend.url if backend is not None else None


def running_backend() -> Optional[Any]:
    """The LocalBackend started by the preset, if any."""
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
