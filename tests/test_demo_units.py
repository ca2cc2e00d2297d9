"""The demo's plain parts: `make demo VAR=...` -> flags -> options, the grid it makes, the terminal
progress, the output folder rules and the GUI launcher's profile (no QGIS window here)."""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.demo import gui
from openeo_tile_jobs.demo.area import demo_grid
from openeo_tile_jobs.demo.options import SEED_AOI, OptionError, parse_aoi, parse_options
from openeo_tile_jobs.demo.outputs import DemoPaths, OutputFolderError, prepare_fresh
from openeo_tile_jobs.demo.progress import TerminalProgress, bar, format_counts

REPO = Path(__file__).resolve().parent.parent


def make_demo_argv(*variables: str) -> list[str]:
    """The demo's arguments as `make -n demo VAR=...` prints them (the real Makefile, nothing run)."""
    done = subprocess.run(["make", "-s", "-n", "demo", *variables], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "openeo_tile_jobs.demo" in x)
    argv = shlex.split(line)
    return argv[argv.index("openeo_tile_jobs.demo") + 1 :]


def test_make_variables_become_options() -> None:
    argv = make_demo_argv(
        "FRESH=1",
        "GUI=1",
        "TILES=4",
        "BACKEND_URL=https://openeo.dataspace.copernicus.eu",
        "AUTH=oidc",
        "PROCESS_URL=https://example.org/bap_composite.json",
        "AOI=4.2, 51.1, 4.5, 51.3",
        'PARAMS={"temporal_extent": ["2024-06-01", "2024-07-01"]}',
        "PARALLEL_JOBS=2",
    )
    opts = parse_options(argv)
    assert opts.mode == "fresh" and opts.gui and opts.tiles == 4
    assert opts.backend_url == "https://openeo.dataspace.copernicus.eu" and opts.auth == "oidc"
    assert opts.process_url == "https://example.org/bap_composite.json"
    assert opts.aoi == {"west": 4.2, "south": 51.1, "east": 4.5, "north": 51.3, "crs": "EPSG:4326"}
    assert opts.parameters == {"temporal_extent": ["2024-06-01", "2024-07-01"]}


def test_plain_make_demo_is_the_seed_on_the_local_backend() -> None:
    assert make_demo_argv() == []
    opts = parse_options([])
    assert opts.local and opts.mode == "auto" and not opts.gui
    assert opts.aoi == SEED_AOI and opts.tile_size == 5000 and opts.parallel_jobs == 2
    assert opts.parameters == {"temporal_extent": ["2024-06-01", "2024-09-01"]}
    assert make_demo_argv("FRESH=0", "GUI=0") == []


