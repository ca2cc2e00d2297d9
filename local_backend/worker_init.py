"""Imported first by every worker process (on Linux by the fork server, whose forks the workers
are): computing jobs runs at a lower CPU priority, so that QGIS's main thread and the backend's
HTTP server stay responsive while every core computes. Never imported by the backend's own
process."""

from __future__ import annotations

import os

NICENESS = 10

if hasattr(os, "nice"):  # not on Windows
    try:
        os.nice(NICENESS)
    except OSError:
        pass
