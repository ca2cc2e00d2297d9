"""Result GeoTIFFs as raster layers: the seed's fixed Sentinel-2 rendering, or a ramp for one band.

RGB results (bands B04, B03, B02 — found by band description, else bands 1, 2, 3) get one
fixed stretch for every tile, so neighbouring tiles (and the VRT mosaic) have no seams:
reflectance = DN / 10000 clipped to red 0.02–0.40, green 0.02–0.40, blue 0.02–0.45 and
stretched to 0–1 is a ``QgsContrastEnhancement`` ``StretchToMinimumMaximum`` between the
DN limits (200..4000, 200..4500); the seed's ``normalized ** (1 / 2.2)`` is the layer's
``QgsBrightnessContrastFilter`` gamma 2.2 (QGIS ≥ 3.16 computes ``c ** (1 / gamma)`` on the
stretched 8-bit value). Measured against the seed's numpy ``normalize()`` on random DNs:
mean difference 0.35 of 255, 99th percentile 3, worst 20 — only in the darkest 1/255 of the
range, where QGIS's 8-bit intermediate step is coarser than the seed's float one.

Layers live in a "Results" subgroup of the run's group, below the tile layer, so unfilled
finished tiles show them. Everything here runs on the main thread; GDAL work that scales
with the number of results (the VRT) is in :mod:`gis.mosaic` and runs in a task.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsDataProvider,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSettings,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)

from .compat import SHADER_LINEAR
from .layer_tree import PROP_KIND, PROP_RUN, PROP_TILE, results_group, run_group, run_key

#: Band descriptions of the seed's RGB result, in R, G, B order.
RGB_BANDS = ("B04", "B03", "B02")
REFLECTANCE_SCALE = 10_000
#: The seed's ``S2_RGB_STRETCH`` (reflectance) and ``S2_RGB_GAMMA``.
S2_STRETCH = {"red": (0.02, 0.40), "green": (0.02, 0.40), "blue": (0.02, 0.45)}
S2_GAMMA = 2.2
DEFAULT_RAMP = "Viridis"
KIND_RESULT = "result"
KIND_MOSAIC = "mosaic"
PROP_MOSAIC_INDEX = "openeo_tile_jobs/mosaic_index"

_DEFAULT_STRETCH_KEYS = tuple(
    f"/Raster/defaultContrastEnhancement{what}/{kind}"
    for what in ("Algorithm", "Limits")
    for kind in ("singleBand", "multiBandSingleByte", "multiBandMultiByte")
)


@contextmanager
def no_default_stretch() -> Iterator[None]:
    """Open rasters without QGIS's default min/max stretch, restoring the user's settings after.

    QGIS computes statistics and a histogram for that default stretch when a layer is created
    (reading the data on the main thread, and writing ``.aux.xml`` beside each result, or into
    a VRT). Our renderers use fixed limits, so that work is wasted.
    """
    settings = QgsSettings()
    saved = {key: settings.value(key) for key in _DEFAULT_STRETCH_KEYS if settings.contains(key)}
    for key in _DEFAULT_STRETCH_KEYS:
        settings.setValue(key, "NoEnhancement" if "Algorithm" in key else "None")
    try:
        yield
    finally:
        for key in _DEFAULT_STRETCH_KEYS:
            if key in saved:
                settings.setValue(key, saved[key])
            else:
                settings.remove(key)


def open_result_layer(path: str | os.PathLike) -> Optional[QgsRasterLayer]:
    """A result raster as a layer, opened in the calling thread (the run task's: it takes 15-200 ms).

    Move it to the main thread before handing it over (``layer.moveToThread``), as Processing
    does with the layers its algorithms make.
    """
    with no_default_stretch():
        layer = QgsRasterLayer(os.fspath(path), Path(path).stem, "gdal")
    return layer if layer.isValid() else None


def result_key(path: str | os.PathLike) -> str:
    """How :meth:`ResultLayers.add_results` looks up a pre-opened layer."""
    return _norm(path)


def _norm(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


def open_raster(path: str | os.PathLike, name: str) -> QgsRasterLayer:
    """A GDAL raster layer without the default stretch's statistics (see :func:`no_default_stretch`)."""
    with no_default_stretch():
        return QgsRasterLayer(os.fspath(path), name, "gdal")


def s2_dn_limits(channel: str) -> tuple[float, float]:
    low, high = S2_STRETCH[channel]
    return low * REFLECTANCE_SCALE, high * REFLECTANCE_SCALE


def rgb_band_indices(layer: QgsRasterLayer) -> tuple[int, int, int] | None:
    """1-based (red, green, blue) bands: B04/B03/B02 by description, else 1/2/3; None for < 3 bands."""
    provider = layer.dataProvider()
    count = provider.bandCount()
    if count < 3:
        return None
    names = {}
    for band in range(1, count + 1):
        # generateBandName gives "Band 1: B04" when GDAL has a description.
        label = provider.generateBandName(band)
        names[label.split(":", 1)[-1].strip().upper()] = band
    if all(name in names for name in RGB_BANDS):
        return tuple(names[name] for name in RGB_BANDS)  # type: ignore[return-value]
    return 1, 2, 3


def _stretch(data_type: int, low: float, high: float) -> QgsContrastEnhancement:
    enhancement = QgsContrastEnhancement(data_type)
    # Each setter rebuilds a 65,536-entry lookup table for 16-bit data: build it once, at the end.
    enhancement.setContrastEnhancementAlgorithm(
        QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum, False
    )
    enhancement.setMinimumValue(low, False)
    enhancement.setMaximumValue(high, True)
    return enhancement


def apply_s2_rgb_style(layer: QgsRasterLayer, bands: Sequence[int] | None = None) -> None:
    """The seed's fixed Sentinel-2 true-colour rendering (see the module docstring)."""
    red, green, blue = bands or rgb_band_indices(layer) or (1, 2, 3)
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, red, green, blue)
    renderer.setRedContrastEnhancement(_stretch(provider.dataType(red), *s2_dn_limits("red")))
    renderer.setGreenContrastEnhancement(_stretch(provider.dataType(green), *s2_dn_limits("green")))
    renderer.setBlueContrastEnhancement(_stretch(provider.dataType(blue), *s2_dn_limits("blue")))
    layer.setRenderer(renderer)
    layer.brightnessFilter().setGamma(S2_GAMMA)
    layer.triggerRepaint()


