"""Imported first by every worker process (on Linux by the fork server, whose forks the workers
are): computing jobs runs at a lower CPU priority, so that QGIS's main thread and the backend's
HTTP server stay responsive while every core computes. Never imported by the backend's own
process."""

from __future__ import annotations

import os

#: 10 starved the workers whenever anything else ran (4 jobs at 10 m: 14.6 s vs 7.1 s un-niced and
#: 8.5 s at 5, on this shared 2-core machine); 5 still lets an interactive thread go first.
NICENESS = 5

if hasattr(os, "nice"):  # not on Windows
    try:
        os.nice(NICENESS)
    except OSError:
        pass
