"""core.grid: openeo split_area parity, fitted tiles without slivers, cover without gap/overlap, stable ids,
bad inputs."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openeo_tile_jobs.core.grid import (
    GridError,
    TooManyTilesError,
    grid_from_polygons,
    make_grid,
    utm_crs_for,
)

SEED_BBOX = {"west": 590000, "south": 5660000, "east": 610000, "north": 5680000, "crs": "EPSG:32631"}


def openeo_split_area(aoi, **kw):
    from openeo.extra.job_management import split_area

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return split_area(aoi, **kw)


# ------------------------------------------------------------------ the seed, against openeo


def test_seed_grid_equals_openeo_split_area_in_utm_and_4326():
    grid = make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631", fit=False)
    theirs = openeo_split_area(SEED_BBOX, projection="EPSG:32631", tile_size=5000)
    assert len(grid) == len(theirs) == 16
    assert grid.crs == "EPSG:32631"
    for ours, their in zip(grid.geometries, theirs.geometry):
        assert shapely.equals_exact(ours, their, tolerance=1e-6)
    theirs_4326 = theirs.to_crs("EPSG:4326")
    for ours, their in zip(grid.geometries_4326, theirs_4326.geometry):
        assert shapely.equals_exact(ours, their, tolerance=1e-6)
    # ids / rows / cols follow openeo's order: column by column, south to north
    assert grid.tile_ids[:5] == ["x0_y0", "x0_y1", "x0_y2", "x0_y3", "x1_y0"]
    assert grid.cols.tolist() == [c for c in range(4) for _ in range(4)]
    assert grid.rows.tolist() == [r for _ in range(4) for r in range(4)]


def test_seed_polygon_aoi_in_4326_gets_the_utm_zone_and_matches_openeo():
    # A concave AOI in lon/lat: automatic UTM zone; same tiles as openeo (which also keeps tiles
    # that only touch the AOI's border; there are none here).
    aoi = shapely.Polygon([(4.30, 51.10), (4.55, 51.10), (4.55, 51.30), (4.45, 51.30), (4.45, 51.18), (4.30, 51.18)])
    grid = make_grid(aoi, aoi_crs="EPSG:4326", tile_size=5000, fit=False)
    assert grid.crs == "EPSG:32631"
    # openeo takes a bare polygon to be in the grid CRS: give it the AOI projected like ours.
    aoi_utm = shapely.transform(aoi, _tf("EPSG:4326", "EPSG:32631"))
    theirs = openeo_split_area(aoi_utm, projection="EPSG:32631", tile_size=5000)
    assert len(grid) == len(theirs)
    for ours, their in zip(grid.geometries, theirs.geometry):
        assert shapely.equals_exact(ours, their, tolerance=1e-6)


def test_seed_grid_is_the_same_fitted_or_not():
    """The seed's 20 km x 20 km at 5 km is a whole number of tiles: fitting changes nothing."""
    fitted = make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631")
    plain = make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631", fit=False)
    assert fitted.fit and not plain.fit
    assert len(fitted) == len(plain) == 16
    assert fitted.tile_ids == plain.tile_ids
    assert np.array_equal(fitted.bounds, plain.bounds)
    assert fitted.size_range() == ((5000.0, 5000.0), (5000.0, 5000.0))
    assert fitted.parameters()["fit"] is True and plain.parameters()["fit"] is False


def _square_on_the_ground(lon, lat, side):
    """A lon/lat rectangle whose sides measure ``side`` metres on the ellipsoid: what a user draws."""
    import pyproj

    geod = pyproj.Geod(ellps="WGS84")
    east, _, _ = geod.fwd(lon, lat, 90, side)
    _, north, _ = geod.fwd(lon, lat, 0, side)
    return shapely.box(lon, lat, east, north)