def value_range(layer: QgsRasterLayer, band: int = 1) -> tuple[float, float]:
    """2–98 % cumulative cut of a band (from a sample), the usual QGIS default stretch."""
    provider = layer.dataProvider()
    low, high = provider.cumulativeCut(band, 0.02, 0.98, layer.extent(), 250_000)
    if not (low == low and high == high) or low >= high:  # NaN or flat band
        stats = provider.bandStatistics(band)
        low, high = stats.minimumValue, stats.maximumValue
    if low >= high:
        high = low + 1
    return float(low), float(high)


def apply_single_band_style(
    layer: QgsRasterLayer,
    value_range_: tuple[float, float] | None = None,
    ramp: str | None = DEFAULT_RAMP,
    band: int = 1,
) -> tuple[float, float]:
    """Grey (``ramp=None``) or a named QGIS colour ramp between fixed values; returns the range used.

    Pass the same range to every tile of a run so the tiles match (the caller keeps it).
    """
    low, high = value_range_ or value_range(layer, band)
    provider = layer.dataProvider()
    color_ramp = QgsStyle.defaultStyle().colorRamp(ramp) if ramp else None
    if color_ramp is None:
        renderer = QgsSingleBandGrayRenderer(provider, band)
        renderer.setContrastEnhancement(_stretch(provider.dataType(band), low, high))
    else:
        shader = QgsColorRampShader(low, high, color_ramp, SHADER_LINEAR)
        shader.classifyColorRamp(5, -1)
        raster_shader = QgsRasterShader(low, high)
        raster_shader.setRasterShaderFunction(shader)
        renderer = QgsSingleBandPseudoColorRenderer(provider, band, raster_shader)
        renderer.setClassificationMin(low)
        renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return low, high


def style_result_layer(
    layer: QgsRasterLayer, value_range_: tuple[float, float] | None = None, ramp: str | None = DEFAULT_RAMP
) -> tuple[float, float] | None:
    """RGB style for ≥ 3 bands, single-band style otherwise (returns its range)."""
    if layer.bandCount() >= 3:
        apply_s2_rgb_style(layer)
        return None
    return apply_single_band_style(layer, value_range_, ramp)