def test_a_remote_backend_needs_a_process(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--backend-url", "https://openeo.example.org"])
    assert "--process-url" in capsys.readouterr().err


def test_aoi_forms(tmp_path) -> None:
    assert parse_aoi("590000,5660000,610000,5680000,EPSG:32631")["crs"] == "EPSG:32631"
    assert parse_aoi("4.2;51.1;4.5;51.3")["crs"] == "EPSG:4326"
    shape = tmp_path / "area.geojson"
    shape.write_text('{"type": "FeatureCollection", "features": []}')
    assert parse_aoi(str(shape)) == shape
    with pytest.raises(OptionError, match="west must be < east"):
        parse_aoi("4.5,51.1,4.2,51.3")
    with pytest.raises(OptionError, match="neither"):
        parse_aoi("antwerp")


def test_seed_grid_and_its_central_block() -> None:
    grid = demo_grid(SEED_AOI, 5000)
    assert len(grid) == 16 and grid.crs == "EPSG:32631"
    block = demo_grid(SEED_AOI, 5000, tiles=4)
    assert len(block) == 4
    assert block.bounds.min(axis=0)[:2].tolist() == [595000, 5665000]
    assert block.bounds.max(axis=0)[2:].tolist() == [605000, 5675000]
    assert len(demo_grid(SEED_AOI, 5000, tiles=99)) == 16


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_one_updating_line(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = FakeTerminal()
    progress = TerminalProgress(out)
    progress.update({statuses.NOT_STARTED: 3, statuses.RUNNING: 1}, 4, 0, 12)
    progress.update({statuses.FINISHED: 1, statuses.RUNNING: 2, statuses.NOT_STARTED: 1}, 4, 1, 20)
    progress.message("a warning")
    progress.finish({statuses.FINISHED: 4}, 4, 4, 31)
    text = out.getvalue()
    assert text.count("\r") >= 3 and text.endswith("\n")
    assert "4/4 tiles done | finished 4 | 4 downloaded | 31 HTTP requests" in text
    assert "\x1b[48;2" not in text  # NO_COLOR


def test_progress_in_a_log_is_a_line_now_and_then() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out)
    for n in range(50):
        progress.update({statuses.NOT_STARTED: 4}, 4, 0, n)
    progress.finish({statuses.FINISHED: 4}, 4, 4, 60)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[-1].endswith("4/4 tiles done | finished 4 | 4 downloaded | 60 HTTP requests")


def test_bar_and_counts() -> None:
    counts = {statuses.FINISHED: 2, statuses.RUNNING: 1, statuses.NOT_STARTED: 1}
    assert bar(counts, 4, width=8) == "####>>.."
    assert format_counts(counts) == "waiting 1, running 1, finished 2"
    assert "\x1b[48;2;0;0;128m" in bar(counts, 4, width=8, color=True)  # navy, as on the map


def test_fresh_only_empties_a_folder_the_demo_made(tmp_path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(OutputFolderError, match="not made by the demo"):
        prepare_fresh(DemoPaths(foreign))
    assert (foreign / "thesis.docx").exists()

    paths = DemoPaths(tmp_path / "demo_output")
    prepare_fresh(paths)
    (paths.root / "job_j-1").mkdir()
    (paths.root / "demo.png").write_bytes(b"x")
    prepare_fresh(paths)
    assert [p.name for p in paths.root.iterdir()] == [paths.marker.name]


def test_gui_says_why_not_without_a_display() -> None:
    assert "DISPLAY" in gui.display_problem({})
    without_qgis = "GUI=1 needs the `qgis` command (Debian: apt-get install qgis)."
    expected = None if shutil.which("qgis") else without_qgis
    assert gui.display_problem({"DISPLAY": ":0"}) == expected
    assert gui.display_problem({"WAYLAND_DISPLAY": "wayland-0"}) == expected


def test_gui_profile_enables_the_plugin(tmp_path) -> None:
    profile = gui.prepare_profile(tmp_path, REPO)
    link = profile / "python" / "plugins" / "openeo_tile_jobs"
    assert link.is_symlink() and link.resolve() == REPO.resolve()
    ini = (profile / "QGIS" / "QGIS3.ini").read_text()
    assert "[PythonPlugins]\nopeneo_tile_jobs=true" in ini
    # QGIS disables a plugin it crashed on ("watchDog"); a new launch enables it again, keeping the rest.
    (profile / "QGIS" / "QGIS3.ini").write_text(ini.replace("=true", "=false") + "\n[Other]\nkept=1\n")
    gui.prepare_profile(tmp_path, REPO)
    ini = (profile / "QGIS" / "QGIS3.ini").read_text()
    assert "openeo_tile_jobs=true" in ini and "kept=1" in ini


def test_gui_environment_shows_a_window_with_the_venv_packages() -> None:
    env = gui.qgis_environment({"QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": "/x", "QGIS_CUSTOM_CONFIG_PATH": "/y"})
    assert "QT_QPA_PLATFORM" not in env and "QGIS_CUSTOM_CONFIG_PATH" not in env
    site, rest = env["PYTHONPATH"].split(":")
    assert (Path(site) / "openeo").is_dir() and rest == "/x"
