#!/usr/bin/env bash
# Build a Debian package of the frozen RadLens app (dist/RadLens, from `pyinstaller build.spec`).
#
#   .ci/build_deb.sh [DIST_DIR [OUT_DIR]]     ->  OUT_DIR/radlens_<version>_<arch>.deb
#
# Installs to /opt/radlens, /usr/bin/radlens (symlink), a desktop entry and icon (menu and
# file-manager double-click), and registers RadLens for DICOM (application/dicom, *.dcm and
# the DICM magic at offset 128, so extensionless DICOM files too), PNG and JPEG.
# Built with the standard Debian tools only (dpkg-deb); no root needed to build.
# Environment: DEB_COMPRESS (zstd|xz|gzip; default zstd: 20 s here, vs 6 min for xz -6, which
# makes an ~8% smaller file; zstd .debs need dpkg >= 1.21.18: Debian 12, Ubuntu 21.10 and newer),
# DEB_LEVEL (default zstd 10, xz 6, gzip 9).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIST=${1:-dist/RadLens}
OUT=${2:-dist}
[ -x "$DIST/RadLens" ] || { echo "build_deb: $DIST/RadLens not found; run 'pyinstaller --noconfirm build.spec' first" >&2; exit 2; }

VERSION=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -1)
ARCH=$(dpkg --print-architecture)
PKG=radlens
STAGE=build/deb/${PKG}_${VERSION}_${ARCH}
DEB=$OUT/${PKG}_${VERSION}_${ARCH}.deb

rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
  "$STAGE/usr/share/icons/hicolor/256x256/apps" "$STAGE/usr/share/icons/hicolor/scalable/apps" \
  "$STAGE/usr/share/mime/packages" "$STAGE/usr/share/doc/$PKG" "$OUT"

cp -a "$DIST" "$STAGE/opt/radlens"
find "$STAGE/opt/radlens" -name '__pycache__' -prune -exec rm -rf {} +
chmod -R u+rwX,go+rX,go-w "$STAGE/opt/radlens"
ln -s /opt/radlens/RadLens "$STAGE/usr/bin/radlens"
install -m 644 resources/icons/radlens.png "$STAGE/usr/share/icons/hicolor/256x256/apps/radlens.png"
install -m 644 resources/icons/radlens.svg "$STAGE/usr/share/icons/hicolor/scalable/apps/radlens.svg"

cat > "$STAGE/usr/share/applications/radlens.desktop" <<'EOF'
[Desktop Entry]
Type=Application
Version=1.4
Name=RadLens
GenericName=Chest Radiograph Viewer
Comment=View chest radiographs (DICOM, PNG, JPEG) with AI class probabilities and Grad-CAM. Research use only, not for diagnosis.
Exec=/opt/radlens/RadLens %F
TryExec=/opt/radlens/RadLens
Icon=radlens
Terminal=false
Categories=Science;MedicalSoftware;
MimeType=application/dicom;image/png;image/jpeg;
Keywords=DICOM;X-ray;radiograph;chest;AI;Grad-CAM;
StartupNotify=true
StartupWMClass=RadLens
EOF

cat > "$STAGE/usr/share/mime/packages/radlens-dicom.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="application/dicom">
    <comment>DICOM image</comment>
    <acronym>DICOM</acronym>
    <expanded-acronym>Digital Imaging and Communications in Medicine</expanded-acronym>
    <glob pattern="*.dcm"/>
    <glob pattern="*.dicom"/>
    <magic priority="60">
      <match type="string" value="DICM" offset="128"/>
    </magic>
  </mime-type>
</mime-info>
EOF

cat > "$STAGE/usr/share/doc/$PKG/copyright" <<'EOF'
RadLens: desktop viewer for chest radiographs with an ONNX classifier and Grad-CAM.
Research use only, not for diagnosis.

