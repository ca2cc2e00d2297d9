"""Download book-keeping: which finished tiles wait for their results, and what their downloads did.

The transfers themselves run on :class:`core.downloads.Downloader`'s workers; here, in the
round's thread, tiles move pending -> downloading -> downloaded / failed. A tile is handed
to the downloader once: the downloader holds it "in flight" until :meth:`Downloader.poll`
has given its result to the round (so a download ending between two rounds is never sent
again).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from . import statuses
from .downloads import DOWNLOADED, DOWNLOADING, FAILED, PENDING, DownloadResult, DownloadTask
from .engine_config import StepReport
from .redact import redact
from .round_updates import RoundUpdates


class DownloadBook:
    """Part of :class:`core.scheduler.Scheduler`: download book-keeping (see the module docstring)."""

    def _mark_download_pending(self, fid: int, tile_id: Any, job_id: str, backend: str) -> None:
        self._download_pending.add(fid)
        self._download_meta[fid] = (tile_id, job_id, backend)

    def _pending_from_db(self, rnd: RoundUpdates, wanted: list[str]) -> None:
        """Tiles whose result_status is one of ``wanted`` (finished, with a job) wait for their download again."""
        for r in self._rows_by_result_status(wanted):
            if r.get("status") != statuses.FINISHED or not r.get("id"):
                continue
            fid = int(r["fid"])
            self._result_of[fid] = r.get("result_status")
            if r.get("result_status") != PENDING:
                self._result_move(rnd, r, PENDING)
            self._mark_download_pending(fid, r.get("tile_id"), r["id"], r.get("backend_name") or "")

    def _queue_downloads(self, rnd: RoundUpdates, report: StepReport) -> None:
        if not self.config.download or self._downloader.stopped:
            return
        in_flight = self._downloader.in_flight_fids()
        for fid in sorted(self._download_pending - in_flight):
            tile_id, jid, bname = self._download_meta.get(fid, (None, None, None))
            backend = self.backends.get(bname or "")
            if not jid or backend is None or backend.connection is None or not backend.ready():
                continue
            if self._downloader.submit(DownloadTask(fid=fid, tile_id=tile_id, job_id=jid, backend=bname)):
                self._result_move(rnd, {"fid": fid, "tile_id": tile_id}, DOWNLOADING)
                report.downloads_queued += 1

    def _apply_download_results(self, rnd: RoundUpdates, report: StepReport) -> None:
        for res in self._downloader.poll():
            self._apply_download_result(res, rnd)
            report.downloads_finished += 1

    def _apply_download_result(self, res: DownloadResult, rnd: RoundUpdates) -> None:
        t = res.task
        row = {"fid": t.fid, "tile_id": t.tile_id}
        if res.canceled:
            self._result_move(rnd, row, PENDING)
            return
        self._download_pending.discard(t.fid)
        self._download_meta.pop(t.fid, None)
        files = [str(Path(res.result_dir) / name) for name in res.files]
        where = {"tile_id": t.tile_id, "job_id": t.job_id, "backend": t.backend}
        if res.ok:
            self._result_move(rnd, row, DOWNLOADED, result_dir=res.result_dir, result_files=json.dumps(files))
            self._emit_log(
                logging.INFO, f"Tile {t.tile_id}: downloaded {len(files)} file(s) of job {t.job_id}", **where
            )
        else:
            msg = redact(f"download failed: {res.error}")[:1000]
            self._result_move(
                rnd, row, FAILED, result_dir=res.result_dir or None, result_files=json.dumps(files), last_error=msg
            )
            self._emit_log(logging.ERROR, f"Tile {t.tile_id}: {msg}", **where)

    def _rows_by_result_status(self, wanted: list[str]) -> list[dict]:
        cols = [c for c in ("fid", "tile_id", "status", "id", "backend_name", "result_status") if c in self._columns]
        return self.db.get_where("result_status", wanted, columns=cols)

    def _downloads_busy(self) -> bool:
        return bool(self._download_pending) or self._downloader.in_flight() > 0
