"""The analyst's journey, driven from inside the real QGIS desktop: ``qgis --code driver.py``.

Two phases, one QGIS start each (``OTJ_DESKTOP_CONFIG`` names a JSON file with ``phase``,
``workdir``, ``shots`` and ``result``):

* ``first``: draw the AOI with the panel's rectangle tool, create the grid, add the Local demo
  backend with its preset, pick the demo process, Start, watch the tiles change colour on the
  rendered canvas, F5 mid-run, save the project, quit (Ctrl+Q) while the run goes on;
* ``resume``: QGIS was started on the saved project; take the resume offer, watch the run
  finish, F5 after, and count the backend's jobs.

Everything is done through the plugin's own actions and widgets, with QTest for clicks and keys;
each step waits with a timer, so QGIS's event loop runs all along. Results go to the ``result``
JSON (read by ``test_desktop_journey.py``), screenshots to ``shots``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import urllib.request
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QPoint, Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication, QPushButton
from qgis.utils import iface, plugins

CONFIG = json.loads(Path(os.environ["OTJ_DESKTOP_CONFIG"]).read_text(encoding="utf-8"))
sys.path.insert(0, CONFIG["here"])  # QGIS runs this file with exec(): no __file__
import canvas as tile_canvas  # noqa: E402
from harness import Heartbeat, Journey, StallSampler, sleep, until  # noqa: E402

WORK = Path(CONFIG["workdir"])
SHOTS = Path(CONFIG["shots"])
RUN_FILE = WORK / "antwerp.gpkg"
PROJECT_FILE = WORK / "journey.qgz"
CENTRE = (600_000.0, 5_670_000.0)  # EPSG:32631, Antwerp
METRES_PER_PIXEL = 50.0
BACKEND_OPTIONS = {"auth": "none", "pixel_size": 200.0, "min_queue_time": 1.0, "min_run_time": 6.0}

RESULT: dict = {"phase": CONFIG["phase"], "steps": [], "messages": [], "python_errors": [], "ok": False}


def save_result() -> None:
    Path(CONFIG["result"]).write_text(json.dumps(RESULT, indent=1, default=str), encoding="utf-8")


def shot(name: str) -> None:
    HEARTBEAT.pause()
    QApplication.primaryScreen().grabWindow(0).save(str(SHOTS / f"{CONFIG['phase']}_{name}.png"))


def file_state() -> dict:
    """The run file's journal mode and the POSIX locks on it (which process holds what)."""
    if not RUN_FILE.exists():
        return {}
    inodes = {os.stat(p).st_ino: p.name for p in RUN_FILE.parent.glob(RUN_FILE.name + "*")}

    def who(pid: str) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        except OSError:
            return "?"

    locks = [
        f"{inodes[int(line.split()[5].rsplit(':', 1)[1])]} {line} {who(line.split()[4])}"
        for line in Path("/proc/locks").read_text().splitlines()
        if int(line.split()[5].rsplit(":", 1)[1]) in inodes
    ]
    conn = sqlite3.connect(f"file:{RUN_FILE}?mode=ro", uri=True, timeout=0)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    except sqlite3.Error as exc:
        mode = f"unreadable: {exc}"
    conn.close()
    names = sorted(p.name for p in RUN_FILE.parent.glob(RUN_FILE.name + "*"))
    from openeo_tile_jobs.gis.tile_layer import held_files

    return {"mode": mode, "locks": locks, "files": names, "held": held_files(), "inode": os.stat(RUN_FILE).st_ino}


def step(name: str, **facts) -> None:
    HEARTBEAT.pause()  # the test's own bookkeeping (file state, screenshot) is not the plugin's work
    RESULT["steps"].append({"step": name, "t": round(time.monotonic() - STARTED, 2), "file": file_state(), **facts})
    RESULT["lateness_peaks"] = HEARTBEAT.peaks
    shot(f"{len(RESULT['steps']):02d}_{name}")
    save_result()


