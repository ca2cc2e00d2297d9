"""Pictures of the run: the map rendered by QGIS with a caption and a status legend, as a PNG or
as frames of an animated GIF.

Rendering uses ``QgsMapRendererParallelJob`` (QGIS's render threads); the main thread only
composes the caption. Frames are asked for on every repaint of the tile layer and taken at
most every ``min_interval`` seconds (the last request of a burst is never lost), so the GIF
shows every status change without one frame per event. Frames are kept as PNG bytes and
turned into one GIF with Pillow at the end, all frames on one palette (no flicker).
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, Optional

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsMapLayer,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QBuffer, QByteArray, QEventLoop, QIODevice, QObject, QRectF, QSize, Qt, QTimer
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter, QPen

from ..core import statuses
from .progress import SHORT_NAMES, format_counts

BACKGROUND = QColor("#f7f7f4")
TEXT = QColor("#222222")
#: Statuses shown in the legend (the ones a normal run passes through, plus the failures).
LEGEND = (
    statuses.NOT_STARTED,
    statuses.CREATED,
    statuses.QUEUED,
    statuses.RUNNING,
    statuses.FINISHED,
    statuses.ERROR,
    statuses.START_FAILED,
)


def render_map(
    layers: Sequence[QgsMapLayer],
    extent: QgsRectangle,
    crs: QgsCoordinateReferenceSystem,
    size: QSize,
    background: QColor = BACKGROUND,
    timeout: float = 60.0,
) -> QImage:
    """Render ``layers`` (top first) with QGIS's parallel renderer and wait for the image."""
    job = _start_job(layers, extent, crs, size, background)
    loop = QEventLoop()
    job.finished.connect(loop.quit)
    QTimer.singleShot(int(timeout * 1000), loop.quit)
    if job.isActive():
        loop.exec()
    if job.isActive():
        job.cancel()
        raise TimeoutError("the map did not render in time")
    return job.renderedImage()


def _start_job(layers, extent, crs, size, background) -> QgsMapRendererParallelJob:
    settings = QgsMapSettings()
    settings.setLayers(list(layers))
    settings.setDestinationCrs(crs)
    settings.setExtent(extent)
    settings.setOutputSize(size)
    settings.setBackgroundColor(background)
    settings.setFlag(Qgis.MapSettingsFlag.Antialiasing, True)
    settings.setFlag(Qgis.MapSettingsFlag.DrawLabeling, True)
    job = QgsMapRendererParallelJob(settings)
    job.start()
    return job


def _status_swatch(painter: QPainter, rect: QRectF, status: str) -> None:
    fill = QColor(statuses.CSS_HEX.get(statuses.color_of(status), "#808080"))
    fill.setAlphaF(statuses.fill_opacity_of(status))
    painter.setPen(QPen(QColor("#333333"), 1))
    if statuses.fill_opacity_of(status) == 0:
        painter.setBrush(Qt.BrushStyle.NoBrush)
    else:
        # Over white, as on the map's background.
        painter.fillRect(rect, QColor("white"))
        painter.setBrush(fill)
    painter.drawRect(rect)


def compose(
    map_image: QImage,
    title: str,
    counts: Mapping[str, int],
    total: int,
    elapsed: Optional[float],
    note: str = "",
) -> QImage:
    """The map with a caption strip below it: title, time and counts, a progress bar and the legend."""
    width = map_image.width()
    scale = max(width / 640.0, 0.75)
    footer = int(100 * scale)
    out = QImage(width, map_image.height() + footer, QImage.Format.Format_ARGB32)
    out.fill(BACKGROUND)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    painter.drawImage(0, 0, map_image)
    painter.setPen(QPen(QColor("#bbbbbb"), 1))
    painter.drawLine(0, map_image.height(), width, map_image.height())
    pad = 10 * scale
    y = map_image.height() + pad
    line_height = 18 * scale

    title_font = QFont("DejaVu Sans")
    title_font.setPixelSize(int(14 * scale))
    title_font.setBold(True)
    painter.setFont(title_font)
    painter.setPen(TEXT)
    painter.drawText(
        QRectF(pad, y, width - 2 * pad, line_height), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title
    )
    y += line_height + 2 * scale

    small = QFont("DejaVu Sans")
    small.setPixelSize(int(12 * scale))
    painter.setFont(small)
    done = sum(n for s, n in counts.items() if s in statuses.FINAL_STATUSES)
    parts = [f"t = {elapsed:.0f} s"] if elapsed is not None else []
    parts += [f"{done}/{total} tiles done", format_counts(counts) or "starting"]
    if note:
        parts.append(note)
    painter.drawText(
        QRectF(pad, y, width - 2 * pad, line_height),
        Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
        "  ·  ".join(parts),
    )
    y += line_height + 3 * scale

    # Progress bar: one segment per status, in the map's order of the life cycle.
    bar_rect = QRectF(pad, y, width - 2 * pad, 9 * scale)
    x = bar_rect.left()
    order = [statuses.FINISHED, statuses.RUNNING, statuses.QUEUED, statuses.CREATED, statuses.QUEUED_FOR_START]
    order += [s for s in counts if s not in order and s != statuses.NOT_STARTED] + [statuses.NOT_STARTED]
    painter.setPen(Qt.PenStyle.NoPen)
    for status in order:
        n = counts.get(status, 0)
        if not n or total <= 0:
            continue
        w = bar_rect.width() * n / total
        color = QColor(statuses.CSS_HEX.get(statuses.color_of(status), "#808080"))
        if status == statuses.FINISHED:
            color = QColor("#2e9e3e")  # finished tiles show their result; a solid green reads better in a bar
        painter.setBrush(color)
        painter.drawRect(QRectF(x, bar_rect.top(), w, bar_rect.height()))
        x += w
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(QPen(QColor("#999999"), 1))
    painter.drawRect(bar_rect)
    y += bar_rect.height() + 8 * scale

    # Legend.
    x = pad
    box = 11 * scale
    metrics = painter.fontMetrics()
    for status in LEGEND:
        label = SHORT_NAMES.get(status, status)
        if status == statuses.FINISHED:
            label = "finished (result)"
        if status == statuses.NOT_STARTED:
            label = "not started"
        _status_swatch(painter, QRectF(x, y + 2 * scale, box, box), status)
        x += box + 4 * scale
        painter.setPen(TEXT)
        painter.drawText(
            QRectF(x, y, width, 15 * scale), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, label
        )
        x += metrics.horizontalAdvance(label) + 12 * scale
    painter.end()
    return out


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data)


