"""Result rasters: the seed's fixed Sentinel-2 rendering, single-band ramps, the Results group, the VRT mosaic."""

from __future__ import annotations

import numpy as np
import pytest
from qgis.core import (
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)

from openeo_tile_jobs.gis.layer_tree import PROP_RUN, find_run_group, run_group
from openeo_tile_jobs.gis.mosaic import MosaicBuilder
from openeo_tile_jobs.gis.result_layers import ResultLayers, apply_s2_rgb_style, rgb_band_indices
from openeo_tile_jobs.tests.test_gis_support import (
    clear_project,
    is_blank,
    region,
    render,
    tile_bounds,
    write_float_tif,
    write_rgb_tif,
)


def seed_normalize(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """The seed notebook's ``normalize()``, verbatim in effect."""
    reflectance = array.astype(np.float32) / 10_000.0
    normalized = (np.clip(reflectance, low, high) - low) / (high - low)
    return (np.power(normalized, 1 / 2.2) * 255).astype(np.uint8)


@pytest.fixture()
def project(qgis_app):
    yield QgsProject.instance()
    clear_project()


def test_rgb_result_matches_the_seed_rendering(tmp_path, project) -> None:
    bounds = tile_bounds(0, 0)
    data = write_rgb_tif(tmp_path / "r.tif", bounds, size=100)
    layer = QgsRasterLayer(str(tmp_path / "r.tif"), "r", "gdal")
    apply_s2_rgb_style(layer)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (1, 2, 3)
    limits = [
        (e.contrastEnhancementAlgorithm(), e.minimumValue(), e.maximumValue())
        for e in (
            renderer.redContrastEnhancement(),
            renderer.greenContrastEnhancement(),
            renderer.blueContrastEnhancement(),
        )
    ]
    stretch = QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum
    assert limits == [(stretch, 200, 4000), (stretch, 200, 4000), (stretch, 200, 4500)]
    assert layer.brightnessFilter().gamma() == pytest.approx(2.2)

    rgba = render([layer], QgsRectangle(*bounds), size=100)
    expected = np.stack(
        [seed_normalize(data[0], 0.02, 0.40), seed_normalize(data[1], 0.02, 0.40), seed_normalize(data[2], 0.02, 0.45)],
        axis=-1,
    )
    diff = np.abs(rgba[..., :3].astype(int) - expected.astype(int))
    # QGIS applies the gamma to the 8-bit stretched value: exact but for the darkest 1/255 of the range.
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 3
    del layer


def test_rgb_bands_found_by_description(tmp_path, project) -> None:
    import rasterio

    path = tmp_path / "bgr.tif"
    write_rgb_tif(path, tile_bounds(0, 0))
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = ("B02", "B03", "B04")
    layer = QgsRasterLayer(str(path), "bgr", "gdal")
    assert rgb_band_indices(layer) == (3, 2, 1)
    del layer


def test_results_group_and_single_band_ramp_shared_by_tiles(tmp_path, project) -> None:
    tiles = QgsVectorLayer("Polygon?crs=EPSG:32631", "tiles", "memory")
    project.addMapLayer(tiles, False)
    group = run_group(tmp_path / "run.gpkg", "My run", project)
    group.addLayer(tiles)
    results = ResultLayers(tmp_path / "run.gpkg", project)
    write_float_tif(tmp_path / "a.tif", tile_bounds(0, 0))
    write_float_tif(tmp_path / "b.tif", tile_bounds(1, 0), value=0.5)
    write_rgb_tif(tmp_path / "c.tif", tile_bounds(2, 0))
    added = results.add_tile_results("x0_y0", [tmp_path / "a.tif", tmp_path / "job-results.json"])
    added += results.add_tile_results("x1_y0", [tmp_path / "b.tif"])
    added += results.add_tile_results("x2_y0", [tmp_path / "c.tif"])
    assert results.add_tile_results("x0_y0", [tmp_path / "a.tif"]) == []  # already shown
    assert [layer.name() for layer in added] == ["x0_y0", "x1_y0", "x2_y0"]

    assert find_run_group(tmp_path / "run.gpkg", project) is group
    assert group.customProperty(PROP_RUN) == str(tmp_path / "run.gpkg")
    assert [child.name() for child in group.children()] == ["tiles", "Results"]  # results draw below tiles
    assert [node.layer() for node in group.children()[1].findLayers()] == added

    first, second = (layer.renderer() for layer in added[:2])
    assert isinstance(first, QgsSingleBandPseudoColorRenderer)
    assert (first.classificationMin(), first.classificationMax()) == (
        second.classificationMin(),
        second.classificationMax(),
    )
    assert -0.9 < first.classificationMin() < -0.7 and 0.7 < first.classificationMax() < 0.9  # 2-98 % of tile 1
    assert isinstance(added[2].renderer(), QgsMultiBandColorRenderer)

    grey = ResultLayers(tmp_path / "run.gpkg", project, ramp=None)
    grey.remove_all()
    assert grey.layers() == []
    assert isinstance(grey.add_tile_results("x0_y0", [tmp_path / "a.tif"])[0].renderer(), QgsSingleBandGrayRenderer)
    del added, first, second, tiles


def test_mosaic_grows_as_tiles_finish(tmp_path, project) -> None:
    paths = [tmp_path / f"t{col}.tif" for col in range(3)]
    for col, path in enumerate(paths):
        write_rgb_tif(path, tile_bounds(col, 0), seed=col)
    run_group(tmp_path / "run.gpkg", "run", project)
    results = ResultLayers(tmp_path / "run.gpkg", project)
    builder = MosaicBuilder(tmp_path / "mosaic")

    assert builder.add(paths[:2] + [tmp_path / "job-results.json"]) == 2
    vrts = builder.build()
    (layer,) = results.show_mosaic(vrts)
    assert layer.extent().xMaximum() == pytest.approx(tile_bounds(1, 0)[2])
    assert isinstance(layer.renderer(), QgsMultiBandColorRenderer)
    assert layer.brightnessFilter().gamma() == pytest.approx(2.2)

    assert builder.add(paths) == 1
    new_vrts = builder.build()
    assert new_vrts != vrts  # a new file: GDAL may still write the old one back when QGIS closes it
    assert results.show_mosaic(new_vrts) == [layer]  # the same layer, pointed at the new file
    assert layer.source() == str(new_vrts[0])
    assert layer.extent().xMaximum() == pytest.approx(tile_bounds(2, 0)[2])
    assert isinstance(layer.renderer(), QgsMultiBandColorRenderer)  # its style kept
    assert sorted((tmp_path / "mosaic").iterdir()) == sorted(vrts + new_vrts)  # no .part left
    assert not list(tmp_path.glob("*.aux.xml"))  # no statistics computed for QGIS's default stretch

    extent = QgsRectangle(tile_bounds(0, 0)[0], tile_bounds(0, 0)[1], tile_bounds(3, 0)[2], tile_bounds(3, 0)[3])
    rgba = render([layer], extent, size=200)
    for col in range(3):
        assert not is_blank(region(rgba, extent, tile_bounds(col, 0))), col
    assert is_blank(region(rgba, extent, tile_bounds(3, 0)))  # no result there yet
    assert builder.build() == new_vrts  # nothing new: not rewritten
    assert MosaicBuilder(tmp_path / "mosaic").current() == new_vrts  # found again after a restart
    del layer