def test_a_drawn_20_km_square_gets_no_sliver_tiles_when_fitted():
    """The issue's example: a 20 x 20 km rectangle drawn in lon/lat near Antwerp is a little more than
    20 km wide in UTM (meridian convergence), so 5 km squares leave slivers ~358 m wide."""
    aoi = _square_on_the_ground(4.35, 51.15, 20_000)
    plain = make_grid(aoi, aoi_crs="EPSG:4326", tile_size=5000, fit=False)
    widths = plain.bounds[:, 2] - plain.bounds[:, 0]
    heights = plain.bounds[:, 3] - plain.bounds[:, 1]
    slivers = np.minimum(widths, heights) < 500
    assert len(plain) >= 24 and slivers.sum() >= 8  # today: full tiles plus slivers
    (small_w, small_h), _ = plain.size_range()
    assert min(small_w, small_h) < 500

    fitted = make_grid(aoi, aoi_crs="EPSG:4326", tile_size=5000)
    west, south, east, north = fitted.aoi.bounds
    n_cols, n_rows = int(np.ceil((east - west) / 5000)), int(np.ceil((north - south) / 5000))
    assert (n_cols, n_rows) == (5, 5)
    widths = fitted.bounds[:, 2] - fitted.bounds[:, 0]
    heights = fitted.bounds[:, 3] - fitted.bounds[:, 1]
    assert np.allclose(widths, (east - west) / n_cols) and np.allclose(heights, (north - south) / n_rows)
    assert 4000 < widths.min() and widths.max() <= 5000 and 4000 < heights.min() and heights.max() <= 5000
    (small_w, small_h), (large_w, large_h) = fitted.size_range()
    assert round(small_w) == round(large_w) == 4072 and round(small_h) == round(large_h) == 4079
    # still a cover of the area without gap or overlap
    union = shapely.union_all(fitted.geometries)
    assert fitted.aoi.difference(union).area < 1e-6 * fitted.aoi.area
    assert abs(sum(t.area for t in fitted.geometries) - union.area) < 1e-6 * union.area


def test_fit_makes_equal_tiles_no_larger_than_the_size():
    # 20.3 km x 12 km in UTM: 5 x 3 tiles of 4060 x 4000 m instead of 4 full columns and a 300 m sliver
    aoi = {"west": 590000, "south": 5660000, "east": 610300, "north": 5672000, "crs": "EPSG:32631"}
    plain = make_grid(aoi, tile_size=5000, crs="EPSG:32631", fit=False)
    assert plain.size_range() == ((300.0, 2000.0), (5000.0, 5000.0))
    fitted = make_grid(aoi, tile_size=5000, crs="EPSG:32631")
    assert len(fitted) == len(plain) == 15
    assert np.allclose(fitted.size_range(), [[4060.0, 4000.0], [4060.0, 4000.0]])
    assert fitted.bounds[:, 0].min() == 590000 and fitted.bounds[:, 2].max() == 610300  # exact outer edges
    assert fitted.tile_ids == plain.tile_ids  # same columns and rows, same ids


def test_tiles_whose_corner_only_touches_a_diagonal_edge_are_not_kept():
    """Fitted nodes lie on the bounding box's diagonal (26 x 13 tiles here): a tile whose corner is on
    the AOI's diagonal edge up to rounding is not a tile of the AOI (found by hypothesis)."""
    aoi = shapely.Polygon([(494298, 5600000), (531799, 5618001), (500000, 5600000)])
    for clip in (False, True):
        grid = make_grid(aoi, aoi_crs="EPSG:32631", crs="EPSG:32631", tile_size=1500, clip=clip)
        shared = shapely.area(shapely.intersection(grid.geometries, aoi))
        assert np.all(shared > 1.0), np.sort(shared)[:3]  # every tile holds some of the area
        assert all(g.geom_type in ("Polygon", "MultiPolygon") for g in grid.geometries)
        assert aoi.difference(shapely.union_all(grid.geometries)).area <= 1e-6 * aoi.area


def test_fit_does_not_change_a_global_grid():
    aoi = {"west": 592345, "south": 5661234, "east": 610300, "north": 5672000, "crs": "EPSG:32631"}
    a = make_grid(aoi, tile_size=5000, crs="EPSG:32631", anchor="global")
    b = make_grid(aoi, tile_size=5000, crs="EPSG:32631", anchor="global", fit=False)
    assert not a.fit and a.tile_ids == b.tile_ids and np.array_equal(a.bounds, b.bounds)
    assert a.parameters()["fit"] is False


def _tf(src, dst):
    import pyproj

    tr = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    return lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))


