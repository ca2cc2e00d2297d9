"""The terminal side of the demo: one updating line on a terminal, a line every few seconds otherwise.

Plain Python (no qgis). The bar has one segment per status, in the status colours of
:mod:`core.statuses` when the terminal takes colours (``NO_COLOR`` turns them off).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping
from typing import Optional, TextIO

from ..core import statuses

#: Short names shown in the progress line, in life-cycle order.
SHORT_NAMES = {
    statuses.NOT_STARTED: "waiting",
    statuses.QUEUED_FOR_START: "starting",
    statuses.CREATED: "created",
    statuses.QUEUED: "queued",
    statuses.RUNNING: "running",
    statuses.FINISHED: "finished",
    statuses.ERROR: "error",
    statuses.CANCELED: "canceled",
    statuses.SKIPPED: "skipped",
    statuses.START_FAILED: "start failed",
}
BAR_WIDTH = 24
#: Seconds between two lines when the output is not a terminal.
LOG_INTERVAL = 5.0


def _rgb(status: str) -> tuple[int, int, int]:
    hex_ = statuses.CSS_HEX.get(statuses.color_of(status), "#808080").lstrip("#")
    return int(hex_[0:2], 16), int(hex_[2:4], 16), int(hex_[4:6], 16)


def format_counts(counts: Mapping[str, int]) -> str:
    """``finished 9, running 2, waiting 5`` in life-cycle order (unknown statuses last)."""
    order = list(statuses.ALL_STATUSES) + sorted(set(counts) - set(statuses.ALL_STATUSES))
    return ", ".join(f"{SHORT_NAMES.get(s, s)} {counts[s]}" for s in order if counts.get(s))


def bar(counts: Mapping[str, int], total: int, width: int = BAR_WIDTH, color: bool = False) -> str:
    """A bar with one segment per status, proportional to its count (finished first)."""
    if total <= 0:
        return "." * width
    order = [statuses.FINISHED, statuses.RUNNING, statuses.QUEUED, statuses.CREATED, statuses.QUEUED_FOR_START]
    order += [s for s in counts if s not in order and s != statuses.NOT_STARTED] + [statuses.NOT_STARTED]
    cells: list[str] = []
    for status in order:
        n = round(width * counts.get(status, 0) / total)
        n = min(n, width - len(cells))
        cells += [status] * n
    cells += [statuses.NOT_STARTED] * (width - len(cells))
    if not color:
        glyph = {statuses.FINISHED: "#", statuses.RUNNING: ">", statuses.QUEUED: "~", statuses.CREATED: "+"}
        return "".join(glyph.get(s, "!" if s in statuses.FAILED_STATUSES else ".") for s in cells)
    out = []
    for status in dict.fromkeys(cells):  # one coloured run per status (cells are grouped)
        r, g, b = _rgb(status)
        out.append(f"\x1b[48;2;{r};{g};{b}m" + " " * cells.count(status) + "\x1b[0m")
    return "".join(out)


class TerminalProgress:
    """Shows the run's progress: call :meth:`update` as often as you like, :meth:`finish` at the end."""

    def __init__(self, stream: Optional[TextIO] = None, mode: Optional[str] = None) -> None:
        self.stream = stream or sys.stdout
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.mode = mode or ("line" if tty else "log")
        self.color = self.mode == "line" and tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.started = time.monotonic()
        self._last_text = ""
        self._last_printed = ""  # log mode: the last line written
        self._last_log = -1e9
        self._line_open = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def text(self, counts: Mapping[str, int], total: int, downloaded: int, requests: Optional[int]) -> str:
        done = sum(n for s, n in counts.items() if s in statuses.FINAL_STATUSES)
        parts = [f"{done}/{total} tiles done", format_counts(counts) or "starting"]
        parts.append(f"{downloaded} downloaded")
        if requests is not None:
            parts.append(f"{requests} HTTP requests")
        return " | ".join(parts)

    def update(
        self, counts: Mapping[str, int], total: int, downloaded: int = 0, requests: Optional[int] = None
    ) -> None:
        text = self.text(counts, total, downloaded, requests)
        now = time.monotonic()
        if self.mode == "line":
            width = shutil.get_terminal_size((100, 20)).columns
            head = f"{self.elapsed():6.1f}s "
            line = head + bar(counts, total, color=self.color) + " " + text
            visible = len(head) + BAR_WIDTH + 1 + len(text)
            if visible > width - 1:
                line = line[: len(line) - (visible - width + 1)]
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self._line_open = True
        elif text != self._last_printed and now - self._last_log >= LOG_INTERVAL:
            self.stream.write(f"{self.elapsed():6.1f}s [{bar(counts, total)}] {text}\n")
            self.stream.flush()
            self._last_log = now
            self._last_printed = text
        self._last_text = text

    def message(self, text: str) -> None:
        """A line of its own (the progress line is redrawn by the next update)."""
        if self._line_open:
            self.stream.write("\r\x1b[K")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(
        self, counts: Mapping[str, int], total: int, downloaded: int = 0, requests: Optional[int] = None
    ) -> None:
        """The final state, always written (on its own line)."""
        text = self.text(counts, total, downloaded, requests)
        if self.mode == "line":
            self.update(counts, total, downloaded, requests)
            self.stream.write("\n")
            self._line_open = False
        elif text != self._last_printed:
            self.stream.write(f"{self.elapsed():6.1f}s [{bar(counts, total)}] {text}\n")
            self._last_printed = text
        self.stream.flush()
