"""Command-line options of the demo (``make demo`` turns its variables into these flags).

Plain Python: no qgis import, so ``--help`` and option errors are instant.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

#: The seed notebook's area of interest: Antwerp, EPSG:32631.
SEED_AOI: dict[str, Any] = {"west": 590000, "south": 5660000, "east": 610000, "north": 5680000, "crs": "EPSG:32631"}
SEED_TILE_SIZE = 5000.0
SEED_TEMPORAL_EXTENT = ["2024-06-01", "2024-09-01"]
SEED_PARALLEL_JOBS = 2

AUTH_CHOICES = ("none", "basic", "oidc")
MODE_AUTO, MODE_FRESH, MODE_RESUME = "auto", "fresh", "resume"

#: Local demo backend settings chosen for the demo (see README "Quick start"): Sentinel-2's own
#: 10 m pixels (a 5 km tile is 500 x 500 px, ~1.6 s of compute on one core), and a job stays
#: queued >= 1 s and running >= 2 s so every colour of its life shows on the map.
LOCAL_PIXEL_SIZE = 10.0
LOCAL_MIN_QUEUE_TIME = 1.0
LOCAL_MIN_RUN_TIME = 2.0

AoiSpec = Union[dict[str, Any], Path]


class OptionError(ValueError):
    """A bad option value; the message says what to write instead."""


@dataclass
class DemoOptions:
    output: Path = Path("demo_output")
    mode: str = MODE_AUTO
    backend_url: Optional[str] = None  # None: the Local demo backend
    auth: str = "none"
    process_url: Optional[str] = None  # None: the Local demo backend's cloud-free composite
    process_id: Optional[str] = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"temporal_extent": list(SEED_TEMPORAL_EXTENT)})
    aoi: AoiSpec = field(default_factory=lambda: dict(SEED_AOI))
    aoi_name: Optional[str] = "Antwerp"  # shown in the pictures' title
    tile_size: float = SEED_TILE_SIZE
    tiles: Optional[int] = None  # keep only this many tiles (a block around the AOI's centre)
    fit: bool = True  # equal tiles fitted to the AOI; False: openeo split_area's squares and edge slivers
    parallel_jobs: int = SEED_PARALLEL_JOBS
    pixel_size: float = LOCAL_PIXEL_SIZE
    min_queue_time: float = LOCAL_MIN_QUEUE_TIME
    min_run_time: float = LOCAL_MIN_RUN_TIME
    #: Faults the Local demo backend injects (tests only; never recorded with the run).
    local_faults: Optional[dict[str, Any]] = None
    oidc_provider: Optional[str] = None
    oidc_client_id: Optional[str] = None
    token_store: bool = True
    gui: bool = False
    frames: bool = True
    frame_interval: float = 0.5
    progress: Optional[str] = None  # "line", "log" or None (auto: line on a TTY)

    @property
    def local(self) -> bool:
        return self.backend_url is None


def parse_aoi(text: str) -> AoiSpec:
    """``W,S,E,N[,CRS]`` (CRS default EPSG:4326) or the path of a vector file (any OGR format)."""
    text = text.strip()
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    if len(parts) in (4, 5):
        try:
            west, south, east, north = (float(p) for p in parts[:4])
        except ValueError:
            pass
        else:
            if west >= east or south >= north:
                raise OptionError(f"AOI {text!r}: west must be < east and south < north.")
            crs = parts[4] if len(parts) == 5 else "EPSG:4326"
            return {"west": west, "south": south, "east": east, "north": north, "crs": crs}
    path = Path(text).expanduser()
    if path.exists():
        return path
    raise OptionError(
        f"AOI {text!r} is neither 'west,south,east,north[,CRS]' (e.g. '4.2,51.1,4.5,51.3' or "
        "'590000,5660000,610000,5680000,EPSG:32631') nor an existing vector file."
    )


def _parameters(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionError(f"PARAMS must be a JSON object, e.g. '{{\"temporal_extent\": [...]}}': {exc}") from exc
    if not isinstance(value, dict):
        raise OptionError("PARAMS must be a JSON object (parameter name -> value).")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m openeo_tile_jobs.demo",
        description=(
            "Run the seed workflow headless in QGIS: AOI -> 5 km tiles -> one openEO batch job per tile -> "
            "downloads -> result layers, with a QGIS project, a PNG and an animated GIF in the output folder. "
            "Without --backend-url it starts the Local demo backend (offline, no account)."
        ),
    )
    p.add_argument("--output", default="demo_output", help="output folder (default demo_output)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fresh", action="store_true", help="start a new run even if the output folder has one")
    mode.add_argument(
        "--resume", action="store_true", help="only resume the run in the output folder (error when there is none)"
    )
    p.add_argument("--backend-url", help="an openEO backend (default: start the Local demo backend)")
    p.add_argument("--auth", choices=AUTH_CHOICES, default="none", help="none | basic | oidc (device flow)")
    p.add_argument("--process-url", help="namespace URL of the process (a UDP JSON, e.g. from the APEx catalogue)")
    p.add_argument("--process-id", help="process id (with --process-url: for a listing; alone: a backend process)")
    p.add_argument("--params", type=_parameters, help="JSON of parameter values (default: the seed's temporal_extent)")
    p.add_argument("--aoi", type=parse_aoi, help="W,S,E,N[,CRS] or a vector file (default: the seed's Antwerp AOI)")
    p.add_argument("--tile-size", type=float, default=SEED_TILE_SIZE, help="metres (default 5000)")
    p.add_argument("--tiles", type=int, help="keep only this many tiles, a block around the AOI's centre")
    p.add_argument(
        "--no-fit",
        action="store_true",
        help="tiles of exactly --tile-size with narrow ones at the edges (openeo's split_area) instead of equal "
        "tiles fitted to the AOI",
    )
    p.add_argument("--parallel-jobs", type=int, default=SEED_PARALLEL_JOBS, help="jobs at once (default 2)")
    p.add_argument("--pixel-size", type=float, default=LOCAL_PIXEL_SIZE, help="Local demo backend: metres per pixel")
    p.add_argument("--min-queue-time", type=float, default=LOCAL_MIN_QUEUE_TIME, help=argparse.SUPPRESS)
    p.add_argument("--min-run-time", type=float, default=LOCAL_MIN_RUN_TIME, help=argparse.SUPPRESS)
    p.add_argument("--local-faults", type=json.loads, help=argparse.SUPPRESS)  # JSON of the backend's FaultConfig
    p.add_argument("--oidc-provider", help="OpenID Connect provider id (default: the backend's first)")
    p.add_argument("--oidc-client-id", help="OpenID Connect client id (default: the provider's default client)")
    p.add_argument(
        "--no-token-store",
        action="store_true",
        help="do not read or write the openeo client's refresh-token store (~/.local/share/openeo-python-client)",
    )
    p.add_argument("--gui", action="store_true", help="then open the project in QGIS with the plugin enabled")
    p.add_argument("--no-frames", action="store_true", help="no animation frames (faster on slow machines)")
    p.add_argument("--progress", choices=("line", "log"), help="progress display (default: line on a terminal)")
    return p


def parse_options(argv: Optional[list[str]] = None) -> DemoOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    opts = DemoOptions(
        output=Path(args.output),
        mode=MODE_FRESH if args.fresh else MODE_RESUME if args.resume else MODE_AUTO,
        backend_url=(args.backend_url or "").strip() or None,
        auth=args.auth,
        process_url=(args.process_url or "").strip() or None,
        process_id=(args.process_id or "").strip() or None,
        tile_size=args.tile_size,
        tiles=args.tiles,
        fit=not args.no_fit,
        parallel_jobs=args.parallel_jobs,
        pixel_size=args.pixel_size,
        min_queue_time=args.min_queue_time,
        min_run_time=args.min_run_time,
        local_faults=args.local_faults,
        oidc_provider=args.oidc_provider,
        oidc_client_id=args.oidc_client_id,
        token_store=not args.no_token_store,
        gui=args.gui,
        frames=not args.no_frames,
        progress=args.progress,
    )
    if args.params is not None:
        opts.parameters = args.params
    if args.aoi is not None:
        opts.aoi = args.aoi
        opts.aoi_name = args.aoi.stem if isinstance(args.aoi, Path) else None
    if opts.backend_url and not (opts.process_url or opts.process_id):
        parser.error("with --backend-url, give the process: --process-url URL (or --process-id ID)")
    if opts.tiles is not None and opts.tiles < 1:
        parser.error("--tiles must be at least 1")
    if opts.parallel_jobs < 1:
        parser.error("--parallel-jobs must be at least 1")
    if opts.tile_size <= 0:
        parser.error("--tile-size must be more than 0 metres")
    return opts
