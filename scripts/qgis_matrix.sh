#!/usr/bin/env bash
# make test-qgis QGIS=3.40|3.44 [PYTEST_ARGS=...]: run the same `make test` in a Debian root that ships
# that QGIS (trixie: 3.40, forky: 3.44). The root is built once with debootstrap and kept under
# $MATRIX_CACHE (outside the clone); later runs only copy the checkout in and run the suite.
# Needs root (debootstrap, chroot, mounts). Everything mounted is unmounted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
QGIS_VERSION=${1:?usage: [PYTEST_ARGS=...] qgis_matrix.sh 3.40|3.44}
case "$QGIS_VERSION" in
  3.40) SUITE=trixie; SCRIPT=trixie ;;
  3.44) SUITE=forky; SCRIPT=sid ;;  # bookworm's debootstrap has no forky script; sid's works for it
  *) echo "test-qgis: QGIS=$QGIS_VERSION is not in the matrix (3.40 or 3.44)" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "test-qgis: needs root (debootstrap, chroot)" >&2; exit 2; }
CACHE=${MATRIX_CACHE:-/var/cache/openeo-tile-jobs}
ROOT=$CACHE/$SUITE
# Testing's Release file can be past its Valid-Until on a mirror snapshot.
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0)

# The Debian mirror apt already uses on this machine (deb822 or one-line sources).
mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  [ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  [ -n "$uri" ] || { echo "test-qgis: no Debian mirror found in /etc/apt" >&2; exit 2; }
  echo "$uri"
}

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

mount_root() {
  mountpoint -q "$ROOT/proc" || { mount -t proc proc "$ROOT/proc"; mounted+=("$ROOT/proc"); }
  mountpoint -q "$ROOT/dev" || { mount --bind /dev "$ROOT/dev"; mounted+=("$ROOT/dev"); }
  mountpoint -q "$ROOT/dev/pts" || { mount --bind /dev/pts "$ROOT/dev/pts"; mounted+=("$ROOT/dev/pts"); }
  mkdir -p "$ROOT/dev/shm"
  mountpoint -q "$ROOT/dev/shm" || { mount -t tmpfs shm "$ROOT/dev/shm"; mounted+=("$ROOT/dev/shm"); }
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
}

build_root() {
  local uri
  uri=$(mirror)
  command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
  echo "test-qgis: building the $SUITE root in $ROOT (once)"
  rm -rf "$ROOT.partial"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include=ca-certificates,python3,python3-venv,make,git \
    "$SUITE" "$ROOT.partial" "$uri" "/usr/share/debootstrap/scripts/$SCRIPT" >"$CACHE/$SUITE.debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/$SUITE.debootstrap.log" >&2; exit 1; }
  echo 'APT::Get::Check-Valid-Until "false"; Acquire::Check-Valid-Until "false";' \
    >"$ROOT.partial/etc/apt/apt.conf.d/99no-valid-until"
  mv "$ROOT.partial" "$ROOT"
}

[ -x "$ROOT/usr/bin/python3" ] || build_root
[ "${MATRIX_BUILD_ONLY:-0}" = 1 ] && exit 0
mount_root

# The checkout as it is (tracked and untracked, not ignored), over the root's copy; the copy's
# .venv is kept so a second run only checks it.
DEST=$ROOT/work/openeo_tile_jobs
mkdir -p "$DEST"
find "$DEST" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
git ls-files -co --exclude-standard -z | tar --null -cf - -T - | tar -xf - -C "$DEST"
# A git index of the copy, for what asks git which files are the project's (scripts/package.sh).
[ -d "$DEST/.git" ] || git -C "$DEST" init -q
git -C "$DEST" add -A

# MATRIX_COMMAND runs something else than the suite in the checkout's copy (e.g. a shell for a closer look).
COMMAND=${MATRIX_COMMAND:-make test PYTEST_ARGS=\"\$PYTEST_ARGS\"}
echo "test-qgis: QGIS $QGIS_VERSION ($SUITE): $COMMAND"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive PYTEST_ARGS="${PYTEST_ARGS:-}" CI="${CI:-}" \
  bash -c "cd /work/openeo_tile_jobs && $COMMAND"
