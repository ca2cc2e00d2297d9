"""What a run will cost and how long it will take: before Start, and refined while it runs.

Plain arithmetic on plain values (no network, no database): :mod:`.estimate_job` asks the
backend, the panel, Processing and the demo call these.

- **Before Start** one tile stands for the run: the *typical tile* (:func:`typical_tile`, the
  tile of median area). Its figures (the backend's ``GET /jobs/{id}/estimate``, or what a
  *pilot* run of that tile alone was billed and took) are scaled to every tile by its area:
  credits ``c_i = c0 * a_i / a0``, job time ``d_i = d0 * a_i / a0``; the run's wall time with
  ``P`` jobs at a time is the end of the last job when each job, in the tiles' order, starts as
  soon as one of the ``P`` slots is free (:func:`makespan`; ``sum(d_i) / P`` for many equal
  tiles, never less than the longest job). One tile has no spread: the range of such an
  estimate is its value (:func:`extrapolate`).
- **While it runs** (:func:`refine`) the finished tiles give the credits per square metre; the
  credits still to come are that rate times the area not finished yet, plus what was billed so
  far; the range uses the lowest and highest rate of the finished tiles (the 10th and 90th
  percentiles from :data:`PERCENTILE_FROM` tiles on, so one odd tile does not set it). The time
  left comes from the pace measured in the panel (``ui.run_figures.RunClock``) or the caller,
  and gets the spread of the tiles' job durations per square metre as its range.
"""

from __future__ import annotations

import heapq
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

#: Where an estimate comes from.
SOURCE_BACKEND = "backend"  # the backend's GET /jobs/{id}/estimate for the typical tile
SOURCE_PILOT = "pilot"  # the typical tile run alone first, measured
SOURCE_FINISHED = "finished"  # the run's finished tiles (refinement during the run)

#: From this many finished tiles on, the range uses the 10th/90th percentiles instead of min/max.
PERCENTILE_FROM = 10

#: Run record key of the estimate shown before Start (the demo and the panel compare with it).
ESTIMATE_KEY = "estimate"

_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(frozen=True)
class Span:
    """A figure with its range (``low <= value <= high``)."""

    value: float
    low: float
    high: float

    @classmethod
    def point(cls, value: float) -> Span:
        return cls(value, value, value)

    @property
    def is_point(self) -> bool:
        return self.low == self.high


@dataclass(frozen=True)
class TileFigures:
    """One tile's figures: what its job costs (credits) and takes (seconds, queue included)."""

    credits: Optional[float]
    seconds: Optional[float]


@dataclass(frozen=True)
class RunEstimate:
    """Credits and time of a run (before Start: the whole run; refined: what is left).

    ``credits`` is the run's total (billed so far included); ``seconds`` the wall time of the whole
    run before Start, the time left once refined.
    """

    source: str  # SOURCE_*
    credits: Optional[Span]
    seconds: Optional[Span]
    tiles: int  # tiles the estimate covers
    parallel: int  # jobs at a time it assumes
    basis: str = ""  # e.g. the typical tile's id, or how many tiles finished
    job_id: Optional[str] = None  # the typical tile's job (backend estimates and pilots)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Optional[RunEstimate]:
        """The estimate a run record holds (None for anything else)."""
        try:
            spans = {k: Span(**data[k]) if data.get(k) else None for k in ("credits", "seconds")}
            return cls(
                source=str(data["source"]),
                tiles=int(data["tiles"]),
                parallel=int(data["parallel"]),
                basis=str(data.get("basis") or ""),
                job_id=data.get("job_id"),
                **spans,
            )
        except (KeyError, TypeError, ValueError):
            return None


def parse_iso_duration(text: Any) -> Optional[float]:
    """Seconds of an ISO 8601 duration like ``PT1M5.2S`` or ``P1DT2H`` (None when it is not one)."""
    match = _ISO_DURATION.match(str(text or "").strip().upper())
    if not match or not any(match.groupdict().values()):
        return None
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def parse_backend_estimate(body: Mapping[str, Any]) -> TileFigures:
    """The figures of ``GET /jobs/{id}/estimate`` (``costs`` and ``duration`` are both optional)."""
    costs = body.get("costs")
    try:
        cost = float(costs) if costs is not None else None
    except (TypeError, ValueError):
        cost = None
    return TileFigures(credits=cost, seconds=parse_iso_duration(body.get("duration")))


def parse_seconds(usage: Any) -> Optional[float]:
    """Seconds of a usage text as the job database keeps it (``"3.2 seconds"``, ``"3.2 s"``)."""
    parts = str(usage or "").split()
    if len(parts) != 2 or parts[1].lower() not in ("s", "sec", "second", "seconds"):
        return None
    try:
        return float(parts[0])
    except ValueError:
        return None


