"""``openeo_tile_jobs:run_jobs``: one openEO batch job per tile of a job database, until all are done.

The same engine and loop as the panel (:func:`core.run_setup.make_scheduler`,
:func:`core.run_loop.drive`); progress and cancel go through QgsProcessingFeedback. Run it
again on the same job database to resume: what is not given is read from the file.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import time
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core import statuses
from ..core.backends import AUTH_BASIC, AUTH_NONE, AUTH_OIDC_CLIENT_CREDENTIALS, BackendConfigError, BackendProfile
from ..core.engine_config import EngineConfig
from ..core.events import EngineListener, LogLine
from ..core.jobdb import JobDB, JobDBError
from ..core.jobspec import JobSpec, JobSpecError
from ..core.run_counts import read_run_counts
from ..core.run_loop import OUTCOME_DONE, OUTCOME_FAILED, drive
from ..core.run_setup import make_scheduler, refuse_untileable
from ..gis.auth import AuthConfigError, credentials_from_authcfg, fixed_credentials
from ..gis.compat import NUMBER_DOUBLE, NUMBER_INTEGER, PARAMETER_ADVANCED
from .common import TileJobsAlgorithm, start_local_backend, tr
from .run_estimate import RunEstimates

AUTH_KINDS = (AUTH_BASIC, AUTH_OIDC_CLIENT_CREDENTIALS)
LOCAL_BACKEND_NAME = "local"


class _FeedbackListener(EngineListener):
    """Engine events (round thread) queued for the algorithm's thread, which owns the feedback."""

    def __init__(self) -> None:
        self.lines: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()

    def on_log(self, line: LogLine) -> None:
        self.lines.put((line.level, line.message))

    def on_needs_sign_in(self, backend: str, reason: str) -> None:
        self.lines.put((logging.WARNING, f"{backend} needs a new sign-in: {reason}"))

    def on_backend_state(self, backend: str, state: str, detail: str) -> None:
        self.lines.put((logging.INFO, f"{backend}: {state} {detail}".rstrip()))

    def drain(self, feedback) -> None:
        while True:
            try:
                level, message = self.lines.get_nowait()
            except queue.Empty:
                return
            if level >= logging.WARNING:
                feedback.pushWarning(message)
            else:
                feedback.pushInfo(message)