# -- helpers on the plugin's panel -------------------------------------------------------------
def dock():
    return plugins["openeo_tile_jobs"].dock


def controller():
    return dock().run_controller


def tile_centres() -> dict[str, tuple[float, float]]:
    layer = controller().tile_layer
    return {f["tile_id"]: tuple(f.geometry().centroid().asPoint()) for f in layer.getFeatures()}


def db_statuses() -> dict[str, str]:
    """The statuses in the run file, read through a connection of the driver's own (never the panel's)."""
    HEARTBEAT.pause()  # the test's own reading, not the plugin's work
    conn = sqlite3.connect(f"file:{RUN_FILE}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT tile_id, status FROM tiles").fetchall())
    finally:
        conn.close()


def grab_classes() -> dict[str, str]:
    """The tiles' colours on the canvas; the grab is the test's own work, not counted as lateness."""
    HEARTBEAT.pause()
    return tile_canvas.tile_classes(iface.mapCanvas(), CENTRES)


def map_matches_database() -> bool:
    """The rendered canvas shows every tile in its database status (read before and after the grab)."""
    before = db_statuses()
    classes = grab_classes()
    after = db_statuses()
    stable = {t: s for t, s in after.items() if before.get(t) == s}
    wrong = tile_canvas.mismatches(classes, stable)
    RESULT["last_mismatch"] = wrong
    return not wrong


class Watch:
    """Samples the tiles' colours on the rendered canvas every 250 ms: each tile's sequence of colours."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = RESULT.setdefault("colours_seen", {})
        self.timer = QTimer()
        self.timer.setInterval(250)
        self.timer.timeout.connect(self.sample)
        self.timer.start()

    def sample(self) -> None:
        truth = RESULT.setdefault("statuses_seen", [])
        now = db_statuses()
        if not truth or truth[-1][1] != now:
            truth.append((round(time.monotonic() - STARTED, 2), now))
        for tile, shown in grab_classes().items():
            colours = self.seen.setdefault(tile, [])
            if not colours or colours[-1] != shown:
                colours.append(shown)


def press_f5() -> int:
    """F5 on the main window, as the user presses it; returns the canvas's render count before."""
    before = RENDERS[0]
    HEARTBEAT.pause()  # QGIS's own reload of every layer, on the user's request
    QTest.keyClick(iface.mainWindow(), Qt.Key.Key_F5)
    return before


def f5_then_map_true(what: str):
    """Press F5, wait for the canvas to render again, then for every tile to show its status."""
    renders = press_f5()
    yield until(lambda: RENDERS[0] > renders, 10, "the refresh after F5")
    yield until(map_matches_database, 5, what)


