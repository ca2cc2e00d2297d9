"""Validation messages follow the current input: a message shown for a bad value goes away as
soon as the field holds a good one, and changes when it holds another bad one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import Qt
from ui_helpers import panel

from openeo_tile_jobs.ui import param_schema as ps
from openeo_tile_jobs.ui.param_form import ParameterForm

DEMO_PROCESS = Path(__file__).resolve().parent.parent / "local_backend" / "processes" / "cloud_free_composite.json"


@pytest.fixture()
def dock(qgis_iface):
    with panel(qgis_iface) as dock:
        yield dock


def _shown(message) -> str:
    return message.plain_text() if message.has_message() else ""


def test_job_database_message_follows_the_file(dock, qtbot, tmp_path) -> None:
    from ui_helpers import AOI, UTM31

    from openeo_tile_jobs.ui.aoi import aoi_from_rectangle

    grid = dock.grid_page
    dock.aoi_controller.set_aoi(aoi_from_rectangle(AOI, UTM31))
    grid.database.setFilePath("")
    qtbot.mouseClick(grid.create_button, Qt.MouseButton.LeftButton)
    assert _shown(grid.database_message) == "Choose where to save the job database."
    grid.database.setFilePath(str(tmp_path / "run.gpkg"))  # a file is picked
    assert _shown(grid.database_message) == ""

    existing = tmp_path / "old.gpkg"
    existing.write_bytes(b"")
    grid.database.setFilePath(str(existing))
    qtbot.mouseClick(grid.create_button, Qt.MouseButton.LeftButton)
    assert _shown(grid.database_message).startswith("This file exists")
    grid.database.setFilePath(str(tmp_path / "new.gpkg"))  # a new name is typed
    assert _shown(grid.database_message) == ""
    grid.database.setFilePath(str(tmp_path / "new.txt"))
    assert _shown(grid.database_message) == ""  # no message was shown: none appears while typing
    qtbot.mouseClick(grid.create_button, Qt.MouseButton.LeftButton)
    assert "ends in .gpkg" in _shown(grid.database_message)
    grid.database.setFilePath(str(existing))  # another bad one: the message says what is wrong now
    assert _shown(grid.database_message).startswith("This file exists")


def test_output_folder_message_follows_the_folder(dock, qtbot, tmp_path) -> None:
    run = dock.run_page
    run.output.setFilePath("")
    qtbot.mouseClick(run.start_button, Qt.MouseButton.LeftButton)
    assert _shown(run.output_message) == "Choose a folder for the results."
    run.output.setFilePath(str(tmp_path / "missing" / "deeper"))
    assert "does not exist" in _shown(run.output_message)
    run.output.setFilePath(str(tmp_path / "results"))
    assert _shown(run.output_message) == ""


def test_backend_form_messages_follow_the_fields(dock, qtbot) -> None:
    page = dock.backends_page
    qtbot.mouseClick(page.test_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    page.url.setText("http://openeo.example.org")
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert _shown(page.name_message) == "Give the backend a name."
    assert "https" in _shown(page.url_message)
    page.name.setText("Example")
    assert _shown(page.name_message) == ""
    page.url.setText("openeo.example.org")
    assert _shown(page.url_message) == "Enter a URL like https://openeo.example.org"
    page.url.setText("https://openeo.example.org")
    assert _shown(page.url_message) == ""

    assert not dock.run_controller.validate()
    assert _shown(page.list_message) == "Add at least one backend."
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert _shown(page.list_message) == ""


def test_process_messages_follow_the_fields(dock, qtbot) -> None:
    process = dock.process_page
    process.set_source("namespace")
    process.namespace.setText("not a url")
    qtbot.mouseClick(process.load_button, Qt.MouseButton.LeftButton)
    assert _shown(process.namespace_message) == "Enter the http(s) URL of a process definition."
    process.namespace.setText("https://example.org/process.json")
    assert _shown(process.namespace_message) == ""
    process.set_source("file")
    qtbot.mouseClick(process.load_button, Qt.MouseButton.LeftButton)
    assert _shown(process.graph_file_message) == "Choose a process graph file."
    process.set_source("namespace")  # the file is not asked for any more
    assert _shown(process.graph_file_message) == ""


def test_parameter_messages_follow_the_values(qgis_app) -> None:
    definition = json.loads(DEMO_PROCESS.read_text())
    fields = ps.fields_from_parameters(definition["parameters"])
    form = ParameterForm()
    form.set_fields(fields, "spatial_extent")
    temporal = form.editors["temporal_extent"]
    temporal.set_value(["2024-09-01", "2024-06-01"])
    assert not form.validate()
    assert _shown(temporal.message) == "The start must come before the end."
    temporal.set_value(["2024-06-01", "2024-09-01"])
    assert _shown(temporal.message) == ""
