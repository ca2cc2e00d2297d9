"""The tile layer's look: a categorized renderer on ``status``, an optional label and map tips.

Colours and opacities come from :mod:`core.statuses` (the seed notebook's folium style):
fill opacity 0.6, finished tiles unfilled so the result raster below shows, outline
``#333333`` one pixel-ish wide; split tiles unfilled with a wide dashed outline in their
colour. A catch-all category (empty value) paints any status
outside the vocabulary grey, as the seed's ``None`` entry does.
"""

from __future__ import annotations

import html

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsPalLayerSettings,
    QgsRendererCategory,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

from ..core import statuses
from .compat import LABEL_OVER_POINT

STATUS_FIELD = "status"
LABEL_FIELD = "tile_id"
#: The seed's tile outline ("color": "#333333", "weight": 1).
OUTLINE_COLOR = "#333333"
OUTLINE_WIDTH_MM = 0.26
#: A split tile (its job was too big; its quarters run instead) is drawn as a dashed outline in its
#: colour, wider than the children's outlines drawn over it; no fill, so the children show.
SPLIT_OUTLINE_WIDTH_MM = 0.7

#: Map tip rows: (field, caption). Fields missing from a layer are left out of the tip.
MAP_TIP_FIELDS: tuple[tuple[str, str], ...] = (
    ("tile_id", "Tile"),
    ("status", "Status"),
    ("id", "Job id"),
    ("backend_name", "Backend"),
    ("duration", "Duration"),
    ("costs", "Costs"),
    ("last_error", "Last error"),
)


def _hex(status: str | None) -> str:
    name = statuses.color_of(status)
    return statuses.CSS_HEX.get(name, name)


def status_fill_color(status: str | None) -> QColor:
    """Fill colour of a status, alpha included (0.6 of opaque; 0 for finished)."""
    color = QColor(_hex(status))
    color.setAlphaF(statuses.fill_opacity_of(status))
    return color


def status_symbol(status: str | None) -> QgsFillSymbol:
    symbol = QgsFillSymbol.createSimple(
        {
            "color": "0,0,0,0",
            "outline_color": OUTLINE_COLOR,
            "outline_width": str(OUTLINE_WIDTH_MM),
            "outline_width_unit": "MM",
            "style": "solid",
        }
    )
    layer = symbol.symbolLayer(0)
    layer.setFillColor(status_fill_color(status))
    if statuses.fill_opacity_of(status) == 0:
        layer.setBrushStyle(Qt.BrushStyle.NoBrush)  # nothing painted inside a finished or split tile
    if status == statuses.SPLIT:
        layer.setStrokeColor(QColor(_hex(status)))
        layer.setStrokeWidth(SPLIT_OUTLINE_WIDTH_MM)
        layer.setStrokeStyle(Qt.PenStyle.DashLine)
        layer.setRenderingPass(1)  # over its children's fills (see status_renderer)
    return symbol


def status_renderer(field: str = STATUS_FIELD) -> QgsCategorizedSymbolRenderer:
    """One category per status of the vocabulary, in life-cycle order, plus "anything else"."""
    categories = [QgsRendererCategory(status, status_symbol(status), status) for status in statuses.ALL_STATUSES]
    categories.append(QgsRendererCategory("", status_symbol(None), "other"))
    renderer = QgsCategorizedSymbolRenderer(field, categories)
    # Two passes: every tile, then split tiles' outlines on top (their children cover the same
    # ground and are drawn after them). Measured at 99,856 tiles: no slower than one pass.
    renderer.setUsingSymbolLevels(True)
    return renderer


def label_settings(field: str = LABEL_FIELD) -> QgsPalLayerSettings:
    settings = QgsPalLayerSettings()
    settings.fieldName = field
    settings.isExpression = False
    settings.placement = LABEL_OVER_POINT
    text = QgsTextFormat()
    text.setSize(8)
    text.setColor(QColor(OUTLINE_COLOR))
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setSize(0.8)
    buffer.setColor(QColor("white"))
    text.setBuffer(buffer)
    settings.setFormat(text)
    return settings


def set_labels(layer: QgsVectorLayer, enabled: bool, field: str = LABEL_FIELD) -> None:
    """Show or hide the tile id label on every tile."""
    if enabled and layer.fields().indexOf(field) >= 0:
        layer.setLabeling(QgsVectorLayerSimpleLabeling(label_settings(field)))
        layer.setLabelsEnabled(True)
    else:
        layer.setLabelsEnabled(False)
    layer.triggerRepaint()


def map_tip_template(field_names: list[str] | tuple[str, ...]) -> str:
    """HTML map tip with one row per :data:`MAP_TIP_FIELDS` entry present in ``field_names``."""
    rows = []
    for field, caption in MAP_TIP_FIELDS:
        if field not in field_names:
            continue
        value = f"[% coalesce(\"{field}\", '') %]"
        if field == "status":
            value = f"<b>{value}</b>"
        rows.append(f"<tr><th align='left'>{html.escape(caption)}</th><td>{value}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def apply_tile_style(layer: QgsVectorLayer, labels: bool = False) -> None:
    """Give a tile layer the status renderer, the map tip and (optionally) labels."""
    names = layer.fields().names()
    layer.setRenderer(status_renderer())
    layer.setMapTipTemplate(map_tip_template(names))
    if LABEL_FIELD in names:
        layer.setDisplayExpression(f'"{LABEL_FIELD}"')
    for field, caption in MAP_TIP_FIELDS:
        index = layer.fields().indexOf(field)
        if index >= 0:
            layer.setFieldAlias(index, caption)
    set_labels(layer, labels)