def fetch_jobs(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/jobs?limit=1000", timeout=10) as response:
        return json.loads(response.read())["jobs"]


def log_message(message: str, tag: str, level) -> None:
    if tag == "Messages":  # what the message bar showed
        RESULT["messages"].append(message)
    elif "python" in tag.lower() and "error" in tag.lower():
        RESULT["python_errors"].append(message)
        save_result()
    elif level >= Qgis.MessageLevel.Warning:
        RESULT.setdefault("warnings", []).append(f"{tag}: {message}")


# -- the journey ------------------------------------------------------------------------------
def common_setup():
    yield until(lambda: "openeo_tile_jobs" in plugins and dock() is not None, 60, "the plugin")
    from openeo_tile_jobs.ui import local_demo

    local_demo.OPTIONS.update(BACKEND_OPTIONS)  # fast tiles that stay queued/running long enough to watch
    iface.mainWindow().showMaximized()
    QgsApplication.messageLog().messageReceived.connect(log_message)
    iface.mapCanvas().mapCanvasRefreshed.connect(lambda: RENDERS.__setitem__(0, RENDERS[0] + 1))
    yield sleep(1.0)


def first_phase():
    yield from common_setup()
    iface.newProject(False)
    canvas = iface.mapCanvas()
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    yield sleep(0.5)
    size = canvas.mapSettings().outputSize()
    half_w, half_h = size.width() * METRES_PER_PIXEL / 2, size.height() * METRES_PER_PIXEL / 2
    canvas.setExtent(QgsRectangle(CENTRE[0] - half_w, CENTRE[1] - half_h, CENTRE[0] + half_w, CENTRE[1] + half_h))
    canvas.refresh()
    panel = dock()
    panel.show()
    yield sleep(1.0)

    # 1. Area: the rectangle tool, a 10 km x 10 km drag on the map
    panel.aoi_controller.rectangle_action.trigger()
    viewport = canvas.viewport()
    middle = QPoint(viewport.width() // 2, viewport.height() // 2)
    corner, opposite = middle - QPoint(100, 100), middle + QPoint(100, 100)
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, corner)
    QTest.mouseMove(viewport, middle)
    QTest.mouseMove(viewport, opposite)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, opposite)
    yield until(lambda: panel.aoi_controller.aoi is not None, 10, "the AOI")
    step("area", aoi=panel.aoi_controller.aoi.wkt())

    # 2. Grid: 5 km tiles (2 x 2), the job database
    grid = panel.grid_page
    panel.show_step(1)
    grid.tile_size.setValue(5000)
    grid.database.setFilePath(str(RUN_FILE))
    yield until(lambda: grid.preview_grid is not None and grid.preview_grid.tile_size == 5000, 20, "the preview")
    QTest.mouseClick(grid.create_button, Qt.MouseButton.LeftButton)
    yield until(lambda: controller().tile_layer is not None, 30, "the tile layer")
    global CENTRES
    CENTRES = tile_centres()
    yield until(map_matches_database, 10, "the grid drawn on the map")
    step("grid", tiles=len(CENTRES))

    # 3. Backends: the Local demo preset (its backend starts in its own process); no sign-in
    page = panel.backends_page
    panel.show_step(2)
    QTest.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    page.preset.setCurrentIndex(page.preset.findData("local"))
    yield until(lambda: page.url.text().startswith("http://127.0.0.1:"), 60, "the Local demo backend")
    page.auth.setCurrentIndex(page.auth.findData("none"))
    QTest.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    yield until(lambda: [p.name for p in page.profiles] == ["Local demo"], 5, "the saved backend")
    from openeo_tile_jobs.ui import local_demo

    backend = local_demo.running_backend()
    RESULT["backend"] = {"url": backend.url, "own_process": hasattr(backend, "process"), "note": local_demo.note}
    RESULT["backend"]["pid"] = backend.process.pid if hasattr(backend, "process") else None
    step("backends", preset=page.profiles[0].preset)

    # 4. Process: the demo process
    process = panel.process_page
    panel.show_step(3)
    QTest.mouseClick(process.demo_button, Qt.MouseButton.LeftButton)
    yield until(lambda: process.resolved is not None, 30, "the demo process")
    step("process", process=process.resolved.process_id)

    # 5. Run: Start, and watch the colours on the rendered map
    run = panel.run_page
    panel.show_step(4)
    run.output.setFilePath(str(WORK / "antwerp_results"))
    QTest.mouseClick(run.start_button, Qt.MouseButton.LeftButton)
    HEARTBEAT.measuring = True  # during the run: from when Start's click has been handled
    yield until(lambda: controller().running, 10, "the run to start")
    WATCH.append(Watch())
    yield until(lambda: "running" in db_statuses().values(), 60, "a running job")
    yield until(map_matches_database, 5, "the running tile on the map")
    step("running", statuses=db_statuses())

    # F5 mid-run: QGIS reopens the layer's data; the map must still be true
    yield from f5_then_map_true("the map after F5 mid-run")
    step("f5_mid_run", statuses=db_statuses())

    # save the project, then quit with Ctrl+Q while the run goes on
    yield until(map_matches_database, 5, "the map before saving")
    QgsProject.instance().setFileName(str(PROJECT_FILE))
    HEARTBEAT.pause()
    iface.actionSaveProject().trigger()
    yield until(lambda: PROJECT_FILE.is_file() and not QgsProject.instance().isDirty(), 10, "the saved project")
    left = [t for t, s in db_statuses().items() if s != "finished"]
    step("saved", unfinished=left)
    assert controller().running and left, "the run ended before the quit: make the jobs slower"
    RESULT["lateness_ms"] = sorted(HEARTBEAT.late_ms)
    RESULT["lateness_peaks"] = HEARTBEAT.peaks
    controller().runFinished.connect(lambda outcome: RESULT.update(run_ended=time.time(), run_outcome=outcome))
    iface.actionExit().triggered.connect(lambda: RESULT.update(exit_triggered=time.time()))
    HEARTBEAT.measuring = False
    RESULT["quit_requested"] = time.time()
    RESULT["ok"] = True
    save_result()
    QTest.keyClick(iface.mainWindow(), Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    QTimer.singleShot(15_000, lambda: (shot("quit_blocked"), RESULT.update(quit_blocked=True), save_result()))


def resume_phase():
    yield from common_setup()
    yield until(lambda: QgsProject.instance().fileName() == str(PROJECT_FILE), 30, "the project")
    panel = dock()
    # the offer in the message bar: "This project has an unfinished run" [Resume]
    bar = iface.messageBar()

    def resume_button():
        for item in bar.items():
            for button in item.findChildren(QPushButton):
                if button.text() == "Resume":
                    return button
        return None

    yield until(lambda: resume_button() is not None, 20, "the resume offer")
    step("offer", runs=[panel.run_page.runs.itemText(i) for i in range(panel.run_page.runs.count())])
    QTest.mouseClick(resume_button(), Qt.MouseButton.LeftButton)
    yield until(lambda: controller().running, 60, "the resumed run")
    HEARTBEAT.measuring = True  # during the run (as in the first phase: after Start's own work)
    global CENTRES
    CENTRES = tile_centres()
    WATCH.append(Watch())
    yield until(map_matches_database, 10, "the resumed run on the map")
    step("resumed", statuses=db_statuses())
    yield from f5_then_map_true("the map after F5 mid-run")
    step("f5_mid_run", statuses=db_statuses())
    yield until(lambda: controller().last_outcome is not None, 180, "the end of the run")
    HEARTBEAT.measuring = False
    RESULT["outcome"] = controller().last_outcome
    yield until(map_matches_database, 10, "the finished run on the map")
    step("done", statuses=db_statuses())
    yield from f5_then_map_true("the map after F5 after the run")
    RESULT["final_classes"] = grab_classes()
    step("f5_after")
    from openeo_tile_jobs.ui import local_demo

    RESULT["backend"] = {"url": local_demo.running_url()}
    RESULT["jobs"] = [{"id": j["id"], "title": j.get("title")} for j in fetch_jobs(local_demo.running_url())]
    RESULT["lateness_ms"] = sorted(HEARTBEAT.late_ms)
    RESULT["ok"] = True
    save_result()
    yield sleep(3.0)  # a second QGIS (the test) reads the run file meanwhile
    QgsProject.instance().write()
    iface.actionExit().trigger()


STARTED = time.monotonic()
CENTRES: dict[str, tuple[float, float]] = {}
RENDERS = [0]
WATCH: list = []
HEARTBEAT = Heartbeat(STARTED)
SAMPLER = StallSampler(HEARTBEAT, RESULT.__setitem__, file_state)
SHOTS.mkdir(parents=True, exist_ok=True)
save_result()
QgsApplication.instance().aboutToQuit.connect(lambda: (RESULT.update(quit_at=time.time()), save_result()))


def failed(error: str) -> None:
    RESULT["error"] = error
    shot("failure")
    save_result()
    QTimer.singleShot(500, lambda: os._exit(3))  # the test reads the result and ends the process group


JOURNEY = Journey(first_phase if CONFIG["phase"] == "first" else resume_phase, failed)
