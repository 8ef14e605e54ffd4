"""Regenerate the RadLens icons: radlens.svg (the source), radlens.png (256 px), radlens.ico
(Windows: 16-256 px PNG entries) and radlens.icns (macOS: 128-512 px PNG entries).

    python resources/icons/make_icons.py

The SVG is rendered with Qt's SVG renderer (PySide6-Essentials); the ICO and ICNS
containers are written by hand around PNG images, which both formats accept.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# A dark rounded tile; two lung fields drawn as soft light lobes; a trachea; a lens ring
# with a handle in the accent colour over the right lung.
SVG = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#1d3557"/>
      <stop offset="1" stop-color="#0b1a2e"/>
    </linearGradient>
    <linearGradient id="lung" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#f1f5f9"/>
      <stop offset="1" stop-color="#aab8c8"/>
    </linearGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="48" ry="48" fill="url(#bg)"/>
  <rect x="121" y="36" width="14" height="50" rx="7" fill="#cbd5e1"/>
  <path d="M114 70 C 96 70, 62 104, 52 150 C 46 186, 56 214, 86 212 C 106 210, 114 196, 114 176 Z"
        fill="url(#lung)" opacity="0.95"/>
  <path d="M142 70 C 160 70, 194 104, 204 150 C 210 186, 200 214, 170 212 C 150 210, 142 196, 142 176 Z"
        fill="url(#lung)" opacity="0.95"/>
  <line x1="186" y1="186" x2="226" y2="226" stroke="#f59e0b" stroke-width="18" stroke-linecap="round"/>
  <circle cx="160" cy="160" r="40" fill="#f59e0b" fill-opacity="0.22" stroke="#f59e0b" stroke-width="12"/>
</svg>
"""


def render_png(svg: bytes, size: int) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - needed for QPainter
    renderer = QSvgRenderer(QByteArray(svg))
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(p)
    p.end()
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    img.save(buf, "PNG")
    return bytes(buf.data())


def ico(pngs: dict[int, bytes]) -> bytes:
    """ICONDIR (6 bytes) + one ICONDIRENTRY (16 bytes) per image + the PNG data."""
    sizes = sorted(pngs)
    out = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    body = b""
    for s in sizes:
        data = pngs[s]
        dim = 0 if s >= 256 else s  # 0 means 256
        out += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        body += data
    return out + body


def icns(pngs: dict[int, bytes]) -> bytes:
    """'icns' + length, then (OSType, length, PNG) entries: ic07 128, ic08 256, ic09 512."""
    types = {128: b"ic07", 256: b"ic08", 512: b"ic09"}
    body = b"".join(types[s] + struct.pack(">I", 8 + len(pngs[s])) + pngs[s] for s in sorted(types) if s in pngs)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    svg = SVG.encode()
    (HERE / "radlens.svg").write_bytes(svg)
    pngs = {s: render_png(svg, s) for s in (16, 24, 32, 48, 64, 128, 256, 512)}
    (HERE / "radlens.png").write_bytes(pngs[256])
    (HERE / "radlens.ico").write_bytes(ico({s: pngs[s] for s in (16, 24, 32, 48, 64, 128, 256)}))
    (HERE / "radlens.icns").write_bytes(icns(pngs))
    for name in ("radlens.svg", "radlens.png", "radlens.ico", "radlens.icns"):
        print(f"{name}: {(HERE / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
