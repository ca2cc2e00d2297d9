"""The job status vocabulary of openeo's MultiBackendJobManager and its colours.

Defined once here and reused by the job database, the scheduler, the tile layer
style and the panel. Colours are the seed notebook's (CSS colour names).
"""

from __future__ import annotations

NOT_STARTED = "not_started"
QUEUED_FOR_START = "queued_for_start"
CREATED = "created"
QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"
ERROR = "error"
CANCELED = "canceled"
SKIPPED = "skipped"
START_FAILED = "start_failed"
#: The tile's job failed for its size and the tile was split into smaller child tiles
#: (:mod:`core.retile`): its work goes on in the children; it has no result of its own.
SPLIT = "split"

#: Every status in the order a tile normally passes through them.
ALL_STATUSES: tuple[str, ...] = (
    NOT_STARTED,
    QUEUED_FOR_START,
    CREATED,
    QUEUED,
    RUNNING,
    FINISHED,
    ERROR,
    CANCELED,
    SKIPPED,
    START_FAILED,
    SPLIT,
)

#: Statuses of a tile whose work is not over yet.
ACTIVE_STATUSES: frozenset[str] = frozenset({NOT_STARTED, QUEUED_FOR_START, CREATED, QUEUED, RUNNING})
#: Statuses of a job that exists on a backend and is still alive there.
REMOTE_ACTIVE_STATUSES: frozenset[str] = frozenset({CREATED, QUEUED, RUNNING})
#: Statuses of a tile that has a job on a backend (or one being created or started): the run's "active" jobs.
TRACKED_STATUSES: tuple[str, ...] = (CREATED, QUEUED_FOR_START, QUEUED, RUNNING)
#: Statuses of a tile whose job failed, could not start or was canceled: what "failed" counts and "retry" resets.
FAILED_STATUSES: frozenset[str] = frozenset({ERROR, START_FAILED, CANCELED})
#: Statuses that end a tile's work.
#: A split tile is final but neither finished nor failed: its children carry its work.
FINAL_STATUSES: frozenset[str] = frozenset({FINISHED, ERROR, CANCELED, SKIPPED, START_FAILED, SPLIT})

STATUS_COLORS: dict[str, str] = {
    NOT_STARTED: "lightgrey",
    QUEUED_FOR_START: "lightgrey",
    CREATED: "gold",
    QUEUED: "lightsteelblue",
    RUNNING: "navy",
    FINISHED: "lime",
    ERROR: "darkred",
    CANCELED: "grey",
    SKIPPED: "darkorange",
    START_FAILED: "red",
    SPLIT: "plum",
}
#: Colour of any status not in :data:`STATUS_COLORS`.
DEFAULT_COLOR = "grey"

#: Fill opacity of a tile; finished tiles have no fill so the result raster shows, and split
#: tiles none so their children (drawn over them) and the children's results show.
FILL_OPACITY = 0.6
FINISHED_FILL_OPACITY = 0.0
#: Statuses drawn without fill (outline only).
UNFILLED_STATUSES: frozenset[str] = frozenset({FINISHED, SPLIT})

#: Hex values of the CSS colour names above, for renderers that need them.
CSS_HEX: dict[str, str] = {
    "lightgrey": "#d3d3d3",
    "gold": "#ffd700",
    "lightsteelblue": "#b0c4de",
    "navy": "#000080",
    "lime": "#00ff00",
    "darkred": "#8b0000",
    "grey": "#808080",
    "darkorange": "#ff8c00",
    "red": "#ff0000",
    "plum": "#dda0dd",
}


def color_of(status: str | None) -> str:
    """CSS colour name for a status (grey for unknown ones)."""
    return STATUS_COLORS.get(status or "", DEFAULT_COLOR)


def fill_opacity_of(status: str | None) -> float:
    return FINISHED_FILL_OPACITY if status in UNFILLED_STATUSES else FILL_OPACITY
