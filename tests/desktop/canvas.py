"""What the analyst sees on the rendered map canvas: the colour of each tile, read back from pixels.

Used inside QGIS by :mod:`driver`. A tile's centre pixel is classified as the status whose fill
(over the canvas's white background) it shows, ``"result"`` when a raster shows through an
unfilled (finished) tile, or ``"empty"`` when nothing is drawn there.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsPointXY
from qgis.PyQt.QtGui import QColor

#: Statuses whose fills are told apart on the map (queued_for_start shares not_started's grey).
SHOWN = ("not_started", "created", "queued", "running", "error", "start_failed", "canceled")
TOLERANCE = 14


def over_white(color: QColor) -> tuple[int, int, int]:
    alpha = color.alphaF()
    return tuple(round(alpha * c + (1 - alpha) * 255) for c in (color.red(), color.green(), color.blue()))


def expected_colours() -> dict[str, tuple[int, int, int]]:
    from openeo_tile_jobs.gis.tile_style import status_fill_color

    return {status: over_white(status_fill_color(status)) for status in SHOWN}


def classify(rgb: tuple[int, int, int], colours: dict[str, tuple[int, int, int]]) -> str:
    if all(c >= 250 for c in rgb):
        return "empty"
    best = min(colours, key=lambda s: max(abs(a - b) for a, b in zip(rgb, colours[s])))
    if max(abs(a - b) for a, b in zip(rgb, colours[best])) <= TOLERANCE:
        return best
    return "result"


#: What a status looks like on the map (the class :func:`classify` returns for it).
def shown_as(status: str) -> set[str]:
    if status == "finished":
        return {"result", "empty"}  # unfilled: its raster once downloaded, the background before
    if status == "queued_for_start":
        return {"not_started"}
    return {status}


def tile_pixels(canvas: Any, centres: dict[str, tuple[float, float]]) -> dict[str, tuple[int, int, int]]:
    """RGB of each tile's centre in the canvas as it is drawn now (map CRS = tiling CRS)."""
    image = canvas.viewport().grab().toImage()
    to_pixel = canvas.getCoordinateTransform()
    out = {}
    for tile_id, (x, y) in centres.items():
        point = to_pixel.transform(QgsPointXY(x, y))
        px, py = int(round(point.x())), int(round(point.y()))
        if 0 <= px < image.width() and 0 <= py < image.height():
            colour = QColor(image.pixel(px, py))
            out[tile_id] = (colour.red(), colour.green(), colour.blue())
    return out


def tile_classes(canvas: Any, centres: dict[str, tuple[float, float]]) -> dict[str, str]:
    colours = expected_colours()
    return {tile: classify(rgb, colours) for tile, rgb in tile_pixels(canvas, centres).items()}


def mismatches(classes: dict[str, str], statuses: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Tiles whose colour on the map is not their status in the database: {tile: (status, shown)}."""
    return {
        tile: (status, classes.get(tile, "off the map"))
        for tile, status in statuses.items()
        if classes.get(tile) not in shown_as(status)
    }
