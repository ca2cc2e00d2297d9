"""``python -m local_backend --port 8089 --data-dir DIR [options]`` (from the repository root)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from . import INSTALL_HINT, missing_requirements
from .durations import Duration


def _user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD")
    return name, password


def _duration(text: str) -> Duration:
    try:
        return Duration.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m local_backend", description="Local demo openEO backend")
    p.add_argument("--port", type=int, default=8089, help="0 picks a free port (default 8089)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--data-dir", required=True, help="jobs.sqlite and results/ live here")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--compute", choices=("processes", "threads"), default="processes", help="where jobs compute")
    p.add_argument("--pixel-size", type=float, default=10.0, help="metres (default 10)")
    p.add_argument("--max-concurrent-jobs-per-user", type=int, default=0, help="0 = unlimited")
    p.add_argument("--over-limit", choices=("queue", "refuse"), default="queue")
    durations = "seconds, 'uniform:LOW,HIGH' or 'lognormal:MEAN,SIGMA', drawn per job from --duration-seed"
    p.add_argument("--queue-time", "--min-queue-time", type=_duration, default="0", help=f"queued: {durations}")
    p.add_argument("--run-time", "--min-run-time", type=_duration, default="0", help=f"running: {durations}")
    p.add_argument("--duration-seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="job metadata without 'progress'")
    p.add_argument("--no-estimate", action="store_true", help="no GET /jobs/{id}/estimate (501, not listed)")
    p.add_argument("--max-pixels-per-job", type=int, default=0, help="0 = unlimited; more fails like an executor OOM")
    p.add_argument("--sync-max-pixel-dates", type=int, default=2_000_000, help="POST /result limit (pixels x dates)")
    p.add_argument("--auth", choices=("none", "basic", "oidc", "basic+oidc"), default="none")
    p.add_argument("--user", action="append", type=_user, default=[], help="NAME:PASSWORD, repeatable")
    p.add_argument("--token-lifetime", type=float, default=3600.0)
    p.add_argument("--oidc-auto-approve-after", type=float, default=None)
    p.add_argument("--faults", default="{}", help='JSON, e.g. \'{"error_503": 0.1, "latency": 0.2}\'')
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_requirements()
    if missing:
        print(f"The Local demo backend needs {', '.join(missing)}: {INSTALL_HINT}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .server import LocalBackend

    config = dict(
        workers=args.workers,
        compute=args.compute,
        max_pixels_per_job=args.max_pixels_per_job,
        sync_max_pixel_dates=args.sync_max_pixel_dates,
        pixel_size=args.pixel_size,
        max_concurrent_jobs_per_user=args.max_concurrent_jobs_per_user,
        over_limit=args.over_limit,
        queue_time=args.queue_time,
        run_time=args.run_time,
        duration_seed=args.duration_seed,
        report_progress=not args.no_progress,
        offer_estimate=not args.no_estimate,
        auth=args.auth,
        token_lifetime=args.token_lifetime,
        oidc_auto_approve_after=args.oidc_auto_approve_after,
        faults=json.loads(args.faults),
        host=args.host,
    )
    if args.user:
        config["users"] = dict(args.user)
    backend = LocalBackend(args.data_dir, port=args.port, **config)
    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly as Ctrl+C
    backend.serve_forever(
        ready=lambda b: print(
            f"Local demo backend: {b.url} (demo process {b.demo_process_url}; data in {args.data_dir}); Ctrl+C stops",
            flush=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
