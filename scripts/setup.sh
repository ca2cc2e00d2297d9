#!/usr/bin/env bash
# Idempotent setup used by `make test`, `make demo` and .ci/run, on Debian 12 (QGIS 3.22),
# Debian 13 (3.40) and forky (3.44): Debian packages, the .venv, the requirements at the versions
# of constraints.txt plus the system's own numpy where QGIS is built on numpy 2, and the import
# name. A second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEB_PACKAGES=(python3-qgis qgis python3-venv xvfb xauth openbox)
VENV=.venv
REQUIREMENT_FILES=(requirements.txt requirements-dev.txt requirements-local-backend.txt constraints.txt)

# 1. Debian packages ------------------------------------------------------
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The virtual environment (system site packages, so `import qgis` works) -
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi

# 3. Requirements, installed again only when a file or the system's numpy changed --
# QGIS's GDAL bindings are built against the system's numpy: where that is numpy 2 (Debian 13 and
# later) the venv keeps exactly that numpy; Debian 12's numpy 1 is pinned in constraints.txt.
system_numpy=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
system_constraints="$VENV/system-constraints.txt"
stamp="$VENV/.requirements.sha256"
wanted=$( (cat "${REQUIREMENT_FILES[@]}"; echo "numpy $system_numpy") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing Python requirements (system numpy: ${system_numpy:-none})"
  : > "$system_constraints"
  case "$system_numpy" in [2-9].*) echo "numpy==$system_numpy" > "$system_constraints" ;; esac
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  args=(-c constraints.txt -c "$system_constraints")
  for f in requirements.txt requirements-dev.txt requirements-local-backend.txt; do args+=(-r "$f"); done
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${args[@]}"
  echo "$wanted" > "$stamp"
fi

# 4. Import the checkout as `openeo_tile_jobs`, whatever its folder is called -
pkgroot="$VENV/pkgroot"
if [ "$(readlink "$pkgroot/openeo_tile_jobs" 2>/dev/null)" != "$ROOT" ]; then
  mkdir -p "$pkgroot"
  ln -sfn "$ROOT" "$pkgroot/openeo_tile_jobs"
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$ROOT/$pkgroot" > "$site/openeo_tile_jobs_checkout.pth"
fi
echo "setup: ready"
