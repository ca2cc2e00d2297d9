"""The analyst's whole journey in the real QGIS desktop program (not offscreen): ``make test-desktop``.

QGIS runs under Xvfb with openbox as window manager, the plugin enabled in a temporary profile,
and ``driver.py`` drives it from inside (the panel's own actions and widgets, QTest clicks and
keys). Two QGIS starts: the first draws the area, makes the grid, adds the Local demo backend,
picks the demo process, starts, watches the rendered map, presses F5, saves and quits during the
run; the second opens the saved project, takes the resume offer and finishes the run. Meanwhile
this process reads the same run file as a second QGIS would. Screenshots: ``build/desktop/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHOTS = REPO / "build" / "desktop"
#: The run's files. QGIS treats files under its temporary folder as temporary layers and asks before
#: closing; the QGIS started here gets a folder of its own (TMPDIR), so a checkout under /tmp works too.
WORK = REPO / "build" / "desktop-work"
VENV_SITE = next((REPO / ".venv" / "lib").glob("python3*/site-packages"), None)
PHASE_TIMEOUT_S = 240
STARTUP_TIMEOUT_S = 120  # QGIS starts and the driver writes its first result
#: Main-thread lateness allowed during a run (a 20 ms heartbeat timer inside QGIS).
MAX_LATENESS_MS = 100

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(not shutil.which("qgis") or not shutil.which("Xvfb"), reason="needs qgis and Xvfb"),
]


@pytest.fixture(scope="module")
def display():
    """A fresh X display (Xvfb picks a free number) with openbox managing its windows."""
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    number = xvfb.stdout.readline().decode().strip()
    name = f":{number}"
    wm = subprocess.Popen(
        ["openbox"], env={**os.environ, "DISPLAY": name}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)
    yield name
    for process in (wm, xvfb):
        process.terminate()
        process.wait(10)


def qgis_profile(root: Path) -> Path:
    """A QGIS settings folder with only this checkout's plugin, enabled."""
    config = root / "qgis-config"
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "openeo_tile_jobs").symlink_to(REPO, target_is_directory=True)
    ini = config / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\nopeneo_tile_jobs=true\n\n[qgis]\ncheckVersion=false\n", encoding="utf-8")
    return config


def start_qgis(display: str, root: Path, phase: str, project: Path | None = None) -> tuple[subprocess.Popen, Path]:
    result = root / f"{phase}.json"
    config = root / f"{phase}-config.json"
    config.write_text(
        json.dumps(
            {
                "phase": phase,
                "here": str(HERE),
                "workdir": str(WORK),
                "shots": str(SHOTS),
                "result": str(result),
            }
        ),
        encoding="utf-8",
    )
    runtime = root / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    qgis_tmp = root / "qgis-tmp"
    qgis_tmp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(
        DISPLAY=display,
        QGIS_CUSTOM_CONFIG_PATH=str(root / "qgis-config"),
        HOME=str(root / "home"),
        XDG_RUNTIME_DIR=str(runtime),
        TMPDIR=str(qgis_tmp),
        PYTHONPATH=os.pathsep.join(p for p in (str(VENV_SITE or ""), env.get("PYTHONPATH", "")) if p),
        OTJ_DESKTOP_CONFIG=str(config),
    )
    args = ["qgis", "--nologo", "--noversioncheck", "--code", str(HERE / "driver.py")]
    if project is not None:
        args += ["--project", str(project)]
    log = open(root / f"{phase}-qgis.log", "wb")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return process, result


