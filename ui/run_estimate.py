"""The Run step's estimate: credits and time before Start, refined while the run goes.

*Estimate* asks the run's first backend (in a QgsTask; :func:`core.estimate_job.request_estimate`)
for the estimate of the typical tile's job and scales it to every tile. That job is the tile's
job: *Start* starts it. A backend without estimates gets *Start with one tile*: the typical tile
runs alone (the engine with ``only_fids``), and what it was billed and took is scaled
(:func:`core.estimate_job.pilot_estimate`); *Start* then runs the rest. During a run the finished
tiles refine it (:func:`core.estimate_job.refined_estimate`, in a QgsTask at most every
:data:`REFINE_EVERY_S`), and the spread of their job times gives *Time left* its range.

The estimate shown before Start is kept in the run record (:data:`core.estimate.ESTIMATE_KEY`),
with a fingerprint of the job specification: a Start with another process or other parameters
puts the estimate's tile back to ``not started`` first, so the engine never starts a job built
for other parameters (that job stays ``created``, never started, on the backend).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Callable, Optional, Protocol

from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QPushButton, QVBoxLayout, QWidget

from ..core import statuses
from ..core.estimate import (
    ESTIMATE_KEY,
    SOURCE_BACKEND,
    SOURCE_PILOT,
    RunEstimate,
    format_seconds,
    format_span,
    typical_tile,
)
from ..core.estimate_job import parallel_of, pilot_estimate, refined_estimate, request_estimate, tile_areas
from ..core.events import Progress
from ..core.jobdb import JobDB
from ..core.jobspec import JobSpec
from ..core.run_setup import make_scheduler
from .credentials import CredentialSnapshot
from .i18n import translator
from .proxies import qgis_proxies
from .tasks import run_in_background
from .widgets import WrapLabel, button_row


class RunHost(Protocol):
    """What the estimate needs of the run controller (:class:`ui.run_controller.RunController`), named
    here so that this module, which the Run page imports, does not import the controller back."""

    page: Any  # ui.run_page.RunPage
    pages: Any  # ui.run_controller.RunPages
    db: Optional[JobDB]
    scheduler: Optional[Any]  # core.scheduler.Scheduler
    runFinished: Any  # the controller's pyqtSignal(str)

    @property
    def running(self) -> bool: ...

    def validate(self) -> Any: ...

    def prepare(self, run: Any, then: Callable[..., None], failed: Callable[[str], None]) -> Any: ...

    def start(self, only_fids: Optional[set[int]] = None) -> Any: ...

    def refresh_tile(self, fid: int) -> None: ...


tr = translator("RunEstimate")
log = logging.getLogger(__name__)

#: Fewest seconds between two refinements of the estimate during a run.
REFINE_EVERY_S = 5.0


def spec_fingerprint(spec: JobSpec) -> str:
    """Identifies what a tile's job runs (process and parameters)."""
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


class EstimateView(QWidget):
    """The estimate's text and its two actions (in the Run box, above Start)."""

    estimateRequested = pyqtSignal()
    pilotRequested = pyqtSignal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        self.label = WrapLabel(tr("Estimate asks the backend what the run will cost and take, before Start."))
        self.estimate_button = QPushButton(tr("Estimate"))
        self.estimate_button.setToolTip(
            tr("Ask the backend for the credits and time of a typical tile's job (it becomes that tile's job)")
        )
        self.pilot_button = QPushButton(tr("Start with one tile"))
        self.pilot_button.setToolTip(tr("Run a typical tile alone first and extrapolate its credits and time"))
        column.addWidget(self.label)
        column.addLayout(button_row(self.estimate_button, self.pilot_button))
        self.estimate_button.clicked.connect(self.estimateRequested)
        self.pilot_button.clicked.connect(self.pilotRequested)

    def set_text(self, text: str) -> None:
        self.label.setText(text)
        self.label.setToolTip(text)

    def set_enabled(self, enabled: bool) -> None:
        self.estimate_button.setEnabled(enabled)
        self.pilot_button.setEnabled(enabled)


def describe_before(estimate: RunEstimate) -> str:
    """The estimate before Start: figures, then where they come from (translated)."""
    figures = tr("{credits} credits, {time} with {parallel} job(s) at a time").format(
        credits=format_span(estimate.credits),
        time=format_span(estimate.seconds, "time"),
        parallel=estimate.parallel,
    )
    if estimate.source == SOURCE_BACKEND:
        source = tr(
            "Source: the backend's estimate for tile {tile} (its job {job} starts with the run), "
            "scaled by area to {tiles} tiles."
        )
    elif estimate.source == SOURCE_PILOT:
        source = tr("Source: tile {tile} run alone first (job {job}), scaled by area to {tiles} tiles.")
    else:
        source = tr("Source: {tile}.")
    return figures + "\n" + source.format(tile=estimate.basis, job=estimate.job_id, tiles=estimate.tiles)


