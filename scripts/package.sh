#!/usr/bin/env bash
# Build dist/openeo_tile_jobs-<version>.zip for QGIS's "Install from ZIP":
# the plugin folder openeo_tile_jobs/ without tests, benchmarks or dev files.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version=//p' metadata.txt)
stage=build/package
rm -rf "$stage" && mkdir -p "$stage/openeo_tile_jobs" dist
# Only what git tracks, minus what users do not need.
git ls-files -z | grep -zvE '^(tests|benchmarks|scripts|\.ci|docs)/|^(Makefile|pyproject\.toml|requirements-dev\.txt|\.gitignore)$' \
  | xargs -0 -I{} cp --parents {} "$stage/openeo_tile_jobs/"
zip_path="dist/openeo_tile_jobs-$version.zip"
rm -f "$zip_path"
(cd "$stage" && "$OLDPWD/.venv/bin/python" -m zipfile -c "$OLDPWD/$zip_path" openeo_tile_jobs)
echo "package: $zip_path"