def typical_tile(areas: Mapping[int, float]) -> int:
    """The tile of median area (the lower median; the first such fid): the one that stands for the run."""
    if not areas:
        raise ValueError("A run without tiles has no typical tile.")
    ordered = sorted(areas.items(), key=lambda item: (item[1], item[0]))
    return ordered[(len(ordered) - 1) // 2][0]


def extrapolate(
    tile: TileFigures,
    tile_area: float,
    areas: Sequence[float],
    parallel: int,
    *,
    source: str,
    basis: str = "",
    job_id: Optional[str] = None,
) -> RunEstimate:
    """Scale one tile's figures to every tile by area (see the module docstring)."""
    if tile_area <= 0:
        raise ValueError("The typical tile has no area.")
    parallel = max(1, int(parallel))
    scale = [a / tile_area for a in areas]
    cost = Span.point(tile.credits * sum(scale)) if tile.credits is not None else None
    seconds = None
    if tile.seconds is not None and scale:
        seconds = Span.point(makespan([tile.seconds * s for s in scale], parallel))
    return RunEstimate(source, cost, seconds, len(areas), parallel, basis, job_id)


def makespan(durations: Sequence[float], parallel: int) -> float:
    """When the last of these jobs ends if each starts, in order, as soon as one of ``parallel`` slots is free."""
    slots = [0.0] * max(1, min(int(parallel), len(durations)))
    for seconds in durations:
        heapq.heapreplace(slots, slots[0] + seconds)
    return max(slots) if durations else 0.0


def _range(rates: Sequence[float]) -> tuple[float, float, float]:
    """Mean, low and high of per-area rates (percentiles from :data:`PERCENTILE_FROM` values on)."""
    mean = statistics.fmean(rates)
    if len(rates) >= PERCENTILE_FROM:
        deciles = statistics.quantiles(rates, n=10, method="inclusive")
        return mean, deciles[0], deciles[-1]
    return mean, min(rates), max(rates)


@dataclass(frozen=True)
class FinishedTile:
    """A finished tile of the run: its area, what it was billed, how long its job took (if reported)."""

    area: float
    credits: Optional[float]
    seconds: Optional[float] = None


def refine(
    finished: Sequence[FinishedTile],
    billed: float,
    remaining_areas: Sequence[float],
    time_left: Optional[float],
    parallel: int,
) -> RunEstimate:
    """The run's estimate from its finished tiles (see the module docstring).

    ``billed``: the credits of every tile so far (failed ones included: they are billed too);
    ``time_left``: seconds left at the measured pace (None: not measured yet).
    """
    left_area = float(sum(remaining_areas))
    rates = [t.credits / t.area for t in finished if t.credits is not None and t.area > 0]
    cost = None
    if rates:
        mean, low, high = _range(rates)
        cost = Span(billed + mean * left_area, billed + low * left_area, billed + high * left_area)
    elif not remaining_areas:
        cost = Span.point(billed)
    seconds = None
    if not remaining_areas:
        seconds = Span.point(0.0)
    elif time_left is not None:
        paces = [t.seconds / t.area for t in finished if t.seconds is not None and t.area > 0]
        if paces and statistics.fmean(paces) > 0:
            mean, low, high = _range(paces)
            seconds = Span(time_left, time_left * low / mean, time_left * high / mean)
        else:
            seconds = Span.point(time_left)
    basis = f"{len(finished)} finished tile{'s' if len(finished) != 1 else ''}"
    return RunEstimate(SOURCE_FINISHED, cost, seconds, len(finished) + len(remaining_areas), parallel, basis)


def format_seconds(seconds: Optional[float]) -> str:
    """``h:mm:ss`` or ``m:ss`` (``–`` for None)."""
    if seconds is None:
        return "–"
    total = int(round(max(0.0, seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_span(span: Optional[Span], unit: str = "") -> str:
    """``12.3 credits`` or ``12.3 credits (11.0–14.1)``; times with ``unit="time"``."""
    if span is None:
        return "–"
    fmt = format_seconds if unit == "time" else (lambda v: f"{v:,.2f}")
    text = fmt(span.value) + ("" if unit in ("", "time") else f" {unit}")
    low, high = fmt(span.low), fmt(span.high)
    if low != high:  # a range narrower than the figures' precision is not shown
        text += f" ({low}–{high})"
    return text


def describe_source(estimate: RunEstimate) -> str:
    """Where the figures come from, in a sentence part (English; the panel translates its own)."""
    if estimate.source == SOURCE_BACKEND:
        return f"the backend's estimate for tile {estimate.basis}, scaled by area to {estimate.tiles} tiles"
    if estimate.source == SOURCE_PILOT:
        return f"tile {estimate.basis} run alone first, scaled by area to {estimate.tiles} tiles"
    return f"from {estimate.basis}"


def describe(estimate: RunEstimate) -> str:
    """One line: credits, time and source (Processing's feedback, the demo, logs)."""
    what = "time left" if estimate.source == SOURCE_FINISHED else "time"
    return (
        f"{format_span(estimate.credits, 'credits')}, {what} {format_span(estimate.seconds, 'time')} "
        f"at {estimate.parallel} job{'s' if estimate.parallel != 1 else ''} at a time ({describe_source(estimate)})"
    )


def time_left_at_pace(done_since: int, seconds_since: float, left: int, min_done: int = 2) -> Optional[float]:
    """Seconds for ``left`` tiles at the pace of ``done_since`` tiles in ``seconds_since`` (None: too few yet).

    The panel's ``ui.run_figures.RunClock`` keeps this pace across stops and sessions; Processing and
    the demo, which run once, use this."""
    if left <= 0:
        return 0.0
    if done_since < min_done or seconds_since <= 0:
        return None
    return left * seconds_since / done_since
