"""The engine's part of adaptive re-tiling: a job that failed for its size splits its tile.

Part of :class:`core.scheduler.Scheduler`, called by tracking (:mod:`.tracking`) when a job
ends in ``error``: when an entry of its error log matches the run's size-error rules
(:meth:`core.engine_config.EngineConfig.size_error_rules`) and the tile is less than
``split_levels`` splits deep, :func:`core.retile.split_tile` writes the parent as ``split``
and its children as ``not_started`` in one transaction; the round's events then show the
parent's move and the children's arrival. A tile at the limit stays ``error`` (or is retried
while attempts remain) with a message that says why it was not split again.

Crash safety: before the transaction nothing is written (the job's error is seen again on
resume); the transaction is atomic; after it, the round's own updates of the parent repeat
what it wrote. Test hooks (``checkpoint``): ``before_split``, ``split_commit`` (inside the
transaction), ``after_split``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Optional

from . import statuses
from .backends import Backend
from .retile import SplitError, split_level, split_tile
from .round_updates import RoundUpdates


class Splitter:
    """Part of :class:`core.scheduler.Scheduler`: splits tiles whose job was too big."""

    def _split_if_too_big(
        self, backend: Backend, row: dict, logs: list[dict], message: str, values: dict[str, Any], rnd: RoundUpdates
    ) -> Optional[str]:
        """Split the tile when its job failed for its size: None when split; else the message to
        record (saying why the tile was not split again when it was too big)."""
        if self.config.split_levels <= 0:
            return message
        reason = self.config.size_error_rules().match(logs)
        if reason is None:
            return message
        tile, jid, fid = row["tile_id"], row["id"], int(row["fid"])
        where = {"backend": backend.name, "tile_id": tile, "job_id": jid}
        level = split_level(self.db, tile)
        if level >= self.config.split_levels:
            return (
                f"{message} [too big for {backend.name} ({reason}); not split again: tile {tile} is already "
                f"{level} splits deep, the limit]"
            )
        self._hook("before_split", fid)
        note = f"{message} [too big for {backend.name} ({reason}): split into its quarters {tile}.0 to {tile}.3]"
        try:
            result = split_tile(
                self.db, fid, {**values, "last_error": note}, before_commit=lambda: self._hook("split_commit", fid)
            )
        except (SplitError, sqlite3.Error, OSError) as exc:
            self._emit_log(logging.WARNING, f"Tile {tile}: too big ({reason}) but cannot be split: {exc}", **where)
            return f"{message} [too big ({reason}); cannot be split: {exc}]"
        self._hook("after_split", fid)
        self._start_sent_at.pop(fid, None)
        values["last_error"] = note
        self._move(rnd, row, statuses.SPLIT, **values)
        for child_fid, child_tile in result.children:
            rnd.status_moves.append((child_fid, child_tile, None, statuses.NOT_STARTED))
        names = ", ".join(t for _, t in result.children)
        self._emit_log(
            logging.WARNING,
            f"Tile {tile}: job {jid} was too big for {backend.name} ({reason}); split into {len(result.children)} "
            f"tiles ({names}), which run like any tile",
            **where,
        )
        return None