def test_utm_zones():
    assert utm_crs_for(4.4, 51.2) == "EPSG:32631"
    assert utm_crs_for(-70.6, -33.4) == "EPSG:32719"
    assert utm_crs_for(180.0, 10.0) == "EPSG:32660"
    assert utm_crs_for(-180.0, 10.0) == "EPSG:32601"


def test_global_grid_is_aligned_and_ids_stable_across_runs():
    a = make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631", anchor="global")
    shifted = {**SEED_BBOX, "west": 592500, "east": 607500, "south": 5661000}
    b = make_grid(shifted, tile_size=5000, crs="EPSG:32631", anchor="global")
    assert a.tile_ids[0] == "32631_5000m_x118_y1132"
    geoms_a = dict(zip(a.tile_ids, a.geometries))
    shared = set(a.tile_ids) & set(b.tile_ids)
    assert len(shared) == len(b)  # b lies inside a's footprint: every tile of b is one of a's
    for tid, geom in zip(b.tile_ids, b.geometries):
        assert shapely.equals_exact(geom, geoms_a[tid], 0)
    minx, miny, maxx, maxy = np.asarray(a.bounds).T
    assert np.all(minx % 5000 == 0) and np.all(miny % 5000 == 0)


# ------------------------------------------------------------------ properties (hypothesis)

coords = st.floats(min_value=-50_000, max_value=50_000, allow_nan=False, allow_infinity=False)


@st.composite
def aois(draw):
    """Random polygons in UTM metres (around a point of zone 31N): boxes, triangles, hulls."""
    kind = draw(st.sampled_from(["box", "hull", "ring"]))
    ox, oy = 500_000.0, 5_600_000.0
    if kind == "box":
        x0, y0 = draw(coords), draw(coords)
        w = draw(st.floats(min_value=10, max_value=40_000))
        h = draw(st.floats(min_value=10, max_value=40_000))
        return shapely.box(ox + x0, oy + y0, ox + x0 + w, oy + y0 + h)
    pts = draw(st.lists(st.tuples(coords, coords), min_size=3, max_size=8))
    geom = shapely.MultiPoint([(ox + x, oy + y) for x, y in pts]).convex_hull
    if kind == "ring" and geom.area > 0:
        geom = geom.difference(geom.centroid.buffer(np.sqrt(geom.area) / 4))
    if geom.area < 1:
        geom = shapely.box(ox, oy, ox + 1000, oy + 700)
    return geom


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    aoi=aois(),
    size=st.floats(min_value=900, max_value=20_000),
    anchor=st.sampled_from(["aoi", "global"]),
    fit=st.booleans(),
)
def test_tiles_cover_the_aoi_without_gap_or_overlap(aoi, size, anchor, fit):
    grid = make_grid(
        aoi, aoi_crs="EPSG:32631", crs="EPSG:32631", tile_size=size, anchor=anchor, fit=fit, confirm_many=True
    )
    tiles = grid.geometries
    union = shapely.union_all(tiles)
    # no gap: nothing of the AOI is outside the tiles
    assert aoi.difference(union).area <= 1e-6 * aoi.area
    # no overlap: the tiles' areas add up to their union's
    assert abs(sum(t.area for t in tiles) - union.area) <= 1e-6 * union.area
    # every tile's interior meets the AOI
    assert all(shapely.intersection(t, aoi).area > 0 for t in tiles)
    # ids unique, rows/cols consistent with the geometry
    assert len(set(grid.tile_ids)) == len(grid)
    b = np.asarray(grid.bounds)
    if anchor == "global":
        assert np.allclose(b[:, 0], grid.cols * size) and np.allclose(b[:, 1], grid.rows * size)
    elif fit:
        # equal tiles, none larger than the size, none as small as the last would be without fitting
        west, south, east, north = aoi.bounds
        n_cols, n_rows = grid.node_x.size - 1, grid.node_y.size - 1
        assert np.allclose(b[:, 2] - b[:, 0], (east - west) / n_cols)
        assert np.allclose(b[:, 3] - b[:, 1], (north - south) / n_rows)
        assert np.all(b[:, 2] - b[:, 0] <= size * (1 + 1e-9)) and np.all(b[:, 3] - b[:, 1] <= size * (1 + 1e-9))
        assert (east - west) / n_cols > size * (n_cols - 1) / n_cols - 1e-6


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(aoi=aois(), size=st.floats(min_value=1500, max_value=20_000), fit=st.booleans())
def test_clipped_tiles_partition_the_aoi(aoi, size, fit):
    grid = make_grid(aoi, aoi_crs="EPSG:32631", crs="EPSG:32631", tile_size=size, fit=fit, clip=True, confirm_many=True)
    total = sum(t.area for t in grid.geometries)
    assert abs(total - aoi.area) <= 1e-6 * aoi.area
    assert all(t.geom_type in ("Polygon", "MultiPolygon") and t.area > 0 for t in grid.geometries)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=aois(), b=aois(), size=st.sampled_from([1000.0, 2500.0, 5000.0]))
