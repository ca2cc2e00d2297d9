"""``make demo``: the seed notebook's workflow, headless in real QGIS, through the plugin's own code.

Without options it starts the Local demo backend (offline, no account), splits the seed's
Antwerp AOI (EPSG:32631, 590000 5660000 - 610000 5680000) into 16 tiles of 5 km, runs the
cloud-free composite (by namespace URL, temporal_extent 2024-06-01 - 2024-09-01) as one batch
job per tile, two at a time, downloads the results and writes into ``demo_output/``:

* ``demo_run.gpkg``: the job database (and tile layer);
* ``job_<id>/``: each job's downloaded results;
* ``demo.qgz``: a QGIS project with the styled tile layer and the result layers (relative paths);
* ``demo.png``: the final map; ``demo.gif``: the tile colours changing during the run;
* ``summary.json`` and a summary on the terminal (tiles by status, wall time, HTTP requests).

``make demo`` again resumes an unfinished run (``FRESH=1`` starts afresh). Options:
``python -m openeo_tile_jobs.demo --help``; the Makefile variables are in the README.

Modules: :mod:`.options` (flags), :mod:`.area` (grid), :mod:`.auth` (sign-in),
:mod:`.run` (the run), :mod:`.frames` (PNG and GIF), :mod:`.progress` (terminal),
:mod:`.outputs` (the output folder), :mod:`.gui` (``GUI=1``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
GUI_PROFILES = REPO_ROOT / "build" / "qgis-demo-profiles"


def main(argv: Optional[list[str]] = None) -> int:
    """Run the demo; returns the exit code (0 done, 1 failed, 2 bad usage, 130 interrupted)."""
    from .options import parse_options

    opts = parse_options(argv)
    if opts.gui:
        from .gui import display_problem

        problem = display_problem()
        if problem:
            print(f"{problem}\n(The demo runs headless anyway.)", flush=True)
    # Headless, in a throwaway QGIS settings folder: the user's QGIS profile is never touched.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    settings = tempfile.mkdtemp(prefix="otj-demo-qgis-")
    runtime_set_here = "XDG_RUNTIME_DIR" not in os.environ
    if runtime_set_here:
        os.environ["XDG_RUNTIME_DIR"] = settings  # private (0700); Qt warns without one
    saved_config = os.environ.get("QGIS_CUSTOM_CONFIG_PATH")
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = settings
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    try:
        from .run import Demo

        code = Demo(opts, app, REPO_ROOT).run()
    finally:
        app.exitQgis()
        shutil.rmtree(settings, ignore_errors=True)
        if runtime_set_here:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        if saved_config is None:
            os.environ.pop("QGIS_CUSTOM_CONFIG_PATH", None)
        else:
            os.environ["QGIS_CUSTOM_CONFIG_PATH"] = saved_config
    if opts.gui and code == 0:
        from .gui import open_in_qgis
        from .outputs import DemoPaths

        sys.stdout.flush()
        code = open_in_qgis(DemoPaths(opts.output.resolve()).project, REPO_ROOT, GUI_PROFILES)
    return code
