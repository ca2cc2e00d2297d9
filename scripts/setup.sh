#!/usr/bin/env bash
# Idempotent setup used by `make test`, `make demo` and .ci/run:
# Debian packages, the .venv, the pinned requirements, and the import name.
# A second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEB_PACKAGES=(python3-qgis qgis python3-venv xvfb xauth openbox)
VENV=.venv
REQUIREMENT_FILES=(requirements.txt requirements-dev.txt requirements-local-backend.txt)

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

# 3. Pinned requirements, installed again only when a file changed ----------
stamp="$VENV/.requirements.sha256"
wanted=$(cat "${REQUIREMENT_FILES[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing Python requirements"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  args=()
  for f in "${REQUIREMENT_FILES[@]}"; do args+=(-r "$f"); done
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