def test_global_ids_name_the_same_square_in_every_run(a, b, size):
    ga = make_grid(a, aoi_crs="EPSG:32631", crs="EPSG:32631", tile_size=size, anchor="global", confirm_many=True)
    gb = make_grid(b, aoi_crs="EPSG:32631", crs="EPSG:32631", tile_size=size, anchor="global", confirm_many=True)
    for g in (ga, gb):
        for tid, geom in zip(g.tile_ids, g.geometries):
            m = re.fullmatch(r"32631_(\d+)m_x(-?\d+)_y(-?\d+)", tid)
            col, row = int(m.group(2)), int(m.group(3))
            square = shapely.box(col * size, row * size, (col + 1) * size, (row + 1) * size)
            assert shapely.equals_exact(geom, square, 0)
    again = make_grid(a, aoi_crs="EPSG:32631", crs="EPSG:32631", tile_size=size, anchor="global", confirm_many=True)
    assert again.tile_ids == ga.tile_ids


# ------------------------------------------------------------------ antimeridian and poles


def test_antimeridian_bbox_is_unwrapped_and_tiled_in_one_utm_zone():
    bbox = {"west": 179.8, "south": -17.0, "east": -179.8, "north": -16.8, "crs": "EPSG:4326"}
    grid = make_grid(bbox, tile_size=5000)
    assert grid.crs in ("EPSG:32760", "EPSG:32701")
    assert any("antimeridian" in m for m in grid.messages)
    assert np.isfinite(np.asarray(grid.bounds)).all()
    width_km = (grid.aoi.bounds[2] - grid.aoi.bounds[0]) / 1000
    assert 40 < width_km < 45  # 0.4° of longitude at 17°S, not the whole globe
    lonlat = shapely.get_coordinates(np.asarray(grid.geometries_4326))
    assert np.all(np.abs(lonlat[:, 0]) > 179)


def test_polygon_spanning_more_than_half_the_globe_is_refused():
    aoi = shapely.box(-179.9, 10, 179.9, 11)
    with pytest.raises(GridError, match="more than 180° of longitude"):
        make_grid(aoi, aoi_crs="EPSG:4326", tile_size=5000)


