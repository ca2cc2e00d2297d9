"""The Process step with the real APEx definitions (served over HTTP on 127.0.0.1), in real headless QGIS:
a process chosen by country is refused with the reason and Start is disabled; the ``bands`` of
bap_composite and max_ndvi_composite are a checklist whose minItems is enforced and whose value
reaches the job's parameters."""

from __future__ import annotations

import pytest
from qgis.PyQt.QtCore import Qt

from openeo_tile_jobs.core.jobspec import build_job_request
from openeo_tile_jobs.tests import test_ui_dock
from openeo_tile_jobs.tests.test_jobspec_apex import RAMONA, TILE, serve_catalogue
from openeo_tile_jobs.ui.param_form import EnumChecklist

dock = test_ui_dock.dock  # the panel, as the dock tests make it

TEMPORAL = ["2024-06-01", "2024-09-01"]


@pytest.fixture(scope="module")
def catalogue():
    with serve_catalogue() as url:
        yield url


def load(page, qtbot, url: str) -> None:
    page.set_source("namespace")
    page.namespace.setText(url)
    page.process_id.clear()
    before = page.resolved
    qtbot.mouseClick(page.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.load_button.isEnabled() and page.resolved is not before, timeout=15_000)


def test_a_process_chosen_by_country_is_refused_and_start_disabled(dock, qtbot, catalogue) -> None:
    page, start = dock.process_page, dock.run_page.start_button
    load(page, qtbot, f"{catalogue}/bap_composite.json")
    assert page.resolved.process_id == "bap_composite" and start.isEnabled()
    combo = page.geometry_combo  # only what can take an area is offered (not temporal_extent, bands...)
    assert [combo.itemData(i) for i in range(combo.count())] == [None, "geometry"]
    assert combo.currentData() == "geometry"

    load(page, qtbot, f"{catalogue}/{RAMONA}.json")
    message = page.load_message.text()
    assert "cannot be split into tiles" in message and "(country, year, month)" in message, message
    assert page.resolved is None and not page.form.editors  # bap_composite is not kept behind the message
    assert not start.isEnabled()
    assert page.job_spec() is None
    assert "cannot be split into tiles" in page.load_message.text()  # validating keeps the reason

    load(page, qtbot, f"{catalogue}/bap_composite.json")
    assert start.isEnabled() and page.load_message.text() == ""


def test_bands_of_bap_composite_are_a_checklist_with_min_items(dock, qtbot, catalogue) -> None:
    page = dock.process_page
    load(page, qtbot, f"{catalogue}/bap_composite.json")
    bands = page.form.editors["bands"]
    assert isinstance(bands.widget, EnumChecklist)
    assert list(bands.widget.boxes) == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    assert bands.raw_value() == ["B04", "B03", "B02"]  # the schema default, in its order
    page.form.editors["temporal_extent"].set_value(TEMPORAL)

    for box in bands.widget.boxes.values():
        box.setChecked(False)
    assert page.job_spec() is None
    assert bands.message.text() == "Tick at least 1."  # the schema's minItems: 1

    bands.widget.boxes["B08"].setChecked(True)
    bands.widget.boxes["B04"].setChecked(True)
    spec = page.job_spec()
    assert spec is not None and spec.parameters["bands"] == ["B08", "B04"]  # in the order ticked
    assert bands.message.text() == ""
    graph = build_job_request(page.resolved, spec, TILE).process_graph
    (node,) = graph.values()
    assert node["arguments"]["bands"] == ["B08", "B04"]
    assert node["arguments"]["geometry"] == TILE["geometry"]


def test_bands_of_max_ndvi_composite_may_be_left_to_the_default(dock, qtbot, catalogue) -> None:
    page = dock.process_page
    load(page, qtbot, f"{catalogue}/max_ndvi_composite.json")
    bands = page.form.editors["bands"]
    assert isinstance(bands.widget, EnumChecklist) and bands.raw_value() == ["B04", "B03", "B02"]
    page.form.editors["temporal_extent"].set_value(TEMPORAL)
    for box in bands.widget.boxes.values():
        box.setChecked(False)
    spec = page.job_spec()  # no minItems and optional: nothing ticked sends nothing
    assert spec is not None and "bands" not in spec.parameters
    graph = build_job_request(page.resolved, spec, TILE).process_graph
    (node,) = graph.values()
    assert node["arguments"]["bands"] == ["B04", "B03", "B02"]  # the schema default, as openeo would send
    bands.widget.boxes["B11"].setChecked(True)
    assert page.job_spec().parameters["bands"] == ["B11"]