class MapRecorder(QObject):
    """Collects animation frames of the project's map (main thread; renders run in QGIS's threads).

    ``state()`` returns ``(counts, total, elapsed)`` for the caption of the frame being taken.
    """

    def __init__(
        self,
        project: QgsProject,
        extent: QgsRectangle,
        crs: QgsCoordinateReferenceSystem,
        title: str,
        state: Callable[[], tuple[Mapping[str, int], int, Optional[float]]],
        size: int = 560,
        min_interval: float = 0.5,
        max_frames: int = 400,
    ) -> None:
        super().__init__()
        self.project, self.extent, self.crs, self.title = project, extent, crs, title
        self.state = state
        self.size = QSize(size, size)
        self.min_interval = min_interval
        self.max_frames = max_frames
        self.frames: list[bytes] = []
        self._job: Optional[QgsMapRendererParallelJob] = None
        self._job_state: Optional[tuple] = None
        self._last = -1e9
        self._wanted = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._take)

    def layers(self) -> list[QgsMapLayer]:
        return self.project.layerTreeRoot().checkedLayers()

    def request(self, *_args) -> None:
        """Ask for a frame (connect any "something changed" signal here)."""
        self._wanted = True
        if self._job is not None or self._timer.isActive():
            return
        wait = self.min_interval - (time.monotonic() - self._last)
        self._timer.start(max(0, int(wait * 1000)))

    def _take(self) -> None:
        if self._job is not None or not self._wanted or len(self.frames) >= self.max_frames:
            return
        self._wanted = False
        self._last = time.monotonic()
        self._job_state = self.state()
        self._job = _start_job(self.layers(), self.extent, self.crs, self.size, BACKGROUND)
        self._job.finished.connect(self._rendered)

    def _rendered(self) -> None:
        job, self._job = self._job, None
        if job is None:
            return
        counts, total, elapsed = self._job_state or ({}, 0, None)
        self.frames.append(png_bytes(compose(job.renderedImage(), self.title, counts, total, elapsed)))
        if self._wanted:
            self.request()

    def finish(self, timeout: float = 30.0) -> None:
        """Wait for a render in flight, then take the final frame now."""
        self._timer.stop()
        deadline = time.monotonic() + timeout
        loop = QEventLoop()
        while self._job is not None and time.monotonic() < deadline:
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        counts, total, elapsed = self.state()
        image = render_map(self.layers(), self.extent, self.crs, self.size)
        self.frames.append(png_bytes(compose(image, self.title, counts, total, elapsed)))

    def write_gif(self, path: Path, frame_ms: int = 350, last_ms: int = 3500, first_ms: int = 1000) -> int:
        """Write the frames as a looping GIF (one shared palette); returns the number of frames in it."""
        from PIL import Image

        if not self.frames:
            return 0
        images = [Image.open(io.BytesIO(data)).convert("RGB") for data in self.frames]
        palette = _shared_palette(images)
        frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
        durations = [frame_ms] * len(frames)
        durations[0] = first_ms
        durations[-1] = last_ms
        tmp = path.with_name(path.name + ".tmp")
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=0,
            optimize=False,
            disposal=1,
        )
        tmp.replace(path)
        with Image.open(path) as written:
            return written.n_frames  # Pillow merges identical neighbours into one longer frame


def _shared_palette(images: list):
    """One 256-colour palette for every frame: built from the first and last frames side by side
    (the empty grid and the finished results) plus every status colour, plain and as a tile fill."""
    from PIL import Image

    first, last = images[0], images[-1]
    w, h = last.size
    sample = Image.new("RGB", (w * 2, h + 16), "white")
    sample.paste(first, (0, 0))
    sample.paste(last, (w, 0))
    bg = BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue()
    x = 0
    for status in statuses.ALL_STATUSES:
        color = QColor(statuses.CSS_HEX.get(statuses.color_of(status), "#808080"))
        rgb = color.red(), color.green(), color.blue()
        alpha = statuses.FILL_OPACITY
        blended = tuple(round(alpha * c + (1 - alpha) * b) for c, b in zip(rgb, bg))
        sample.paste(Image.new("RGB", (32, 16), rgb), (x, h))  # legend and progress bar
        sample.paste(Image.new("RGB", (32, 16), blended), (x + 32, h))  # tiles on the map
        x += 64
    return sample.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def save_png(image: QImage, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp.png")
    if not image.save(str(tmp), "PNG"):
        raise OSError(f"cannot write {path}")
    tmp.replace(path)
