"""The Local demo backend, started inside this QGIS when the user picks its preset."""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

log = logging.getLogger(__name__)

_lock = threading.Lock()
_backend: Optional[Any] = None


def local_backend_url() -> str:
    """Start the Local demo backend (once) on 127.0.0.1 and return its URL."""
    global _backend
    with _lock:
        if _backend is None:
            from ..local_backend import LocalBackend

            backend = LocalBackend(auth="oidc")
            backend.start()
            _backend = backend
            log.info("Local demo backend started at %s", backend.url)
        return _backend.url


def running_backend() -> Optional[Any]:
    return _backend


def stop() -> None:
    global _backend
    with _lock:
        if _backend is not None:
            _backend.stop()
            _backend = None
