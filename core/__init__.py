"""The engine of openEO Tile Jobs: plain Python, imports neither qgis nor PyQt."""
