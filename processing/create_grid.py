"""``openeo_tile_jobs:create_grid``: an area of interest -> tiles -> the run's job database (GeoPackage)."""

from __future__ import annotations

import os

import shapely
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from ..core.grid import DEFAULT_MAX_TILES, GridError, grid_from_polygons, make_grid
from ..core.jobdb import JobDB, JobDBError
from ..gis.compat import CRS_WKT_PREFERRED, NUMBER_DOUBLE, NUMBER_INTEGER, PARAMETER_ADVANCED, SOURCE_VECTOR_POLYGON
from ..gis.tile_layer import tile_layer_uri
from .common import TileJobsAlgorithm, load_on_completion, tile_post_processor, tr

ANCHORS = ("aoi", "global")


def crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS as pyproj reads it: the authority id when there is one, else WKT."""
    return crs.authid() or crs.toWkt(CRS_WKT_PREFERRED)


class CreateGridAlgorithm(TileJobsAlgorithm):
    NAME = "create_grid"
    DISPLAY_NAME = "Create tile grid and job database"
    HELP = (
        "Splits an area of interest (an extent, or the polygons of a layer) into square tiles and writes "
        "them into a new job database: a GeoPackage that is both the tile layer and the record of every "
        "tile's openEO batch job. Anchor 'aoi' starts at the area's lower-left corner (the tiles of openeo's "
        "split_area); 'global' aligns tiles to multiples of the tile size, so tile ids stay the same from one "
        "run to the next. With 'Use the polygons as tiles' the layer's polygons are the tiles."
    )

    AOI_LAYER = "AOI_LAYER"
    EXTENT = "EXTENT"
    POLYGONS_AS_TILES = "POLYGONS_AS_TILES"
    TILE_ID_FIELD = "TILE_ID_FIELD"
    TILE_SIZE = "TILE_SIZE"
    CRS = "CRS"
    ANCHOR = "ANCHOR"
    CLIP = "CLIP"
    MAX_TILES = "MAX_TILES"
    CONFIRM_MANY = "CONFIRM_MANY"
    OUTPUT = "OUTPUT"
    TILES = "TILES"
    TILE_COUNT = "TILE_COUNT"

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.AOI_LAYER,
                tr("Area of interest (polygon layer; selected features only if so chosen)"),
                [SOURCE_VECTOR_POLYGON],
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, tr("Area of interest (extent)"), optional=True))
        self.addParameter(
            QgsProcessingParameterBoolean(self.POLYGONS_AS_TILES, tr("Use the layer's polygons as tiles"), False)
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.TILE_ID_FIELD,
                tr("Tile id field (polygons as tiles)"),
                parentLayerParameterName=self.AOI_LAYER,
                optional=True,
            )
        )
        size = QgsProcessingParameterNumber(
            self.TILE_SIZE, tr("Tile size (metres)"), NUMBER_DOUBLE, 5000.0, minValue=0.001
        )
        self.addParameter(size)
        self.addParameter(
            QgsProcessingParameterCrs(self.CRS, tr("Tiling CRS (empty: UTM zone of the area)"), optional=True)
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.ANCHOR,
                tr("Grid anchor"),
                [tr("Lower-left corner of the area (like openeo split_area)"), tr("Global grid (stable tile ids)")],
                defaultValue=0,
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.CLIP, tr("Clip tiles to the area"), False))
        for parameter in (
            QgsProcessingParameterNumber(
                self.MAX_TILES,
                tr("Tile limit"),
                NUMBER_INTEGER,
                DEFAULT_MAX_TILES,
                minValue=1,
            ),
            QgsProcessingParameterBoolean(self.CONFIRM_MANY, tr("Allow more tiles than the limit"), False),
        ):
            parameter.setFlags(parameter.flags() | PARAMETER_ADVANCED)
            self.addParameter(parameter)
        self.addParameter(
            QgsProcessingParameterFileDestination(self.OUTPUT, tr("Job database"), tr("GeoPackage (*.gpkg)"))
        )
        self.addOutput(QgsProcessingOutputVectorLayer(self.TILES, tr("Tiles"), SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputNumber(self.TILE_COUNT, tr("Number of tiles")))

    def processAlgorithm(self, parameters, context, feedback):
        path = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not path.lower().endswith(".gpkg"):
            path += ".gpkg"
        tile_size = self.parameterAsDouble(parameters, self.TILE_SIZE, context)
        crs = self.parameterAsCrs(parameters, self.CRS, context)
        tiling_crs = crs_text(crs) if crs.isValid() else None
        anchor = ANCHORS[self.parameterAsEnum(parameters, self.ANCHOR, context)]
        clip = self.parameterAsBool(parameters, self.CLIP, context)
        max_tiles = self.parameterAsInt(parameters, self.MAX_TILES, context)
        confirm = self.parameterAsBool(parameters, self.CONFIRM_MANY, context)
        source = self.parameterAsSource(parameters, self.AOI_LAYER, context)
        as_tiles = self.parameterAsBool(parameters, self.POLYGONS_AS_TILES, context)
        options = dict(
            tile_size=tile_size, crs=tiling_crs, anchor=anchor, clip=clip, max_tiles=max_tiles, confirm_many=confirm
        )

        try:
            if source is not None:
                geometries, ids = [], []
                id_field = self.parameterAsString(parameters, self.TILE_ID_FIELD, context)
                request = QgsFeatureRequest().setSubsetOfAttributes([id_field] if id_field else [], source.fields())
                for feature in source.getFeatures(request):
                    if feedback.isCanceled():
                        return {}
                    if feature.hasGeometry():
                        geometries.append(feature.geometry())
                        ids.append(feature[id_field] if id_field else None)
                if not geometries:
                    raise QgsProcessingException(tr("The area-of-interest layer has no polygon."))
                source_crs = crs_text(source.sourceCrs())
                if as_tiles:
                    polygons = [shapely.from_wkt(g.asWkt()) for g in geometries]
                    grid = grid_from_polygons(
                        polygons,
                        crs=source_crs,
                        tile_ids=ids if id_field else None,
                        clip=clip,
                        max_tiles=max_tiles,
                        confirm_many=confirm,
                    )
                else:
                    grid = make_grid(
                        shapely.from_wkt(QgsGeometry.unaryUnion(geometries).asWkt()), aoi_crs=source_crs, **options
                    )
            else:
                extent = self.parameterAsExtent(parameters, self.EXTENT, context)
                if extent.isNull() or extent.isEmpty():
                    raise QgsProcessingException(tr("Give an area of interest: a polygon layer or an extent."))
                extent_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
                bbox = {
                    "west": extent.xMinimum(),
                    "south": extent.yMinimum(),
                    "east": extent.xMaximum(),
                    "north": extent.yMaximum(),
                    "crs": crs_text(extent_crs) if extent_crs.isValid() else (tiling_crs or "EPSG:4326"),
                }
                grid = make_grid(bbox, **options)
        except GridError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for message in grid.messages:
            feedback.pushWarning(message)
        feedback.setProgress(50)
        try:
            JobDB.create(path, grid, overwrite=True).close()
        except (JobDBError, OSError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(
            tr("{count} tiles of {size:g} m in {crs} written to {path}").format(
                count=len(grid), size=tile_size, crs=grid.crs, path=path
            )
        )
        feedback.setProgress(100)
        uri = tile_layer_uri(path)
        name = os.path.splitext(os.path.basename(path))[0]
        load_on_completion(context, uri, name, tile_post_processor(path), "tiles")
        return {self.OUTPUT: path, self.TILES: uri, self.TILE_COUNT: len(grid)}
