"""``python -m openeo_tile_jobs.demo`` (what ``make demo`` runs)."""

import sys

from . import main

sys.exit(main())