class EstimateController(QObject):
    """Drives :class:`EstimateView` for the run controller's run (main thread; work in QgsTasks)."""

    def __init__(self, runs: RunHost) -> None:
        super().__init__(runs)
        self.runs = runs
        self.view: EstimateView = runs.page.estimate
        self.before: Optional[RunEstimate] = None  # the estimate shown before Start
        self.refined: Optional[RunEstimate] = None
        self.busy = False
        self._pilot: Optional[tuple[int, float]] = None  # fid, monotonic start of a pilot run
        self._areas: Optional[dict[int, float]] = None  # every tile's area (refinements)
        self._refined_at = -1e18
        self._refining = False
        self._keep: list[Any] = []
        self.view.estimateRequested.connect(self.request)
        self.view.pilotRequested.connect(self.start_pilot)
        runs.runFinished.connect(self._run_ended)

    # the run shown ---------------------------------------------------------------------------
    def opened(self, db: JobDB) -> None:
        """A run is shown: its recorded estimate, if any."""
        record = db.run_record().get(ESTIMATE_KEY) or {}
        self.before = None if record.get("stale") else RunEstimate.from_dict(record)
        self.refined, self._areas, self._pilot = None, None, None
        self._refined_at = -1e18
        self._show()

    def _show(self, note: str = "") -> None:
        if self.before is None:
            text = note or tr("Estimate asks the backend what the run will cost and take, before Start.")
        else:
            text = describe_before(self.before) + (("\n" + note) if note else "")
        refined = self.refined
        if refined is None:
            self.view.set_text(text)
            return
        if refined.seconds is not None and refined.seconds.high == 0:  # nothing left: what the run took
            head = tr("Final: {credits} credits in {time}.").format(
                credits=format_span(refined.credits), time=format_seconds(self.runs.page.clock.elapsed())
            )
        else:
            head = tr("Now: {credits} credits, {left} left (from {basis}).").format(
                credits=format_span(refined.credits), left=format_span(refined.seconds, "time"), basis=refined.basis
            )
        self.view.set_text(head + ("\n" + tr("Before Start: ") + text if self.before is not None else ""))

    # before Start -----------------------------------------------------------------------------
    def request(self) -> bool:
        """Ask the backend for the estimate (in a task); False when a step is not ready."""
        if self.busy or self.runs.running:
            return False
        run = self.runs.validate()
        if run is None:
            return False
        self.before_start(run["spec"])  # an estimate for other parameters: its tile starts afresh
        if self._still_waiting():  # asked already: no second job
            self._show()
            return True
        self._busy(True, tr("Asking the backend for an estimate…"))
        return self.runs.prepare(run, self._request, lambda error: self._failed(RuntimeError(error)))

    def _request(self, run: dict[str, Any]) -> bool:
        snapshot = CredentialSnapshot(run["profiles"], self)
        path, proxies = str(self.runs.db.path), qgis_proxies()

        def work(_task) -> Any:
            scheduler = make_scheduler(
                path,
                spec=run["spec"],
                profiles=run["profiles"],
                output_dir=run["output"],
                credentials=snapshot.provider,
                proxies=proxies,
            )
            try:
                return request_estimate(scheduler)
            finally:
                scheduler.close()
                scheduler.db.close()

        def done(outcome) -> None:
            self._busy(False)
            self.runs.refresh_tile(outcome.fid)
            if outcome.estimate is None:
                self._show(
                    tr("No estimate: {reason}. Start with one tile runs tile {tile} first and extrapolates.").format(
                        reason=outcome.reason, tile=outcome.tile_id
                    )
                )
                return
            self._keep_estimate(outcome.estimate, outcome.fid, run["spec"])

        self._keep = [run_in_background(tr("Estimating the run"), work, done, self._failed), snapshot]
        return True

    def start_pilot(self) -> bool:
        """Run the typical tile alone; its figures become the estimate when it finishes."""
        if self.busy or self.runs.running or self.runs.db is None:
            return False
        path = str(self.runs.db.path)
        self._busy(True, tr("Choosing the typical tile…"))

        def work(_task) -> int:
            with JobDB.open(path) as db:
                return typical_tile(tile_areas(db))

        def done(fid: int) -> None:
            self._busy(False)
            self._pilot = (fid, time.monotonic())
            if not self.runs.start(only_fids={fid}):
                self._pilot = None
                return
            tile = (self.runs.db.get(fid, columns=["tile_id"]) or {}).get("tile_id", fid)
            self._show(tr("Running tile {tile} alone first (pilot)…").format(tile=tile))

        self._keep = [run_in_background(tr("Choosing the pilot tile"), work, done, self._failed)]
        return True

    def _run_ended(self, outcome: str) -> None:
        if self._pilot is None:
            return
        fid, t0 = self._pilot
        self._pilot = None
        if outcome != "done" or self.runs.db is None:
            self._show(tr("The pilot tile did not finish: no estimate."))
            return
        seconds = time.monotonic() - t0
        path, parallel = str(self.runs.db.path), self._parallel()
        spec = self.runs.scheduler.spec if self.runs.scheduler is not None else None

        def work(_task) -> Optional[RunEstimate]:
            with JobDB.open(path) as db:
                return pilot_estimate(db, fid, seconds, parallel)

        def done(estimate: Optional[RunEstimate]) -> None:
            if estimate is None:
                self._show(tr("The pilot tile did not finish: no estimate."))
            else:
                self._keep_estimate(estimate, fid, spec)

        self._keep = [run_in_background(tr("Estimating from the pilot tile"), work, done, self._failed)]

    def _keep_estimate(self, estimate: RunEstimate, fid: int, spec: Optional[JobSpec]) -> None:
        self.before = estimate
        record = {**estimate.to_dict(), "fid": fid, "spec": spec_fingerprint(spec) if spec else None}
        try:
            self.runs.db.update_run_record({ESTIMATE_KEY: record})
        except Exception as exc:  # noqa: BLE001 (shown, not recorded)
            log.warning("Cannot record the estimate: %s", exc)
        self._show()

    def before_start(self, spec: JobSpec) -> None:
        """Start with ``spec``: an estimate's job built for another process or parameters is not started."""
        db = self.runs.db
        record = (db.run_record().get(ESTIMATE_KEY) or {}) if db is not None else {}
        if not record or record.get("spec") in (None, spec_fingerprint(spec)) or record.get("fid") is None:
            return
        fid = int(record["fid"])
        row = db.get(fid, columns=["status", "id", "attempts"])
        if row and row["status"] == statuses.CREATED and row.get("id") == record.get("job_id"):
            db.update(
                fid,
                status=statuses.NOT_STARTED,
                id=None,
                client_token=None,
                backend_name=None,
                attempts=max(0, int(row.get("attempts") or 1) - 1),
            )
            self.runs.refresh_tile(fid)
            log.info("Job %s was made for other parameters; tile %s starts a new one.", row["id"], fid)
        db.update_run_record({ESTIMATE_KEY: {**record, "spec": None, "stale": True}})
        self.before = None
        self._show(tr("The estimate was made for other parameters."))

    def _still_waiting(self) -> bool:
        """The backend estimate shown is for these parameters and its job still waits for the Start."""
        if self.before is None or self.before.source != SOURCE_BACKEND or self.runs.db is None:
            return False
        row = self.runs.db.get_by_tile_id(self.before.basis, columns=["status", "id"]) or {}
        return row.get("status") == statuses.CREATED and row.get("id") == self.before.job_id

    # during the run -----------------------------------------------------------------------
    def on_progress(self, progress: Progress) -> None:
        if self._pilot is not None or self._refining or self.runs.db is None:
            return
        if progress.counts.get(statuses.FINISHED, 0) == 0:
            return
        if time.monotonic() - self._refined_at < REFINE_EVERY_S and progress.done < progress.total:
            return
        self._refining, self._refined_at = True, time.monotonic()
        path, areas, parallel = str(self.runs.db.path), self._areas, self._parallel()
        time_left = self.runs.page.clock.remaining(progress.total)

        def work(_task) -> tuple[dict[int, float], RunEstimate]:
            with JobDB.open(path) as db:
                known = areas if areas is not None else tile_areas(db, None)
                return known, refined_estimate(db, known, time_left, parallel)

        def done(result) -> None:
            self._refining = False
            self._areas, self.refined = result
            seconds = self.refined.seconds
            if seconds is not None and seconds.value > 0:
                self.runs.page.clock.spread = (seconds.low / seconds.value, seconds.high / seconds.value)
            self._show()

        def failed(error: BaseException) -> None:
            self._refining = False
            log.info("Cannot refine the estimate: %s", error)

        self._keep.append(run_in_background(tr("Refining the estimate"), work, done, failed))
        self._keep = [t for t in self._keep if not getattr(t, "done", False)]

    # helpers ------------------------------------------------------------------------------
    def _parallel(self) -> int:
        scheduler = self.runs.scheduler
        if scheduler is not None:
            return parallel_of(scheduler)
        return max(1, sum(p.parallel_jobs for p in self.runs.pages.backends.profiles))

    def _busy(self, busy: bool, text: str = "") -> None:
        self.busy = busy
        self.view.set_enabled(not busy and not self.runs.running)
        self.runs.page.start_button.setEnabled(not busy and not self.runs.running)
        if text:
            self.view.set_text(text)

    def _failed(self, error: BaseException) -> None:
        self._busy(False)
        self._pilot = None
        self._show(tr("No estimate: {error}").format(error=error))
