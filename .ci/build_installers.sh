#!/usr/bin/env bash
# Build and check the installers (Linux): the frozen app and its self-test, the .deb, its
# installation, the installed app's self-test, and its clean removal.
#
#   bash .ci/build_installers.sh        (as root on Debian 12 for the install steps; run from anywhere)
#
# Needs the project venv with the build extra (`pip install -e ".[gui,build]"`) and the
# default model in resources/models/. Prints the bundle size, the .deb size and the frozen
# app's start-up time to a shown main window. Environment: PYTHON (default .venv/bin/python),
# SKIP_INSTALL=1 to stop after building the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
T_ALL=$SECONDS
step() { echo; echo "== $* ($((SECONDS - T_ALL)) s)"; }
fail() { echo "build_installers: FAILED: $*" >&2; exit 1; }
# The self-tests must use the bundled model and no display, whatever this shell has set.
headless() { env -u DISPLAY -u WAYLAND_DISPLAY -u RADLENS_MODEL QT_QPA_PLATFORM=offscreen "$@"; }

step "checks"
ls resources/models/*.onnx >/dev/null 2>&1 || fail "no model in resources/models/: train or copy the default model first"
[ -f resources/golden/expected.json ] || fail "resources/golden/expected.json missing: run '$PY -m desktop.selftest --write-expected'"
"$PY" -m PyInstaller --version >/dev/null 2>&1 || fail "PyInstaller is not installed: pip install -e '.[build]'"
echo "python $("$PY" -c 'import sys; print(sys.version.split()[0])'), PyInstaller $("$PY" -m PyInstaller --version)"

step "source self-test (the expected results match the bundled model)"
headless "$PY" -m desktop --self-test || fail "self-test fails from the source tree: if the model changed, run '$PY -m desktop.selftest --write-expected'"

step "PyInstaller build"
t0=$SECONDS
"$PY" -m PyInstaller --noconfirm --log-level WARN build.spec 2>&1 | grep -v -E "Library not found: could not resolve '(libcu|libnv|libcudnn|libgtk-3|libgdk-3|libwayland-(cursor|egl)|libxcb-(icccm|keysyms))" || true
[ -x dist/RadLens/RadLens ] || fail "PyInstaller did not produce dist/RadLens/RadLens"
BUILD_S=$((SECONDS - t0))
BUNDLE=$(du -sh dist/RadLens | cut -f1)
echo "built dist/RadLens in ${BUILD_S} s: $BUNDLE"

step "frozen app self-test"
(cd /tmp && headless timeout 180 "$ROOT/dist/RadLens/RadLens" --self-test) || fail "frozen app self-test"

step "frozen app start-up time to a shown main window with the model loaded (offscreen)"
if [ "$(id -u)" = 0 ] && sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
  echo "(page cache dropped: the first run is a cold start)"
else
  echo "(page cache could not be dropped: the first run reads files the build just wrote)"
fi
for i in 1 2 3; do
  (cd /tmp && headless timeout 60 "$ROOT/dist/RadLens/RadLens" --startup-time 2>/dev/null) || echo "start-up run $i failed"
done

step ".deb package"
t0=$SECONDS
bash .ci/build_deb.sh dist/RadLens dist
DEB=$(ls -t dist/radlens_*.deb | head -1)
DEB_S=$((SECONDS - t0))
DEB_SIZE=$(du -h "$DEB" | cut -f1)
dpkg-deb -f "$DEB" Package Version Architecture Depends
CONTENTS=$(dpkg-deb -c "$DEB")
for p in ./opt/radlens/RadLens ./usr/bin/radlens ./usr/share/applications/radlens.desktop \
         ./usr/share/icons/hicolor/256x256/apps/radlens.png ./usr/share/mime/packages/radlens-dicom.xml \
         ./opt/radlens/_internal/resources/golden/expected.json; do
  grep -q " $p\( \|$\)" <<<"$CONTENTS" || fail "$DEB lacks $p"
done
echo "$DEB: $(wc -l <<<"$CONTENTS") entries, layout checked"

if [ "${SKIP_INSTALL:-0}" = 1 ]; then
  echo "SKIP_INSTALL=1: not installing"
elif [ "$(id -u)" != 0 ]; then
  echo "not root: skipping the install/remove checks (run as root to do them)"
else
  step "install the .deb"
  dpkg -s radlens >/dev/null 2>&1 && dpkg -P radlens >/dev/null
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$ROOT/$DEB" >/tmp/radlens-apt.log 2>&1; then
    echo "apt-get install failed (see below); updating the package lists and retrying"
    tail -5 /tmp/radlens-apt.log
    apt-get update -q >/dev/null 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$ROOT/$DEB" >/tmp/radlens-apt.log 2>&1; then
      tail -5 /tmp/radlens-apt.log
      echo "WARNING: the package's dependencies (X11/xcb libraries for the desktop window) could not be installed;"
      echo "WARNING: installing with --force-depends to check the offscreen self-test and the removal anyway."
      dpkg --force-depends -i "$DEB"
    fi
  fi
  dpkg -s radlens | grep -E "^(Status|Version):"
  for p in /opt/radlens/RadLens /usr/share/applications/radlens.desktop /usr/share/icons/hicolor/256x256/apps/radlens.png \
           /usr/share/mime/packages/radlens-dicom.xml; do
    [ -e "$p" ] || fail "installed package lacks $p"
  done
  [ "$(readlink /usr/bin/radlens)" = /opt/radlens/RadLens ] || fail "/usr/bin/radlens is not a link to /opt/radlens/RadLens"
  if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate /usr/share/applications/radlens.desktop || fail "desktop entry invalid"
    echo "desktop entry valid"
  fi
  if [ -f /usr/share/mime/application/dicom.xml ]; then echo "MIME database knows application/dicom"; fi

  step "installed app self-test (/usr/bin/radlens --self-test)"
  (cd / && headless timeout 180 /usr/bin/radlens --self-test) || fail "installed app self-test"

  step "remove the package"
  dpkg -r radlens >/dev/null
  dpkg -P radlens >/dev/null 2>&1 || true
  for p in /opt/radlens /usr/bin/radlens /usr/share/applications/radlens.desktop \
           /usr/share/icons/hicolor/256x256/apps/radlens.png /usr/share/icons/hicolor/scalable/apps/radlens.svg \
           /usr/share/mime/packages/radlens-dicom.xml; do
    if [ -e "$p" ] || [ -L "$p" ]; then fail "$p is still there after dpkg -r radlens"; fi
  done
  if dpkg -s radlens >/dev/null 2>&1; then fail "dpkg still lists radlens: $(dpkg -s radlens | grep Status)"; fi
  echo "removed cleanly: /opt/radlens, the launcher link, desktop entry, icons and MIME file are gone"
fi

step "summary"
echo "bundle dist/RadLens: $BUNDLE (PyInstaller ${BUILD_S} s)"
echo "package $DEB: $DEB_SIZE (built in ${DEB_S} s)"
echo "installers done in $((SECONDS - T_ALL)) s"
