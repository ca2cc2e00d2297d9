"""The tile layer style: categories and colours from core.statuses, map tips, labels, and a real render."""

from __future__ import annotations

import pytest
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsExpression,
    QgsExpressionContext,
    QgsExpressionContextUtils,
    QgsVectorLayer,
)

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.gis.tile_style import apply_tile_style, map_tip_template, set_labels
from openeo_tile_jobs.tests.test_gis_support import (
    clear_project,
    close_to,
    over_white,
    pixel_at,
    render,
    sqlite_connect,
    tile_bounds,
    write_tiles_gpkg,
)


@pytest.fixture()
def tiles(tmp_path, qgis_app):
    """(path, layer) in a list that teardown empties: pytest keeps fixture values until after
    exitQgis() on the last test, and a layer alive then segfaults."""
    path = write_tiles_gpkg(tmp_path / "run.gpkg")
    layer = QgsVectorLayer(f"{path}|layername=tiles", "tiles", "ogr")
    assert layer.isValid()
    holder = [path, layer]
    del layer
    yield holder
    holder.clear()
    clear_project()


def test_categories_follow_the_status_vocabulary(tiles) -> None:
    _, layer = tiles
    apply_tile_style(layer)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert renderer.classAttribute() == "status"
    categories = renderer.categories()  # keep the copies alive while their symbols are used
    by_value = {c.value(): c.symbol() for c in categories}
    assert list(by_value)[: len(statuses.ALL_STATUSES)] == list(statuses.ALL_STATUSES)
    assert "" in by_value  # "anything else"
    for status in statuses.ALL_STATUSES:
        fill = by_value[status].symbolLayer(0).fillColor()
        expected = statuses.CSS_HEX[statuses.color_of(status)]
        assert fill.name() == expected, status
        assert fill.alphaF() == pytest.approx(statuses.fill_opacity_of(status), abs=0.01), status
        outline = statuses.CSS_HEX["plum"] if status == statuses.SPLIT else "#333333"
        assert by_value[status].symbolLayer(0).strokeColor().name() == outline, status
    assert by_value[""].symbolLayer(0).fillColor().name() == statuses.CSS_HEX[statuses.DEFAULT_COLOR]


def test_render_shows_status_colours_and_finished_unfilled(tiles) -> None:
    path, layer = tiles
    apply_tile_style(layer)
    con = sqlite_connect(path)
    con.execute("UPDATE tiles SET status='running' WHERE tile_id='x0_y0'")
    con.execute("UPDATE tiles SET status='finished' WHERE tile_id='x1_y0'")
    con.execute("UPDATE tiles SET status='something_new' WHERE tile_id='x2_y0'")
    con.commit()
    con.close()
    extent = layer.extent()
    image = render([layer], extent)
    for col, row, status in ((0, 0, "running"), (2, 0, None), (3, 3, "not_started")):
        x0, y0, _, _ = tile_bounds(col, row)
        expected = over_white(statuses.CSS_HEX[statuses.color_of(status)], statuses.FILL_OPACITY)
        assert close_to(pixel_at(image, extent, x0 + 2500, y0 + 2500), expected), status
    x0, y0, _, _ = tile_bounds(1, 0)
    assert pixel_at(image, extent, x0 + 2500, y0 + 2500)[:3] == (255, 255, 255)  # finished: no fill
    assert close_to(pixel_at(image, extent, x0 + 3, y0 + 2500), (0x33, 0x33, 0x33), 60)  # its dark outline


def test_map_tip_names_the_job(tiles) -> None:
    path, layer = tiles
    apply_tile_style(layer)
    template = layer.mapTipTemplate()
    for caption in ("Tile", "Status", "Job id", "Backend", "Duration", "Costs", "Last error"):
        assert caption in template
    con = sqlite_connect(path)
    con.execute("UPDATE tiles SET status='error', id='j-42', backend_name='local', last_error='boom' WHERE fid=1")
    con.commit()
    con.close()
    feature = layer.getFeature(1)
    context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    context.setFeature(feature)
    tip = QgsExpression.replaceExpressionText(template, context)
    assert "j-42" in tip and "local" in tip and "boom" in tip and "<b>error</b>" in tip


def test_map_tip_skips_missing_fields() -> None:
    tip = map_tip_template(["tile_id", "status"])
    assert "Tile" in tip and "Status" in tip and "Job id" not in tip


def test_labels_toggle(tiles) -> None:
    _, layer = tiles
    apply_tile_style(layer, labels=True)
    labeling = layer.labeling().clone()
    assert layer.labelsEnabled() and labeling.settings().fieldName == "tile_id"
    set_labels(layer, False)
    assert not layer.labelsEnabled()
