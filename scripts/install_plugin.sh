#!/usr/bin/env bash
# Link this checkout into the QGIS profile's plugin folder as openeo_tile_jobs and
# enable it there. QGIS_CUSTOM_CONFIG_PATH selects another QGIS settings folder
# (the profile is then $QGIS_CUSTOM_CONFIG_PATH/profiles/default).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${QGIS_CUSTOM_CONFIG_PATH:-$HOME/.local/share/QGIS/QGIS3}
plugins="$base/profiles/default/python/plugins"
mkdir -p "$plugins"
ln -sfn "$(pwd)" "$plugins/openeo_tile_jobs"
QT_QPA_PLATFORM=offscreen QGIS_CUSTOM_CONFIG_PATH="$base" qgis_process.bin plugins enable openeo_tile_jobs >/dev/null
echo "install-plugin: linked into $plugins and enabled"
