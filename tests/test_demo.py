"""`make demo`, reduced to 4 tiles: the real command in a child process (real headless QGIS, the
Local demo backend over real HTTP), then its outputs checked the way a user would look at them:
the project opens (moved elsewhere) with a styled tile layer and valid result layers, the PNG
shows a map, the GIF animates, the job database has every tile finished, the summary adds up.
Then Ctrl+C in the middle of a run, and `make demo` again resumes it without creating a job twice.
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

import numpy as np
import pytest
from PIL import Image
from qgis.core import QgsCategorizedSymbolRenderer, QgsMultiBandColorRenderer, QgsProject, QgsRasterLayer

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.jobdb import JobDB

REPO = Path(__file__).resolve().parent.parent
TILES = 4
CAPTION_FRACTION = 0.85  # the map is the top of every picture; the caption strip is below


def demo_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        QT_QPA_PLATFORM="offscreen",
        PYTHONUNBUFFERED="1",
    )
    env.pop("QGIS_CUSTOM_CONFIG_PATH", None)
    return env


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "openeo_tile_jobs.demo", *args]


def run_demo(cwd: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(
        demo_command(*args), cwd=cwd, env=demo_env(cwd / "home"), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The reduced demo, run once for the tests of this module: (output folder, the finished process)."""
    cwd = tmp_path_factory.mktemp("demo")
    done = run_demo(cwd, "--tiles", str(TILES))
    assert done.returncode == 0, done.stdout + done.stderr
    return cwd / "demo_output", done


def map_area(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return pixels[: int(pixels.shape[0] * CAPTION_FRACTION)]


def distinct_colours(pixels: np.ndarray) -> int:
    flat = pixels.reshape(-1, 3).astype(np.int64)  # numpy 2 keeps int16 for int16 * 65536, and overflows
    return len(np.unique(flat[:, 0] * 65536 + flat[:, 1] * 256 + flat[:, 2]))


def test_every_tile_finished_and_downloaded(demo) -> None:
    out, _ = demo
    with JobDB.open(out / "demo_run.gpkg") as db:
        assert db.count_by_status() == {statuses.FINISHED: TILES}
        rows = db.all_rows(columns=["tile_id", "id", "result_status", "result_files", "result_dir"])
    assert len({r["id"] for r in rows}) == TILES
    for row in rows:
        assert row["result_status"] == "downloaded"
        folder = out / f"job_{row['id']}"
        assert folder.is_dir() and Path(row["result_dir"]) == folder
        tifs = [Path(p) for p in row["result_files"] if p.endswith(".tif")]
        assert tifs and all(p.is_file() and p.parent == folder and p.stat().st_size > 10_000 for p in tifs)


def test_summary_adds_up(demo) -> None:
    out, done = demo
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outcome"] == "done"
    assert summary["tiles"] == {"finished": TILES} and summary["downloaded"] == TILES
    by_endpoint = summary["http_requests_by_endpoint"]
    assert summary["http_requests"] == sum(by_endpoint.values()) > 0
    assert by_endpoint["POST /jobs"] == TILES  # one job per tile, none twice
    assert by_endpoint["POST /jobs/{job_id}/results"] == TILES
    # Tracking asks only when something may have changed (the listing or per-job GETs, whichever is cheaper):
    # a few requests per tile, where asking every round (0.2 s) for every job would send dozens.
    tracking = by_endpoint.get("GET /jobs", 0) + by_endpoint.get("GET /jobs/{job_id}", 0)
    assert 0 < tracking <= 5 * TILES, by_endpoint
    text = done.stdout
    assert "Summary (fresh run)" in text
    assert f"finished {TILES} (of {TILES})" in text
    assert f"HTTP requests  {summary['http_requests']} received by the Local demo backend" in text
    assert "wall time" in text and "demo.qgz" in text
    # the estimate before the start (the backend's, for the typical tile's job) beside the final figures
    estimate = summary["estimate"]
    assert estimate["before_start"]["source"] == "backend" and by_endpoint["GET /jobs/{job_id}/estimate"] == 1
    assert estimate["before_start"]["credits"]["value"] == pytest.approx(estimate["final"]["credits"], rel=0.01)
    assert estimate["final"]["seconds"] == summary["run_seconds"]
    assert "  estimate       before start " in text and "the backend's estimate for tile" in text
    # Not a terminal: progress comes as separate lines, the last one with every tile done.
    progress = [line for line in text.splitlines() if "tiles done" in line]
    assert progress and f"{TILES}/{TILES} tiles done" in progress[-1]
    assert "\r" not in text


def test_project_opens_from_another_folder_with_styled_layers(demo, qgis_app, tmp_path) -> None:
    out, _ = demo
    moved = tmp_path / "somewhere else" / "copy of the demo"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("local_backend"))
    project = QgsProject()
    try:
        assert project.read(str(moved / "demo.qgz")), project.error()
        layers = list(project.mapLayers().values())
        tiles = [layer for layer in layers if layer.name() == "Tiles"]
        results = [layer for layer in layers if isinstance(layer, QgsRasterLayer)]
        assert len(tiles) == 1 and tiles[0].isValid() and tiles[0].featureCount() == TILES
        assert Path(tiles[0].source().split("|")[0]).resolve().parent == moved.resolve()
        renderer = tiles[0].renderer()
        assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "status"
        colours = {c.value(): c.symbol().symbolLayer(0).fillColor().name() for c in renderer.categories()}
        assert colours[statuses.RUNNING] == statuses.CSS_HEX["navy"]
        assert colours[statuses.CREATED] == statuses.CSS_HEX["gold"]
        assert len(results) == TILES
        for layer in results:
            assert layer.isValid(), layer.source()
            assert Path(layer.source()).resolve().is_relative_to(moved.resolve())
            assert isinstance(layer.renderer(), QgsMultiBandColorRenderer)
        order = [node.layer().name() for node in project.layerTreeRoot().findLayers()]
        assert order[0] == "Tiles"  # drawn above the results
        assert project.crs().authid() == "EPSG:32631"
    finally:
        project.clear()


