"""The demo's output folder: what is in it, whether its run is finished, and starting it afresh.

Plain Python (no qgis). A marker file says the folder is the demo's, so ``--fresh`` only ever
empties a folder the demo made.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..core.run_counts import RunCounts, read_run_counts

MARKER = ".openeo_tile_jobs_demo"


class OutputFolderError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "demo_run.gpkg"

    @property
    def project(self) -> Path:
        return self.root / "demo.qgz"

    @property
    def png(self) -> Path:
        return self.root / "demo.png"

    @property
    def gif(self) -> Path:
        return self.root / "demo.gif"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def state(self) -> Path:
        """How the run was made (backend, port of the Local demo backend...): read on resume."""
        return self.root / "demo_state.json"

    @property
    def backend_data(self) -> Path:
        return self.root / "local_backend"

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    def job_dirs(self) -> list[Path]:
        return sorted(p for p in self.root.glob("job_*") if p.is_dir())


def prepare_fresh(paths: DemoPaths) -> None:
    """Empty the output folder for a new run (refusing a non-empty folder the demo did not make)."""
    root = paths.root
    if root.exists() and not root.is_dir():
        raise OutputFolderError(f"{root} is a file, not a folder.")
    if root.is_dir() and any(root.iterdir()) and not paths.marker.exists():
        raise OutputFolderError(
            f"{root} is not empty and was not made by the demo: choose another folder (OUTPUT=...) or empty it."
        )
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    paths.marker.write_text("This folder is written by `make demo`; `make demo FRESH=1` empties it.\n")


def read_state(paths: DemoPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_json(path: Path, data: Any) -> None:
    """Atomic JSON write (never a secret in it: the callers write settings and counts only)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def folder_size(paths: list[Path]) -> tuple[int, int]:
    """(files, bytes) under the given folders."""
    files = size = 0
    for folder in paths:
        for p in folder.rglob("*"):
            if p.is_file():
                files += 1
                size += p.stat().st_size
    return files, size


def existing_run(paths: DemoPaths) -> Optional[RunCounts]:
    """The run in the folder (None when there is none, or its file is not a job database)."""
    if not paths.database.exists():
        return None
    try:
        return read_run_counts(paths.database)
    except Exception:  # noqa: BLE001 (a broken file: the caller starts fresh)
        return None


def estimate_summary(
    before: Optional[dict[str, Any]], reason: str, final_credits: Optional[float], run_seconds: float
) -> dict[str, Any]:
    """The estimate shown before Start (a :class:`core.estimate.RunEstimate` as a dict, or None and why)
    beside what the run was billed and took (the summary's ``estimate``)."""
    return {
        "before_start": before,
        "no_estimate_because": reason or None,
        "final": {"credits": final_credits, "seconds": round(run_seconds, 1)},
    }


def estimate_line(entry: dict[str, Any]) -> str:
    """``before start 15.20 credits, 0:24 (...); final 15.20 credits, 27.7 s`` for the printed summary."""
    from ..core.estimate import RunEstimate, describe_source

    def figures(cost: Optional[float], seconds: Optional[float]) -> str:
        money = "– credits" if cost is None else f"{cost:,.2f} credits"
        return money + ("" if seconds is None else f", {seconds:.1f} s")

    final = entry["final"]
    after = f"final {figures(final['credits'], final['seconds'])}"
    before = RunEstimate.from_dict(entry["before_start"] or {})
    if before is None:
        return f"none before start ({entry.get('no_estimate_because') or 'not asked'}); {after}"
    shown = figures(before.credits.value if before.credits else None, before.seconds.value if before.seconds else None)
    return f"before start {shown} ({describe_source(before)}, {before.parallel} at a time); {after}"
