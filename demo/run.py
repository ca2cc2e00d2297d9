"""The demo run: the seed workflow headless in QGIS, through the plugin's own code path.

grid (:mod:`core.grid`) -> job database (:class:`core.jobdb.JobDB`) -> tile layer, run task and
result layers (:class:`gis.run_session.RunSession` driving :func:`core.run_setup.make_scheduler`'s
scheduler in a QgsTask, exactly as the panel does) -> project, PNG, GIF and summary.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlparse

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProject,
    QgsRectangle,
    QgsReferencedRectangle,
)
from qgis.PyQt.QtCore import QEventLoop, QSize, QTimer

from ..core import statuses
from ..core.backends import BackendProfile
from ..core.downloads import DOWNLOADED
from ..core.estimate import ESTIMATE_KEY, describe
from ..core.estimate_job import request_estimate
from ..core.events import LogLine, Progress
from ..core.grid import size_range_text
from ..core.jobdb import JobDB
from ..core.jobspec import JobSpec, NotTileableError
from ..core.run_counts import read_run_counts
from ..core.run_loop import OUTCOME_DONE, OUTCOME_STOPPED, downloaded_results
from ..core.run_setup import make_scheduler, refuse_untileable
from ..gis.run_session import RESULTS_LAYERS, RunSession
from . import auth
from .area import demo_grid
from .frames import MapRecorder, compose, render_map, save_png
from .options import MODE_FRESH, MODE_RESUME, DemoOptions
from .outputs import (
    DemoPaths,
    OutputFolderError,
    estimate_line,
    estimate_summary,
    existing_run,
    folder_size,
    prepare_fresh,
    read_state,
    write_json,
)
from .progress import TerminalProgress, format_counts

LOCAL_NAME = "Local demo backend"
LOCAL_PROCESS_ID = "cloud_free_composite"
GROUP_NAME = "openEO demo run"
PNG_SIZE = 1000
#: The Local demo backend approves a device sign-in by itself after this long (``--auth oidc`` offline).
LOCAL_AUTO_APPROVE = 3.0
LOCAL_BASIC_USER = ("demo", "demo")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

ACTION_FRESH, ACTION_RESUME, ACTION_COMPLETE = "fresh", "resume", "complete"


class DemoError(RuntimeError):
    """Stops the demo with a message for the user (no traceback)."""


class _ProgressLogHandler(logging.Handler):
    """Python warnings of the plugin and the openeo client, printed without breaking the progress line."""

    #: Loggers whose lines also come as engine events (:meth:`Demo.on_log`): shown once, from there.
    AS_EVENTS = ("core.scheduler",)

    def __init__(self, progress: TerminalProgress) -> None:
        super().__init__(logging.WARNING)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.endswith(self.AS_EVENTS):
            return
        try:
            self.progress.message(f"  {record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 (logging must never raise)
            self.handleError(record)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def backend_name_for(url: str) -> str:
    return urlparse(url).hostname or url


class Demo:
    """One invocation of the demo (see :func:`demo.main`)."""

    def __init__(self, opts: DemoOptions, app: QgsApplication, repo_root: Path) -> None:
        self.opts = opts
        self.app = app
        self.repo_root = repo_root
        self.paths = DemoPaths(opts.output.resolve())
        self.progress = TerminalProgress(mode=opts.progress)
        self.local_backend: Any = None
        self.session: Optional[RunSession] = None
        self.scheduler: Any = None
        self.recorder: Optional[MapRecorder] = None
        self.counts: dict[str, int] = {}
        self.total = 0
        self.downloaded = 0
        self.not_downloaded = 0  # finished tiles whose download failed: the run is not complete
        self.outcome: Optional[str] = None
        self.run_result: Any = None
        self.run_started: Optional[float] = None
        self.run_seconds = 0.0
        self.interrupted = False
        self.stop_reason: Optional[str] = None
        self._loop: Optional[QEventLoop] = None
        self._signing_in: set[str] = set()
        self._pending_messages: list[str] = []  # from helper threads, printed by tick() on the main thread
        self._sign_in_failed = False
        self.started = time.monotonic()
        self.estimate_before: Optional[dict[str, Any]] = None  # a core.estimate.RunEstimate as a dict
        self.estimate_reason = ""

    # -- helpers -----------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.progress.message(text)

    def wait(self) -> None:
        """Keep Qt going while a helper thread works (Ctrl+C ends the wait)."""
        if self.interrupted:
            raise DemoError("interrupted.")
        self._pump()

    def _pump(self) -> None:
        self.app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)

    def in_thread(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (network) in a helper thread, processing Qt events meanwhile; re-raise its error."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 (re-raised in the calling thread)
                box["error"] = exc

        thread = threading.Thread(target=work, name="openeo-tile-jobs-demo", daemon=True)
        thread.start()
        while thread.is_alive():
            self.wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    # -- the whole run -----------------------------------------------------------------------------------
    def run(self) -> int:
        handler = _ProgressLogHandler(self.progress)
        root_logger = logging.getLogger()
        root_logger.addHandler(handler)
        previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            return self._run()
        except (DemoError, OutputFolderError, auth.SignInError) as exc:
            self.say(f"demo: {exc}")
            if self.interrupted:
                return EXIT_INTERRUPTED
            return EXIT_USAGE if isinstance(exc, OutputFolderError) else EXIT_FAILED
        finally:
            signal.signal(signal.SIGINT, previous_sigint)
            root_logger.removeHandler(handler)
            self.close()

    def _run(self) -> int:
        paths = self.paths
        action, state = self.choose_action()
        if action == ACTION_FRESH:
            prepare_fresh(paths)
            state = self.new_state()
        else:
            self.adopt_state(state)
        where = self.describe_target()
        if action == ACTION_FRESH:
            self.say(f"Starting a fresh demo run in {paths.root} ({where}).")
        elif action == ACTION_RESUME:
            before = read_run_counts(paths.database)
            done = sum(n for s, n in before.counts.items() if s in statuses.FINAL_STATUSES)
            self.say(f"Resuming the demo run in {paths.root}: {done}/{before.total} tiles done ({where}).")
        else:
            self.say(f"The demo run in {paths.root} is complete: nothing left to do. FRESH=1 runs it again.")

        if action != ACTION_COMPLETE:
            profile, spec, proxies = self.start_backend(state)
            if self.local_backend is None:  # the user's process, before any job is made: one chosen by
                try:  # country (say) cannot be tiled. (The Local demo backend's own process can.)
                    self.in_thread(lambda: refuse_untileable(spec, [profile], proxies=proxies))
                except NotTileableError as exc:
                    raise DemoError(str(exc)) from exc
            state["port"] = self.local_backend.port if self.local_backend is not None else None
            write_json(paths.state, state)
        if action == ACTION_FRESH:
            self.create_job_database()

        project = QgsProject.instance()
        self.session = RunSession(paths.database, project, name=GROUP_NAME, results_mode=RESULTS_LAYERS)
        crs = QgsCoordinateReferenceSystem(self.session.layer.crs())
        extent = QgsRectangle(self.session.layer.extent())
        extent.scale(1.04)
        self.setup_project(project, crs, extent)
        before = read_run_counts(paths.database)
        self.counts, self.total = dict(before.counts), before.total
        self.downloaded = before.downloads.get(DOWNLOADED, 0)
        self.not_downloaded = before.failed_downloads

        if action == ACTION_COMPLETE:
            with JobDB.open(paths.database) as db:
                results = downloaded_results(db)
            self.session.show_results(results)
            self.outcome = OUTCOME_DONE
        else:
            self.scheduler = self.make_scheduler(profile, spec, proxies)
            self.sign_in()
            self.ask_estimate()
            self.drive(project, crs, extent)

        self.write_outputs(project, crs, extent, action)
        return self.exit_code()

    # -- choosing what to do -----------------------------------------------------------------------------
    def choose_action(self) -> tuple[str, dict[str, Any]]:
        opts, paths = self.opts, self.paths
        existing = existing_run(paths) if paths.marker.exists() else None
        state = read_state(paths)
        if opts.mode == MODE_FRESH or existing is None:
            if opts.mode == MODE_RESUME:
                raise DemoError(f"there is no demo run to resume in {paths.root}.")
            return ACTION_FRESH, {}
        if opts.backend_url and opts.backend_url != state.get("backend_url"):
            raise DemoError(
                f"{paths.root} holds a run on {state.get('backend_url') or LOCAL_NAME}: "
                "FRESH=1 (--fresh) starts a new run on the backend you gave."
            )
        return (ACTION_RESUME if existing.unfinished else ACTION_COMPLETE), state

    def new_state(self) -> dict[str, Any]:
        o = self.opts
        return {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "backend_url": o.backend_url,
            "auth": o.auth,
            "process_url": o.process_url,
            "process_id": o.process_id,
            "parameters": o.parameters,
            "aoi": str(o.aoi) if isinstance(o.aoi, Path) else o.aoi,
            "aoi_name": o.aoi_name,
            "tile_size": o.tile_size,
            "tiles": o.tiles,
            "parallel_jobs": o.parallel_jobs,
            "pixel_size": o.pixel_size,
            "min_queue_time": o.min_queue_time,
            "min_run_time": o.min_run_time,
            "oidc_provider": o.oidc_provider,
            "oidc_client_id": o.oidc_client_id,
        }

    def adopt_state(self, state: dict[str, Any]) -> None:
        """A resumed run keeps the settings it was started with."""
        o = self.opts
        for key in (
            "aoi_name",
            "backend_url",
            "auth",
            "process_url",
            "process_id",
            "parameters",
            "tile_size",
            "parallel_jobs",
            "pixel_size",
            "min_queue_time",
            "min_run_time",
            "oidc_provider",
            "oidc_client_id",
        ):
            if key in state:
                setattr(o, key, state[key])

    def describe_target(self) -> str:
        o = self.opts
        if o.backend_url is None:
            return f"{LOCAL_NAME}, {o.pixel_size:g} m pixels, {o.parallel_jobs} parallel jobs"
        return f"{o.backend_url}, {o.parallel_jobs} parallel jobs"

    # -- backend, grid, engine ----------------------------------------------------------------------------
    def start_backend(self, state: dict[str, Any]) -> tuple[BackendProfile, JobSpec, Optional[dict[str, str]]]:
        o = self.opts
        if o.backend_url is None:
            from ..local_backend import INSTALL_HINT, LocalBackend, missing_requirements

            missing = missing_requirements()
            if missing:
                raise DemoError(f"the Local demo backend needs {', '.join(missing)}: {INSTALL_HINT}")
            config: dict[str, Any] = dict(
                workers=2,
                pixel_size=o.pixel_size,
                min_queue_time=o.min_queue_time,
                min_run_time=o.min_run_time,
                auth=o.auth,
            )
            if o.auth == "oidc":
                config["oidc_auto_approve_after"] = LOCAL_AUTO_APPROVE
            if o.local_faults:
                config["faults"] = o.local_faults
            # Same port as before on resume: its jobs name the demo process by a URL with that port.
            port = int(state.get("port") or 0)
            try:
                backend = LocalBackend(data_dir=self.paths.backend_data, port=port, **config).start()
            except OSError as exc:
                if not port:
                    raise
                self.say(f"Port {port} of the earlier run is taken ({exc}); using another one.")
                backend = LocalBackend(data_dir=self.paths.backend_data, port=0, **config).start()
            self.local_backend = backend
            if o.auth == "oidc":
                self.say(f"({LOCAL_NAME}: it approves the device sign-in by itself after {LOCAL_AUTO_APPROVE:g} s.)")
            url, name = backend.url, LOCAL_NAME
            process_url, process_id = backend.demo_process_url, LOCAL_PROCESS_ID
            proxies: Optional[dict[str, str]] = {}  # 127.0.0.1: never through a proxy
        else:
            url, name = o.backend_url, backend_name_for(o.backend_url)
            process_url, process_id = o.process_url, o.process_id
            proxies = None  # the environment's (HTTPS_PROXY, NO_PROXY...)
        profile = BackendProfile(
            name=name,
            url=url,
            auth=auth.PROFILE_AUTH[o.auth],
            parallel_jobs=o.parallel_jobs,
            oidc_provider_id=o.oidc_provider,
            oidc_client_id=o.oidc_client_id,
        )
        spec = JobSpec(process_id=process_id, namespace=process_url, parameters=dict(o.parameters or {}))
        return profile, spec, proxies

    def create_job_database(self) -> None:
        o = self.opts
        grid = demo_grid(o.aoi, o.tile_size, o.tiles, fit=o.fit)
        JobDB.create(self.paths.database, grid, run={"demo": {"tiles": o.tiles, "tile_size": o.tile_size}}).close()
        sizes = size_range_text(grid)
        self.say(f"Grid: {plural(len(grid), 'tile')}, {sizes}, in {grid.crs} -> {self.paths.database.name}")

    def make_scheduler(self, profile: BackendProfile, spec: JobSpec, proxies: Optional[dict[str, str]]) -> Any:
        o = self.opts
        oidc = None
        if o.auth == "oidc":
            oidc = self.in_thread(lambda: auth.discover_oidc(profile.url, o.oidc_provider, o.oidc_client_id, proxies))
        local_basic = LOCAL_BASIC_USER if self.local_backend is not None else None
        token_store = o.token_store and self.local_backend is None  # the Local demo backend's tokens are throwaway
        credentials, sink = auth.credentials_for(profile, token_store=token_store, oidc=oidc, local_basic=local_basic)
        return make_scheduler(
            self.paths.database,
            spec=spec,
            profiles=[profile],
            output_dir=self.paths.root,
            credentials=credentials,
            proxies=proxies,
            refresh_token_sink=sink,
        )

    def ask_estimate(self) -> None:
        """The backend's estimate before the jobs start (its job is the typical tile's); a resume shows the
        one its first start recorded."""
        recorded = self.scheduler.db.run_record().get(ESTIMATE_KEY)
        if recorded:
            self.estimate_before = recorded
            return
        try:
            outcome = self.in_thread(lambda: request_estimate(self.scheduler))
        except RuntimeError as exc:
            self.estimate_reason = str(exc)
            return
        if outcome.estimate is None:
            self.estimate_reason = outcome.reason
            self.say(f"No estimate before the start: {outcome.reason}.")
            return
        self.estimate_before = {**outcome.estimate.to_dict(), "fid": outcome.fid}
        self.scheduler.db.update_run_record({ESTIMATE_KEY: self.estimate_before})
        self.say(f"Estimate: {describe(outcome.estimate)}.")

    def sign_in(self) -> None:
        if self.opts.auth == "none":
            return
        auth.sign_in_backends(self.scheduler.backends, display=self.say, keep_waiting=self.wait)

    # -- QGIS ------------------------------------------------------------------------------------------
    def setup_project(self, project: QgsProject, crs: QgsCoordinateReferenceSystem, extent: QgsRectangle) -> None:
        project.setTitle("openEO Tile Jobs demo")
        project.setCrs(crs)
        project.setFilePathStorage(Qgis.FilePathType.Relative)
        project.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(extent, crs))

    def title(self) -> str:
        o = self.opts
        where = LOCAL_NAME if o.backend_url is None else backend_name_for(o.backend_url)
        area = f"{o.aoi_name} · " if o.aoi_name else ""
        return f"openEO Tile Jobs · {area}{self.total} tiles of {o.tile_size / 1000:g} km · {where}"

    def state_for_frame(self) -> tuple[dict[str, int], int, Optional[float]]:
        elapsed = time.monotonic() - self.run_started if self.run_started is not None else 0.0
        return dict(self.counts), self.total, elapsed

    def drive(self, project: QgsProject, crs: QgsCoordinateReferenceSystem, extent: QgsRectangle) -> None:
        session = self.session
        assert session is not None
        if self.opts.frames:
            self.recorder = MapRecorder(
                project, extent, crs, self.title(), self.state_for_frame, min_interval=self.opts.frame_interval
            )
            session.updater.repainted.connect(self.recorder.request)
            session.resultsShown.connect(self.recorder.request)
        session.progressReported.connect(self.on_progress)
        session.logLine.connect(self.on_log)
        session.needsSignIn.connect(self.on_needs_sign_in)
        session.runEnded.connect(self.on_ended)
        self._loop = QEventLoop()
        ticker = QTimer()
        ticker.setInterval(200)
        ticker.timeout.connect(self.tick)
        self.run_started = time.monotonic()
        self.progress.started = self.run_started
        if self.recorder is not None:
            self.recorder.request()  # the map before anything moved
        session.start(self.scheduler)
        ticker.start()
        self.tick()
        self._loop.exec()
        ticker.stop()
        self.run_seconds = time.monotonic() - self.run_started
        session.updater.flush()
        self.app.processEvents()
        self.refresh_counts()
        self.progress.finish(self.counts, self.total, self.downloaded, self.request_total())
        if self.recorder is not None:
            self.recorder.finish()

    # -- engine events (main thread) -----------------------------------------------------------------------
    def on_progress(self, progress: Progress) -> None:
        self.counts = dict(progress.counts)
        self.total = progress.total
        self.downloaded = progress.downloads.get(DOWNLOADED, 0)
        self.tick()

    def on_log(self, line: LogLine) -> None:
        if line.backend and "needs_sign_in" in line.message and not self._needs_sign_in(line.backend):
            return  # reported late (the engine queues backend states): signed in since
        if line.level >= logging.WARNING:
            tile = line.tile_id
            where = f"tile {tile}: " if tile is not None and str(tile) not in line.message else ""
            self.say(f"  {logging.getLevelName(line.level).lower()}: {where}{line.message}")

    def _needs_sign_in(self, name: str) -> bool:
        backend = self.scheduler.backends.get(name) if self.scheduler is not None else None
        return backend is not None and backend.needs_sign_in

    def on_needs_sign_in(self, name: str, reason: str) -> None:
        """OIDC: the device flow again, in a helper thread (the backend's tiles wait meanwhile); else stop."""
        if not self._needs_sign_in(name) or name in self._signing_in:
            return  # an event from before the sign-in, or a sign-in already under way
        backend = self.scheduler.backends.get(name)
        if backend.profile.auth == auth.AUTH_OIDC_DEVICE:
            self._signing_in.add(name)

            def work() -> None:
                try:
                    self._pending_messages.append(f"{name} needs you to sign in again ({reason}):")
                    backend.sign_in(display=self._pending_messages.append, max_poll_time=600)
                    self._pending_messages.append(f"{name}: signed in, the run goes on.")
                except Exception as exc:  # noqa: BLE001 (shown; the run is stopped)
                    self._pending_messages.append(f"{name}: sign-in failed: {exc}")
                    self._sign_in_failed = True
                finally:
                    self._signing_in.discard(name)

            threading.Thread(target=work, name="openeo-tile-jobs-demo-sign-in", daemon=True).start()
            return
        self.stop_reason = f"{name} needs you to sign in again ({reason}); run the same command again to resume."
        self.say(self.stop_reason)
        if self.session is not None:
            self.session.cancel()

    def on_ended(self, outcome: str, result: Any) -> None:
        self.outcome, self.run_result = outcome, result
        if self._loop is not None:
            self._loop.quit()

    def _on_sigint(self, *_args: Any) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True

    def tick(self) -> None:
        while self._pending_messages:
            self.say(self._pending_messages.pop(0))
        if self._sign_in_failed and self.session is not None and self.session.running and self.stop_reason is None:
            self.stop_reason = "Sign-in failed: run the same command again to resume."
            self.session.cancel()
        if self.interrupted and self.session is not None and self.session.running and self.stop_reason is None:
            self.stop_reason = "Interrupted: jobs keep their state; `make demo` resumes the run."
            self.say(self.stop_reason)
            self.session.cancel()
        self.progress.update(self.counts, self.total, self.downloaded, self.request_total())

    def refresh_counts(self) -> None:
        state = read_run_counts(self.paths.database)
        self.counts, self.total = dict(state.counts), state.total
        self.downloaded = state.downloads.get(DOWNLOADED, 0)
        self.not_downloaded = state.failed_downloads

    def request_counts(self) -> dict[str, int]:
        if self.local_backend is not None and self.local_backend.running:
            return self.local_backend.request_counts()
        return {}

    def request_total(self) -> Optional[int]:
        if self.local_backend is not None and self.local_backend.running:
            return sum(self.local_backend.request_counts().values())
        if self.scheduler is not None:
            return sum(b.request_count for b in self.scheduler.backends)
        return None

    # -- outputs ---------------------------------------------------------------------------------------
    def write_outputs(
        self, project: QgsProject, crs: QgsCoordinateReferenceSystem, extent: QgsRectangle, action: str
    ) -> None:
        paths = self.paths
        self.refresh_counts()
        if not project.write(str(paths.project)):
            raise DemoError(f"cannot write {paths.project}: {project.error()}")
        image = render_map(project.layerTreeRoot().checkedLayers(), extent, crs, QSize(PNG_SIZE, PNG_SIZE))
        elapsed = self.run_seconds if action != ACTION_COMPLETE else None
        save_png(compose(image, self.title(), self.counts, self.total, elapsed), paths.png)
        frames = 0
        if self.recorder is not None and len(self.recorder.frames) >= 2:
            frames = self.recorder.write_gif(paths.gif)
        summary = self.summary(action, frames)
        write_json(paths.summary, summary)
        self.print_summary(summary)

    def summary(self, action: str, frames: int) -> dict[str, Any]:
        files, size = folder_size(self.paths.job_dirs())
        requests = self.request_counts()
        return {
            "action": action,
            "outcome": self.outcome,
            "backend": self.opts.backend_url or LOCAL_NAME,
            "tiles": dict(self.counts),
            "total": self.total,
            "downloaded": self.downloaded,
            "not_downloaded": self.not_downloaded,
            "complete": self.complete(),
            "result_files": files,
            "result_bytes": size,
            "wall_seconds": round(time.monotonic() - self.started, 1),
            "run_seconds": round(self.run_seconds, 1),
            "http_requests": self.request_total() or 0,
            "http_requests_by_endpoint": requests,
            "http_requests_counted_by": "backend" if self.local_backend is not None else "client, without downloads",
            "gif_frames": frames,
            "estimate": estimate_summary(
                self.estimate_before, self.estimate_reason, self.final_costs(), self.run_seconds
            ),
            "pixel_size": self.opts.pixel_size if self.opts.backend_url is None else None,
            "outputs": {
                "project": self.paths.project.name,
                "png": self.paths.png.name,
                "gif": self.paths.gif.name if self.paths.gif.exists() else None,
                "job_database": self.paths.database.name,
            },
        }

    def print_summary(self, s: dict[str, Any]) -> None:
        root = self.paths.root
        try:
            shown_root = root.relative_to(Path.cwd())
        except ValueError:
            shown_root = root
        kind = {ACTION_FRESH: "fresh run", ACTION_RESUME: "resumed run", ACTION_COMPLETE: "nothing left to do"}
        lines = ["", f"Summary ({kind[s['action']]})"]
        lines.append(f"  tiles          {format_counts(s['tiles'])} (of {s['total']})")
        wall = f"{s['wall_seconds']:.1f} s"
        if s["action"] != ACTION_COMPLETE:
            wall += f" (the run itself {s['run_seconds']:.1f} s)"
        lines.append(f"  wall time      {wall}")
        if s["action"] != ACTION_COMPLETE:
            lines.append(f"  estimate       {estimate_line(s['estimate'])}")
        if s["action"] == ACTION_COMPLETE:
            lines.append("  HTTP requests  none (nothing left to do)")
        elif self.local_backend is not None:
            by = sorted(s["http_requests_by_endpoint"].items(), key=lambda kv: (-kv[1], kv[0]))
            detail = ", ".join(f"{k} {v}" for k, v in by)
            head = f"  HTTP requests  {s['http_requests']} received by the {LOCAL_NAME}"
            lines.append(head + (f": {detail}" if detail else ""))
        else:
            lines.append(f"  HTTP requests  {s['http_requests']} sent by the engine (downloads not counted)")
        lines.append(
            f"  results        {plural(s['downloaded'], 'tile')} downloaded: {plural(s['result_files'], 'file')}, "
            f"{s['result_bytes'] / 1e6:.1f} MB in {shown_root}/job_*/"
        )
        outputs = [f"{s['outputs']['project']} (QGIS project)", s["outputs"]["png"]]
        if s["outputs"]["gif"]:
            outputs.append(f"{s['outputs']['gif']}" + (f" ({s['gif_frames']} frames)" if s["gif_frames"] else ""))
        outputs.append(f"{s['outputs']['job_database']} (job database)")
        lines.append(f"  outputs        {shown_root}/: " + ", ".join(outputs))
        if self.outcome == OUTCOME_STOPPED:
            lines.append("  next           `make demo` resumes the run")
        else:
            lines.append("  next           `make demo GUI=1` opens it in QGIS; `make demo FRESH=1` runs it again")
        if s["not_downloaded"]:
            lines.append(
                f"  NOT COMPLETE   {plural(s['not_downloaded'], 'finished tile')} without a downloaded result "
                "(the download failed; the log above says why): `make demo` tries them again"
            )
        failed = sum(s["tiles"].get(x, 0) for x in statuses.FAILED_STATUSES)
        if failed:
            lines.append(f"  note           {failed} tile(s) failed: their logs are in {shown_root}/job_*/errors.json")
        for line in lines:
            self.say(line)

    def final_costs(self) -> Optional[float]:
        with JobDB.open(self.paths.database) as db:
            return db.sum_costs()[0]

    def complete(self) -> bool:
        """The run is over and every finished tile's result is on disk."""
        return self.outcome == OUTCOME_DONE and not self.not_downloaded

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.complete():
            return EXIT_OK
        return EXIT_FAILED

    # -- end -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the engine and the backend, drop the layers (none may outlive QGIS)."""
        if self.session is not None and self.session.running:
            self.session.cancel()
            deadline = time.monotonic() + 5
            while self.session.running and time.monotonic() < deadline:
                self._pump()
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler.db.close()
        QgsProject.instance().clear()
        if self.session is not None:
            self.session.deleteLater()
            self.session = None
        self.app.processEvents()
        if self.local_backend is not None:
            self.local_backend.stop()
            self.local_backend = None