def test_png_shows_the_results(demo) -> None:
    out, _ = demo
    image = Image.open(out / "demo.png")
    assert image.format == "PNG" and image.width >= 800
    pixels = map_area(image)
    assert pixels.std() > 15  # not blank
    assert distinct_colours(pixels) > 500  # rasters, not just flat tile fills (an empty grid has < 40)


def test_gif_animates_the_run(demo) -> None:
    out, done = demo
    gif = Image.open(out / "demo.gif")
    assert gif.format == "GIF" and gif.n_frames >= 4
    gif.seek(0)
    first = map_area(gif)
    gif.seek(gif.n_frames - 1)
    last = map_area(gif)
    assert distinct_colours(first) < 40  # the empty grid: background, tile fill, outlines
    assert distinct_colours(last) > 100 and np.abs(first - last).mean() > 20
    assert f"demo.gif ({gif.n_frames} frames)" in done.stdout


def test_again_finds_nothing_left_to_do(demo) -> None:
    out, _ = demo
    gif_before = (out / "demo.gif").stat().st_mtime_ns
    again = run_demo(out.parent, "--tiles", str(TILES), timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is complete: nothing left to do" in again.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["action"] == "complete" and summary["tiles"] == {"finished": TILES}
    assert not any(k.startswith("POST") for k in summary["http_requests_by_endpoint"])
    assert (out / "demo.gif").stat().st_mtime_ns == gif_before  # the animation of the real run is kept


def job_ids(database: Path) -> dict[str, tuple[str, str]]:
    with JobDB.open(database) as db:
        return {r["tile_id"]: (r["status"], r["id"]) for r in db.all_rows(columns=["tile_id", "status", "id"])}


def test_ctrl_c_then_make_demo_resumes(tmp_path) -> None:
    database = tmp_path / "demo_output" / "demo_run.gpkg"
    child = subprocess.Popen(
        demo_command("--tiles", str(TILES)),
        cwd=tmp_path,
        env=demo_env(tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        before: dict[str, tuple[str, str]] = {}
        while time.monotonic() < deadline:
            if database.exists():
                before = job_ids(database)
                if any(s == statuses.FINISHED for s, _ in before.values()):
                    break
            time.sleep(0.2)
        assert any(s == statuses.FINISHED for s, _ in before.values()), "no tile finished in time"
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, output
    assert "Interrupted" in output and "`make demo` resumes the run" in output
    stopped = job_ids(database)
    assert any(s in statuses.ACTIVE_STATUSES for s, _ in stopped.values()), stopped
    first = json.loads((tmp_path / "demo_output" / "summary.json").read_text())

    resumed = run_demo(tmp_path, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming the demo run" in resumed.stdout
    after = job_ids(database)
    assert {s for s, _ in after.values()} == {statuses.FINISHED}
    for tile, (status, job) in stopped.items():
        if status == statuses.FINISHED or job:
            assert after[tile][1] == job  # a job that existed is kept, not made again
    second = json.loads((tmp_path / "demo_output" / "summary.json").read_text())
    posts = first["http_requests_by_endpoint"].get("POST /jobs", 0) + second["http_requests_by_endpoint"].get(
        "POST /jobs", 0
    )
    assert posts == TILES  # across both runs: one job per tile


@pytest.mark.skipif(not shutil.which("xvfb-run") or not shutil.which("qgis"), reason="needs xvfb-run and qgis")
def test_gui_opens_the_project_with_the_plugin(demo, tmp_path) -> None:
    """What `make demo GUI=1` does, on a virtual display: QGIS itself, the plugin enabled, the project loaded."""
    out, _ = demo
    report = tmp_path / "report.json"
    check = tmp_path / "check.py"
    check.write_text(
        "import json\n"
        "from qgis.core import QgsProject\n"
        "from qgis.utils import active_plugins\n"
        "from qgis.utils import iface\n"
        "from qgis.PyQt.QtCore import QTimer\n"
        "def report():\n"
        "    layers = {l.name(): l.isValid() for l in QgsProject.instance().mapLayers().values()}\n"
        f"    open({str(report)!r}, 'w').write(json.dumps({{'plugins': list(active_plugins), 'layers': layers}}))\n"
        # As a user quits: QApplication.quit() skips QGIS's own shutdown, and QGIS 3.44 then crashes in
        # ~QgsProject (QgisApp::updateNewLayerInsertionPoint), with or without this plugin.
        "    iface.mainWindow().close()\n"
        "QTimer.singleShot(2000, report)\n"
    )
    script = (
        "import sys; from pathlib import Path\n"
        "from openeo_tile_jobs.demo.gui import open_in_qgis\n"
        f"sys.exit(open_in_qgis(Path({str(out / 'demo.qgz')!r}), Path({str(REPO)!r}), "
        f"Path({str(tmp_path / 'profiles')!r}), code=Path({str(check)!r})))\n"
    )
    env = demo_env(tmp_path)
    # QGIS 3.40+ counts layers under its temp folder as temporary and asks before closing such a project;
    # the demo's project sits under pytest's /tmp, where a user's never is.
    env["TMPDIR"] = str(tmp_path / "qgis-tmp")
    (tmp_path / "qgis-tmp").mkdir()
    done = subprocess.run(
        ["xvfb-run", "-a", sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr  # also: QGIS did not crash on exit
    seen = json.loads(report.read_text())
    assert "openeo_tile_jobs" in seen["plugins"]
    assert seen["layers"].get("Tiles") is True
    assert len(seen["layers"]) == TILES + 1 and all(seen["layers"].values())


def test_results_not_downloaded_make_the_run_not_complete(tmp_path) -> None:
    """Every download fails (HTTP 500 injected by the Local demo backend): the jobs finish, but the summary says
    the run is not complete, and the command exits non-zero; `make demo` without the fault then completes it."""
    faults = json.dumps({"error_500": 1.0, "endpoints": ["GET /jobs/*/results"]})
    failed = run_demo(tmp_path, "--tiles", "1", "--no-frames", "--local-faults", faults)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "NOT COMPLETE   1 finished tile without a downloaded result" in failed.stdout
    summary = json.loads((tmp_path / "demo_output" / "summary.json").read_text())
    assert summary["tiles"] == {statuses.FINISHED: 1} and summary["not_downloaded"] == 1
    assert summary["complete"] is False and summary["downloaded"] == 0

    resumed = run_demo(tmp_path, "--no-frames")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = json.loads((tmp_path / "demo_output" / "summary.json").read_text())
    assert summary["complete"] is True and summary["downloaded"] == 1 and summary["not_downloaded"] == 0