License: Apache-2.0 (see /usr/share/common-licenses/Apache-2.0).
The application folder /opt/radlens bundles Python, Qt (PySide6, LGPL-3.0), onnxruntime
(MIT), OpenCV (Apache-2.0), NumPy (BSD), pydicom (MIT) and the pylibjpeg plugins
(libjpeg: GPL-3.0; openjpeg: BSD-2-Clause; rle: MIT), each under its own licence.
The self-test radiograph /opt/radlens/_internal/resources/golden/golden.png is from
Kermany et al. 2018 (CC BY 4.0); the small DICOM files beside it are NEMA WG04 samples
as redistributed with pydicom's test data.
EOF

# Runtime libraries the bundle does not carry (PyInstaller leaves out libc, libGL/libEGL and
# libxcb; the Qt xcb platform plugin needs the xcb utility libraries). The offscreen
# self-test needs none of the X11 ones.
DEPENDS="libc6 (>= 2.36), libstdc++6, libgl1, libegl1, libfontconfig1, libfreetype6, libdbus-1-3, libglib2.0-0, \
libx11-6, libx11-xcb1, libxcb1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, \
libxcb-render-util0, libxcb-shape0, libxcb-shm0, libxcb-sync1, libxcb-xfixes0, libxcb-xkb1, libxkbcommon0, \
libxkbcommon-x11-0"
INSTALLED_KB=$(du -sk --apparent-size "$STAGE" | cut -f1)

cat > "$STAGE/DEBIAN/control" <<EOF
Package: $PKG
Version: $VERSION
Section: science
Priority: optional
Architecture: $ARCH
Maintainer: RadLens developers <radlens@example.org>
Installed-Size: $INSTALLED_KB
Depends: $DEPENDS
Suggests: desktop-file-utils, shared-mime-info, libgtk-3-bin
Homepage: https://example.org/radlens
Description: chest radiograph viewer with AI classification (research use only)
 RadLens shows chest radiographs (DICOM, PNG, JPEG) with correct grayscale display,
 runs an ONNX classifier on the local GPU (CUDA, with a visible CPU fallback) and
 shows class probabilities, a Grad-CAM heatmap and batch reports for study folders.
 .
 Research use only, not for diagnosis.
 .
 Check an installation with: radlens --self-test
EOF

cat > "$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-remove" ]; then
    if command -v update-mime-database >/dev/null 2>&1; then update-mime-database /usr/share/mime || true; fi
    if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database -q /usr/share/applications || true; fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1; then gtk-update-icon-cache -q -t -f /usr/share/icons/hicolor || true; fi
fi
exit 0
EOF

cat > "$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
case "$1" in
    remove|purge|abort-install|disappear)
        # Files the app may have created inside its own folder (none expected): the folder is ours alone.
        rm -rf /opt/radlens
        if command -v update-mime-database >/dev/null 2>&1; then update-mime-database /usr/share/mime || true; fi
        if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database -q /usr/share/applications || true; fi
        if command -v gtk-update-icon-cache >/dev/null 2>&1; then gtk-update-icon-cache -q -t -f /usr/share/icons/hicolor || true; fi
        ;;
esac
exit 0
EOF
chmod 755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/postrm"

COMP=${DEB_COMPRESS:-zstd}
case "$COMP" in
    xz) LEVEL=${DEB_LEVEL:-6} ;;
    zstd) LEVEL=${DEB_LEVEL:-10} ;;
    gzip) LEVEL=${DEB_LEVEL:-9} ;;
    *) echo "build_deb: DEB_COMPRESS must be xz, zstd or gzip" >&2; exit 2 ;;
esac
rm -f "$DEB"
dpkg-deb --root-owner-group -Z"$COMP" -z"$LEVEL" --build "$STAGE" "$DEB" >/dev/null
rm -rf "$STAGE"
echo "built $ROOT/$DEB ($(du -h "$DEB" | cut -f1), installed size $((INSTALLED_KB / 1024)) MiB, $COMP -$LEVEL)"