def test_pole_and_beyond_utm_are_refused_with_reasons():
    with pytest.raises(GridError, match="reaches a pole"):
        make_grid(shapely.box(0, 85, 10, 90), aoi_crs="EPSG:4326", tile_size=5000, crs="EPSG:3413")
    with pytest.raises(GridError, match="84°N or 80°S.*polar CRS"):
        make_grid(shapely.box(0, 84.5, 1, 85), aoi_crs="EPSG:4326", tile_size=5000)
    # in a polar CRS it works
    polar = shapely.box(-200_000, -200_000, 200_000, 200_000)
    grid = make_grid(polar, aoi_crs="EPSG:3031", crs="EPSG:3031", tile_size=50_000)
    assert len(grid) == 64


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aoi": shapely.Polygon(), "tile_size": 1000}, "empty"),
        ({"aoi": shapely.LineString([(0, 0), (1, 1)]), "tile_size": 1000, "crs": "EPSG:32631"}, "no area"),
        ({"aoi": SEED_BBOX, "tile_size": 0}, "more than 0"),
        ({"aoi": SEED_BBOX, "tile_size": -5}, "more than 0"),
        ({"aoi": SEED_BBOX, "tile_size": float("nan")}, "more than 0"),
        ({"aoi": SEED_BBOX, "tile_size": "big"}, "number of metres"),
        ({"aoi": {**SEED_BBOX, "south": 5690000}, "tile_size": 1000}, "south must be less than north"),
        ({"aoi": {"west": 1, "south": 2, "east": 3}, "tile_size": 1000}, "lacks north"),
        ({"aoi": 42, "tile_size": 1000}, "shapely geometry, WKT or a bounding-box dict"),
        ({"aoi": "POLYGON ((0 0, 1", "tile_size": 1000}, "not valid WKT"),
        ({"aoi": SEED_BBOX, "tile_size": 1000, "crs": "EPSG:4326"}, "geographic"),
        ({"aoi": SEED_BBOX, "tile_size": 1000, "crs": "EPSG:99999"}, "Unknown tiling CRS"),
        ({"aoi": shapely.box(0, 95, 1, 96), "tile_size": 1000}, "beyond ±90°"),
        ({"aoi": SEED_BBOX, "tile_size": 1000, "anchor": "nowhere"}, "anchor"),
    ],
)
def test_bad_inputs_give_a_message(kwargs, message):
    with pytest.raises(GridError, match=message):
        make_grid(**kwargs)


def test_invalid_polygon_is_repaired_and_the_caller_told():
    bowtie = shapely.Polygon([(590000, 5660000), (600000, 5670000), (600000, 5660000), (590000, 5670000)])
    assert not bowtie.is_valid
    grid = make_grid(bowtie, aoi_crs="EPSG:32631", crs="EPSG:32631", tile_size=2500)
    assert grid.aoi.is_valid and grid.aoi.area == pytest.approx(shapely.make_valid(bowtie).area)
    assert any("invalid" in m and "make_valid" in m for m in grid.messages)
    assert shapely.make_valid(bowtie).difference(shapely.union_all(grid.geometries)).area < 1e-6


def test_tile_limit_needs_confirmation():
    with pytest.raises(TooManyTilesError, match="16 tiles, more than the limit of 10") as err:
        make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631", max_tiles=10)
    assert err.value.count == 16 and err.value.limit == 10
    assert len(make_grid(SEED_BBOX, tile_size=5000, crs="EPSG:32631", max_tiles=10, confirm_many=True)) == 16
    # the default limit is 10,000; a huge request is refused before building anything
    with pytest.raises(TooManyTilesError, match="40,000 tiles"):
        make_grid(SEED_BBOX, tile_size=100, crs="EPSG:32631")
    with pytest.raises(TooManyTilesError, match="400,000,000"):
        make_grid(SEED_BBOX, tile_size=1, crs="EPSG:32631", confirm_many=True)


# ------------------------------------------------------------------ predefined grid


def test_predefined_grid_keeps_polygons_meeting_the_aoi():
    polys = [shapely.box(x, 0, x + 10, 10) for x in range(0, 100, 10)]
    grid = grid_from_polygons(
        polys, crs="EPSG:32631", aoi=shapely.box(15, 2, 42, 8), aoi_crs="EPSG:32631", tile_ids=list("abcdefghij")
    )
    assert grid.tile_ids == ["b", "c", "d", "e"]
    assert grid.anchor == "predefined" and grid.rows is None
    clipped = grid_from_polygons(polys, crs="EPSG:32631", aoi=shapely.box(15, 2, 42, 8), clip=True)
    assert sum(g.area for g in clipped.geometries) == pytest.approx(27 * 6)


def test_predefined_grid_errors():
    polys = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)]
    with pytest.raises(GridError, match="unique"):
        grid_from_polygons(polys, crs="EPSG:32631", tile_ids=["a", "a"])
    with pytest.raises(GridError, match="no polygons"):
        grid_from_polygons([], crs="EPSG:32631")
    with pytest.raises(GridError, match="No tile of the tile layer meets the AOI"):
        grid_from_polygons(polys, crs="EPSG:32631", aoi=shapely.box(5, 5, 6, 6))
    with pytest.raises(GridError, match="no area"):
        grid_from_polygons([shapely.Point(0, 0)], crs="EPSG:32631")
