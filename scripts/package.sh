#!/usr/bin/env bash
# Build openeo_tile_jobs-<version>.zip for QGIS's "Install from ZIP" (in dist/, or the folder given):
# the plugin folder openeo_tile_jobs/ with what git tracks, without tests, benchmarks, the demo
# or dev files.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$(realpath -m "${1:-dist}")
version=$(sed -n 's/^version=//p' metadata.txt)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/openeo_tile_jobs" "$out"
# Only what git tracks, minus what users do not need.
git ls-files -z | grep -zvE '^(tests|benchmarks|scripts|demo|\.ci|docs)/|^(Makefile|pyproject\.toml|requirements-dev\.txt|constraints\.txt|\.gitignore)$' \
  | xargs -0 -I{} cp --parents {} "$stage/openeo_tile_jobs/"
zip_path="$out/openeo_tile_jobs-$version.zip"
rm -f "$zip_path"
(cd "$stage" && "$root/.venv/bin/python" -m zipfile -c "$zip_path" openeo_tile_jobs)
echo "package: ${zip_path#"$root"/}"