class ResultLayers:
    """The "Results" subgroup of one run: one layer per result file, or the VRT mosaic layer(s).

    Main thread only. The run's key (its job database path) is stored on every layer so the
    layers of a run are found again after the project is reopened.
    """

    def __init__(
        self,
        run: str | os.PathLike,
        project: QgsProject | None = None,
        ramp: str | None = DEFAULT_RAMP,
        group: QgsLayerTreeGroup | None = None,
    ) -> None:
        self.project = project or QgsProject.instance()
        self.run_key = run_key(run)
        self.run_group = group or run_group(run, Path(self.run_key).stem, self.project)
        self.ramp = ramp
        self._range: tuple[float, float] | None = None
        self._known: dict[str, str] | None = None

    @property
    def group(self) -> QgsLayerTreeGroup:
        return results_group(self.run_group)

    def layers(self, kind: str | None = None) -> list[QgsRasterLayer]:
        found = []
        for node in self.group.findLayers():
            layer = node.layer()
            if isinstance(layer, QgsRasterLayer) and (kind is None or layer.customProperty(PROP_KIND) == kind):
                found.append(layer)
        return found

    def _sources(self) -> dict[str, str]:
        """Normalised source path -> layer id of the run's result layers (cached; a removal resets it)."""
        if self._known is None:
            self._known = {_norm(layer.source()): layer.id() for layer in self.layers()}
            self.project.layersRemoved.connect(self._forget)
        return self._known

    def _forget(self, *_args) -> None:
        if self._known is not None:
            self.project.layersRemoved.disconnect(self._forget)
        self._known = None

    def _add(
        self, layer: QgsRasterLayer, kind: str, tile_id: str | None = None, group: QgsLayerTreeGroup | None = None
    ) -> QgsRasterLayer:
        layer.setCustomProperty(PROP_RUN, self.run_key)
        layer.setCustomProperty(PROP_KIND, kind)
        if tile_id is not None:
            layer.setCustomProperty(PROP_TILE, str(tile_id))
        self.project.addMapLayer(layer, False)
        node = QgsLayerTreeLayer(layer)
        node.setExpanded(False)
        (group or self.group).addChildNode(node)
        if self._known is not None:
            self._known[_norm(layer.source())] = layer.id()
        return layer

    def add_tile_results(self, tile_id: str, paths: Iterable[str | os.PathLike]) -> list[QgsRasterLayer]:
        """One layer per GeoTIFF of a tile (files already shown are skipped)."""
        return self.add_results({tile_id: paths})

    def add_results(
        self,
        results: Mapping[Any, Iterable[str | os.PathLike]],
        opened: Optional[dict[str, QgsRasterLayer]] = None,
    ) -> list[QgsRasterLayer]:
        """One layer per GeoTIFF of each tile: ``{tile_id: [paths]}`` (files already shown are skipped).

        ``opened``: layers :func:`open_result_layer` opened off the main thread, by normalised
        path (taken from it); other files are opened here (15-200 ms each on a busy machine).
        """
        from .mosaic import is_raster_result

        known = self._sources()
        group = self.group
        added = []
        for tile_id, paths in results.items():
            first = True
            for path in paths:
                path = os.path.abspath(str(path))
                if not is_raster_result(path) or _norm(path) in known:
                    continue
                name = f"{tile_id}" if first else f"{tile_id} ({Path(path).stem})"
                layer = (opened or {}).pop(_norm(path), None) or open_result_layer(path)
                if layer is None or not layer.isValid():
                    continue
                layer.setName(name)
                first = False
                self._range = style_result_layer(layer, self._range, self.ramp) or self._range
                added.append(self._add(layer, KIND_RESULT, str(tile_id), group))
        return added

    def show_mosaic(self, vrt_paths: Iterable[str | os.PathLike]) -> list[QgsRasterLayer]:
        """Add the mosaic layer(s), or point them at the new VRT files of a :class:`MosaicBuilder` build.

        The layer keeps its id, style and place in the tree; only its source changes.
        """
        by_index = {int(layer.customProperty(PROP_MOSAIC_INDEX, 0)): layer for layer in self.layers(KIND_MOSAIC)}
        shown = []
        for index, path in enumerate(vrt_paths):
            path = os.path.abspath(str(path))
            layer = by_index.get(index)
            name = "Results mosaic" if index == 0 else f"Results mosaic {index + 1}"
            if layer is None:
                layer = open_raster(path, name)
                if not layer.isValid():
                    continue
                self._range = style_result_layer(layer, self._range, self.ramp) or self._range
                layer.setCustomProperty(PROP_MOSAIC_INDEX, index)
                self._add(layer, KIND_MOSAIC)
            elif os.path.normcase(os.path.abspath(layer.source())) != os.path.normcase(path):
                with no_default_stretch():
                    layer.setDataSource(path, layer.name(), "gdal", QgsDataProvider.ProviderOptions(), False)
                layer.triggerRepaint()
            shown.append(layer)
        return shown

    def remove_all(self) -> None:
        ids = [layer.id() for layer in self.layers()]
        if ids:
            self.project.removeMapLayers(ids)
        self._forget()