def wait_for(process: subprocess.Popen, result: Path, timeout: float, every=None) -> float:
    """Wait for QGIS to exit (calling ``every()`` meanwhile); returns when it exited (epoch)."""
    start = time.monotonic()
    while process.poll() is None:
        waited = time.monotonic() - start
        if waited > timeout or (waited > STARTUP_TIMEOUT_S and not result.is_file()):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log = result.with_name(result.stem + "-qgis.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"QGIS did not finish (driver result: {result.is_file()}) within {waited:.0f} s:\n{log}")
        if every is not None:
            every()
        time.sleep(0.3)
    return time.time()


def kill_group(process: subprocess.Popen) -> None:
    """End QGIS and whatever it started (a Local demo backend left behind by a crash)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def read_result(path: Path, log: Path) -> dict:
    assert path.is_file(), f"the driver wrote nothing; QGIS said:\n{log.read_text(errors='replace')[-3000:]}"
    result = json.loads(path.read_text(encoding="utf-8"))
    assert not result.get("error"), result["error"] + "\n" + log.read_text(errors="replace")[-3000:]
    assert not result["python_errors"], result["python_errors"]
    return result


def lateness_line(phase: str, late: list[float]) -> str:
    late = sorted(late)
    p99 = late[int(len(late) * 0.99)] if late else 0.0
    return f"{phase}: main-thread lateness max {max(late, default=0):.0f} ms, p99 {p99:.0f} ms over {len(late)} ticks"


class SecondReader:
    """This process as a second QGIS (with the plugin) showing the run file's tile layer, read again and again.

    A QGIS without the plugin does not hold the WAL: when it closes the file it switches it to a
    rollback journal (QGIS does that to every local GeoPackage), which the engine then uses as is.
    """

    def __init__(self, path: Path) -> None:
        from qgis.core import QgsProject

        from openeo_tile_jobs.gis.tile_layer import open_tile_layer, watch_project

        self.unwatch = watch_project()  # what the plugin does in QGIS
        self.layer = open_tile_layer(path, "second")
        QgsProject.instance().addMapLayer(self.layer)
        self.seen: list[dict[str, str]] = []

    def close(self) -> None:
        from qgis.core import QgsProject

        QgsProject.instance().removeMapLayer(self.layer.id())
        self.unwatch()

    def read(self) -> None:
        statuses = {f["tile_id"]: f["status"] for f in self.layer.getFeatures()}
        if not self.seen or self.seen[-1] != statuses:
            self.seen.append(statuses)


@pytest.mark.timeout(600)
def test_the_analysts_journey_in_the_qgis_desktop(display, tmp_path, qgis_app, request) -> None:
    from osgeo import gdal

    started = time.monotonic()
    for folder in (SHOTS, WORK):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    (tmp_path / "home").mkdir()
    qgis_profile(tmp_path)
    figures = []

    # -- first QGIS: set up, start, watch, F5, save, quit during the run -----------------------
    qgis, result_path = start_qgis(display, tmp_path, "first")
    request.addfinalizer(lambda: kill_group(qgis))
    exited = wait_for(qgis, result_path, PHASE_TIMEOUT_S)
    log = tmp_path / "first-qgis.log"
    first = read_result(result_path, log)
    assert first["ok"], first
    steps = [s["step"] for s in first["steps"]]
    assert steps == ["area", "grid", "backends", "process", "running", "f5_mid_run", "saved"]
    tiles = next(s["tiles"] for s in first["steps"] if s["step"] == "grid")
    assert tiles == 4
    assert next(s["preset"] for s in first["steps"] if s["step"] == "backends") == "local"
    assert first["backend"]["own_process"], first["backend"]["note"]
    # the rendered map: every tile drawn not started, then a job's tile queued/running
    colours = first["colours_seen"]
    assert all(seen[0] == "not_started" for seen in colours.values()), colours
    assert any("running" in seen for seen in colours.values()), colours
    # quit during the run: no "Task failed", QGIS gone on the first Ctrl+Q, the backend's process too
    assert not any("failed" in m.lower() for m in first["messages"]), first["messages"]
    assert not first.get("quit_blocked")
    assert qgis.returncode == 0
    assert first["run_outcome"] == "stopped" and first["run_ended"] - first["quit_requested"] < 1.5
    assert first["exit_triggered"] - first["run_ended"] < 1  # the guard asked QGIS to quit again itself
    assert exited - first["quit_requested"] < 15, "QGIS took too long to quit"
    with pytest.raises(ProcessLookupError):
        os.kill(first["backend"]["pid"], 0)
    figures.append(lateness_line("first run", first["lateness_ms"]))
    assert max(first["lateness_ms"]) <= MAX_LATENESS_MS, figures[-1]

    # -- second QGIS on the saved project: the resume offer, the run finishes ------------------
    run_file = WORK / "antwerp.gpkg"
    errors: list[str] = []
    gdal.PushErrorHandler(lambda cls, _no, msg: errors.append(msg) if cls >= gdal.CE_Warning else None)
    reader: list[SecondReader] = []

    def second_qgis_reads() -> None:
        if not reader and result_path.is_file() and '"step": "f5_after"' in result_path.read_text(encoding="utf-8"):
            reader.append(SecondReader(run_file))  # while the desktop QGIS still shows the run
        if reader:
            reader[0].read()

    qgis, result_path = start_qgis(display, tmp_path, "resume", project=WORK / "journey.qgz")
    request.addfinalizer(lambda: kill_group(qgis))
    wait_for(qgis, result_path, PHASE_TIMEOUT_S, every=second_qgis_reads)
    reader[0].read()
    reader[0].close()
    gdal.PopErrorHandler()
    resume = read_result(result_path, tmp_path / "resume-qgis.log")
    assert resume["ok"], resume
    assert resume["outcome"] == "done"
    assert set(resume["final_classes"].values()) == {"result"}, resume["final_classes"]
    assert all(seen[-1] == "result" for seen in resume["colours_seen"].values()), resume["colours_seen"]
    # no job created twice: the backend has one job per tile, each title naming its own tile
    titles = sorted(job["title"].split(" [")[0] for job in resume["jobs"])
    assert len(resume["jobs"]) == tiles, resume["jobs"]
    assert len(set(titles)) == tiles, titles
    # the second QGIS read the finished run while the first still had it open, with no read error
    assert reader and set(reader[0].seen[-1].values()) == {"finished"}, reader and reader[0].seen
    assert errors == []
    # the run file stayed a WAL database with its -wal all along: QGIS never read it lock-free or IMMUTABLE
    for phase in (first, resume):
        held = [s["file"] for s in phase["steps"] if s["file"]]
        assert all(f["mode"] == "wal" and f"{run_file.name}-wal" in f["files"] for f in held), held
    figures.append(lateness_line("resumed run", resume["lateness_ms"]))
    assert max(resume["lateness_ms"]) <= MAX_LATENESS_MS, figures[-1]
    figures.append(f"desktop journey: {time.monotonic() - started:.0f} s, screenshots in {SHOTS}")
    print("\n" + "\n".join(figures), file=sys.stderr)
    (SHOTS / "figures.txt").write_text("\n".join(figures) + "\n", encoding="utf-8")