class RunJobsAlgorithm(TileJobsAlgorithm):
    NAME = "run_jobs"
    DISPLAY_NAME = "Run openEO batch jobs for the tiles"
    HELP = (
        "Runs one openEO batch job per tile of a job database (from 'Create tile grid and job database') "
        "on a backend, or on the Local demo backend started in this process, and downloads each result "
        "into the output folder (job_<id>/). The process is a namespace URL (user-defined process, e.g. "
        "an APEx catalogue URL), a process id of the backend, or a process graph JSON file; parameter values "
        'are JSON, e.g. {"temporal_extent": ["2024-06-01", "2024-09-01"]}; the tile goes into the '
        "process's geometry parameter. Canceling stops the run within a second; jobs keep running on the "
        "backend unless 'Cancel remote jobs' is set. A tile whose job fails because it is too big for the "
        "backend (out of memory) is split into its 4 quarters in the same job database, which run instead "
        "(at most twice; see the advanced settings). Run again on the same job database to resume: "
        "empty fields are taken from the database's run record."
    )

    JOB_DATABASE = "JOB_DATABASE"
    LOCAL_BACKEND = "LOCAL_BACKEND"
    BACKEND_URL = "BACKEND_URL"
    AUTHCFG = "AUTHCFG"
    AUTH_KIND = "AUTH_KIND"
    NAMESPACE = "NAMESPACE"
    PROCESS_ID = "PROCESS_ID"
    PROCESS_GRAPH = "PROCESS_GRAPH"
    PARAMETERS = "PARAMETERS"
    PARALLEL_JOBS = "PARALLEL_JOBS"
    MAX_ATTEMPTS = "MAX_ATTEMPTS"
    POLL_INTERVAL = "POLL_INTERVAL"
    MAX_RUNTIME = "MAX_RUNTIME"
    CANCEL_REMOTE = "CANCEL_REMOTE"
    LOCAL_PIXEL_SIZE = "LOCAL_PIXEL_SIZE"
    LOCAL_MAX_PIXELS = "LOCAL_MAX_PIXELS"
    SPLIT_LEVELS = "SPLIT_LEVELS"
    SPLIT_PATTERNS = "SPLIT_PATTERNS"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    ACTIVE = "ACTIVE"
    ESTIMATE = "ESTIMATE"
    ESTIMATED_CREDITS = "ESTIMATED_CREDITS"
    ESTIMATED_SECONDS = "ESTIMATED_SECONDS"
    SPLIT = "SPLIT"

    def flags(self):
        return super().flags() | self.FlagCanCancel

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterFile(self.JOB_DATABASE, tr("Job database"), extension="gpkg"))
        self.addParameter(QgsProcessingParameterBoolean(self.LOCAL_BACKEND, tr("Use the Local demo backend"), False))
        self.addParameter(QgsProcessingParameterString(self.BACKEND_URL, tr("Backend URL"), optional=True))
        self.addParameter(QgsProcessingParameterAuthConfig(self.AUTHCFG, tr("Authentication"), optional=True))
        kind = QgsProcessingParameterEnum(
            self.AUTH_KIND,
            tr("The authentication configuration holds"),
            [tr("user name and password (basic)"), tr("OIDC client id and secret (client credentials)")],
            defaultValue=0,
        )
        self.addParameter(kind)
        self.addParameter(
            QgsProcessingParameterString(
                self.NAMESPACE, tr("Process namespace URL (user-defined process)"), optional=True
            )
        )
        self.addParameter(QgsProcessingParameterString(self.PROCESS_ID, tr("Process id"), optional=True))
        self.addParameter(
            QgsProcessingParameterFile(self.PROCESS_GRAPH, tr("Process graph file"), extension="json", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterString(self.PARAMETERS, tr("Parameter values (JSON)"), multiLine=True, optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(self.PARALLEL_JOBS, tr("Parallel jobs"), NUMBER_INTEGER, 2, minValue=1)
        )
        advanced = [
            QgsProcessingParameterNumber(self.MAX_ATTEMPTS, tr("Attempts per tile"), NUMBER_INTEGER, 1, minValue=1),
            QgsProcessingParameterNumber(
                self.POLL_INTERVAL,
                tr("Fewest seconds between two checks of a backend (0: 1 s on this computer, 5 s remote)"),
                NUMBER_DOUBLE,
                0.0,
                minValue=0.0,
            ),
            QgsProcessingParameterNumber(
                self.MAX_RUNTIME,
                tr("Stop after (seconds, 0: when all tiles are done)"),
                NUMBER_DOUBLE,
                0.0,
                minValue=0.0,
            ),
            QgsProcessingParameterBoolean(self.CANCEL_REMOTE, tr("Cancel remote jobs when canceled"), False),
            QgsProcessingParameterNumber(
                self.SPLIT_LEVELS,
                tr("Split a tile whose job fails for its size into 4, at most this many times (0: never)"),
                NUMBER_INTEGER,
                EngineConfig.split_levels,
                minValue=0,
            ),
            QgsProcessingParameterString(
                self.SPLIT_PATTERNS,
                tr("More error-log texts that mean a job was too big (regular expressions, one per line)"),
                multiLine=True,
                optional=True,
            ),
            QgsProcessingParameterNumber(
                self.LOCAL_PIXEL_SIZE,
                tr("Local demo backend pixel size (metres)"),
                NUMBER_DOUBLE,
                10.0,
                minValue=1.0,
            ),
            QgsProcessingParameterNumber(
                self.LOCAL_MAX_PIXELS,
                tr("Local demo backend: most pixels per job, larger jobs fail out of memory (0: no limit)"),
                NUMBER_INTEGER,
                0,
                minValue=0,
            ),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | PARAMETER_ADVANCED)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, tr("Output folder")))
        self.addOutput(QgsProcessingOutputFile(self.JOB_DATABASE, tr("Job database")))
        self.addOutput(QgsProcessingOutputFolder(self.OUTPUT_FOLDER, tr("Output folder")))
        self.addOutput(QgsProcessingOutputNumber(self.FINISHED, tr("Finished tiles")))
        self.addOutput(
            QgsProcessingOutputNumber(
                self.FAILED, tr("Failed tiles (job failed or canceled, or result not downloaded)")
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.ACTIVE, tr("Jobs still active on the backends")))
        self.addOutput(QgsProcessingOutputNumber(self.ESTIMATED_CREDITS, tr("Estimated credits (before the start)")))
        self.addOutput(
            QgsProcessingOutputNumber(self.ESTIMATED_SECONDS, tr("Estimated run time in seconds (before the start)"))
        )
        self.addOutput(QgsProcessingOutputString(self.ESTIMATE, tr("Estimate before the start, and its source")))
        self.addOutput(QgsProcessingOutputNumber(self.SPLIT, tr("Tiles split because their job was too big")))

    # -----------------------------------------------------------------------------------------
    def _spec(self, parameters, context, record: dict, local_process_url: str | None = None) -> JobSpec | None:
        """The job specification from the parameters; None to keep the run record's (a resume)."""
        namespace = self.parameterAsString(parameters, self.NAMESPACE, context).strip() or None
        process_id = self.parameterAsString(parameters, self.PROCESS_ID, context).strip() or None
        graph = self.parameterAsFile(parameters, self.PROCESS_GRAPH, context).strip() or None
        text = self.parameterAsString(parameters, self.PARAMETERS, context).strip()
        values = None
        if text:
            try:
                values = json.loads(text)
            except json.JSONDecodeError as exc:
                message = tr("The parameter values are not valid JSON: {error}").format(error=exc)
                raise QgsProcessingException(message) from exc
            if not isinstance(values, dict):
                raise QgsProcessingException(tr("The parameter values must be a JSON object."))
        if not (namespace or process_id or graph) and not record.get("job_spec") and local_process_url:
            namespace, process_id = local_process_url, "cloud_free_composite"  # the demo's process
        if not (namespace or process_id or graph):
            if values is None:
                return None  # resume: the run record's specification
            if not record.get("job_spec"):
                raise QgsProcessingException(tr("Choose a process: a namespace URL, a process id or a graph file."))
            data = dict(record["job_spec"])
            data["parameters"] = values
            return JobSpec.from_dict(data)
        return JobSpec(process_id=process_id, namespace=namespace, process_graph_file=graph, parameters=values or {})

    def _split_config(self, parameters, context) -> dict:
        """Adaptive re-tiling settings: the levels, and the default size-error texts plus the user's."""
        config: dict = {"split_levels": self.parameterAsInt(parameters, self.SPLIT_LEVELS, context)}
        text = self.parameterAsString(parameters, self.SPLIT_PATTERNS, context)
        extra = [line.strip() for line in text.splitlines() if line.strip()]
        if extra:
            config["split_log_patterns"] = [*EngineConfig.split_log_patterns, *extra]
        return config

    def processAlgorithm(self, parameters, context, feedback):
        path = self.parameterAsFile(parameters, self.JOB_DATABASE, context)
        output = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        use_local = self.parameterAsBool(parameters, self.LOCAL_BACKEND, context)
        url = self.parameterAsString(parameters, self.BACKEND_URL, context).strip()
        authcfg = self.parameterAsString(parameters, self.AUTHCFG, context).strip()
        auth_kind = AUTH_KINDS[self.parameterAsEnum(parameters, self.AUTH_KIND, context)]
        parallel = self.parameterAsInt(parameters, self.PARALLEL_JOBS, context)
        max_runtime = self.parameterAsDouble(parameters, self.MAX_RUNTIME, context)
        poll_min = self.parameterAsDouble(parameters, self.POLL_INTERVAL, context)
        cancel_remote = self.parameterAsBool(parameters, self.CANCEL_REMOTE, context)
        try:
            db = JobDB.open(path)
        except (JobDBError, OSError) as exc:
            raise QgsProcessingException(str(exc)) from exc

        local = None
        scheduler = None
        try:
            record = db.run_record()
            os.makedirs(output, exist_ok=True)
            credentials = credentials_from_authcfg(authcfg, auth_kind) if authcfg else None
            profiles = None
            if use_local:
                pixel = self.parameterAsDouble(parameters, self.LOCAL_PIXEL_SIZE, context)
                max_pixels = self.parameterAsInt(parameters, self.LOCAL_MAX_PIXELS, context)
                local = start_local_backend(
                    str(Path(output) / "local_backend"), feedback, pixel_size=pixel, max_pixels_per_job=max_pixels
                )
                profiles = [BackendProfile(name=LOCAL_BACKEND_NAME, url=local.url, parallel_jobs=parallel)]
            spec = self._spec(parameters, context, record, local.demo_process_url if local else None)
            if spec is not None:
                feedback.pushInfo(tr("Process: {id} {ns}").format(id=spec.process_id or "", ns=spec.namespace or ""))
            if url and not use_local:
                kind = auth_kind if credentials is not None else AUTH_NONE
                profiles = [BackendProfile(name="backend", url=url, auth=kind, parallel_jobs=parallel)]
            recorded = record.get("job_spec")
            checked = spec or (JobSpec.from_dict(recorded) if recorded else None)
            if checked is not None:
                known = profiles or [BackendProfile.from_dict(b) for b in record.get("backends") or []]
                refuse_untileable(checked, known, fixed_credentials(credentials))  # before any job is made
            scheduler = make_scheduler(
                db,
                spec=spec,
                profiles=profiles,
                output_dir=output,
                credentials=fixed_credentials(credentials),
                config={
                    "max_attempts": self.parameterAsInt(parameters, self.MAX_ATTEMPTS, context),
                    "poll_min": poll_min or None,
                    **self._split_config(parameters, context),
                },
            )
        except (
            JobSpecError,
            BackendConfigError,
            AuthConfigError,
            QgsProcessingException,
            ValueError,
            RuntimeError,
            OSError,
        ) as exc:
            db.close()
            if local is not None:
                local.stop()
            raise QgsProcessingException(str(exc)) from exc

        estimates = RunEstimates(path, scheduler)
        estimates.ask(feedback)
        listener = _FeedbackListener()
        scheduler.subscribe(listener)
        started = time.monotonic()
        last_counts: dict = {}

        def on_round(report) -> None:
            nonlocal last_counts
            listener.drain(feedback)
            progress = report.progress
            if progress is None or not progress.total:
                return
            estimates.on_round(progress, feedback)
            feedback.setProgress(100.0 * progress.done / progress.total)
            if progress.counts != last_counts:
                last_counts = dict(progress.counts)
                feedback.setProgressText(
                    ", ".join(f"{status}: {count}" for status, count in sorted(progress.counts.items()))
                )

        def should_stop() -> bool:
            return feedback.isCanceled() or (max_runtime > 0 and time.monotonic() - started > max_runtime)

        try:
            result = drive(
                scheduler,
                should_stop,
                interval=min(1.0, poll_min or 1.0),
                on_round=on_round,
                include_existing_results=False,
                cancel_remote_on_stop=lambda: feedback.isCanceled() and cancel_remote,
            )
            if result.remote_canceled:
                feedback.pushInfo(tr("Asked the backend to cancel {count} jobs.").format(count=result.remote_canceled))
            listener.drain(feedback)
            outcome = read_run_counts(db)
        finally:
            scheduler.unsubscribe(listener)
            db.close()
            if local is not None:
                local.stop()
        if result.outcome == OUTCOME_FAILED:
            raise QgsProcessingException(tr("The run failed: {error}").format(error=result.error))
        counts = outcome.counts
        finished = counts.get(statuses.FINISHED, 0)
        not_downloaded = outcome.failed_downloads
        failed = outcome.failed + not_downloaded
        active = outcome.with_jobs
        split_note = ""
        if outcome.split:
            split_note = tr("; {split} tiles too big for the backend were split into {children} smaller tiles").format(
                split=outcome.split, children=outcome.split_children
            )
        if not_downloaded:
            feedback.pushWarning(
                tr(
                    "{count} finished tiles have no downloaded result (their download failed); "
                    "run again on the same job database to try again."
                ).format(count=not_downloaded)
            )
        if result.outcome == OUTCOME_DONE and not failed:
            feedback.pushInfo(
                tr("Run complete: {finished} finished and downloaded{split}.").format(
                    finished=finished, split=split_note
                )
            )
        elif result.outcome == OUTCOME_DONE:
            feedback.pushWarning(
                tr(
                    "Run ended: {downloaded} finished and downloaded, {failed} failed "
                    "({jobs} jobs failed or canceled, {results} results not downloaded){split}."
                ).format(
                    split=split_note,
                    downloaded=finished - not_downloaded,
                    failed=failed,
                    jobs=outcome.failed,
                    results=not_downloaded,
                )
            )
        else:
            feedback.pushWarning(
                tr(
                    "Run stopped with {active} jobs still active on the backends and {waiting} tiles not started; "
                    "run again on the same job database to resume."
                ).format(active=active, waiting=counts.get(statuses.NOT_STARTED, 0))
            )
        return {
            self.JOB_DATABASE: path,
            self.OUTPUT_FOLDER: output,
            self.FINISHED: finished,
            self.FAILED: failed,
            self.ACTIVE: active,
            **estimates.outputs(),
            self.SPLIT: outcome.split,
        }
