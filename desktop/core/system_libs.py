"""Before Qt starts on Linux/X11: are the system libraries its xcb platform plugin needs
there? Without them Qt aborts with "xcb-cursor0 or libxcb-cursor0 is needed to load the
Qt xcb platform plugin" and a core dump; RadLens says it in plain words instead, naming
the packages to install, and exits with an error status.

Each library is looked up the way Qt's plugin will load it (``ctypes.CDLL`` by its
soname), so what is reported missing is what would make Qt fail.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterable, Mapping

# soname -> Debian/Ubuntu package (PySide6's libqxcb.so and libQt6XcbQpa links, less the base system's)
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-util.so.1": "libxcb-util1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libfontconfig.so.1": "libfontconfig1",
}
USUAL_PACKAGES = ("libxcb-cursor0", "libxkbcommon-x11-0", "libegl1")  # what a bare Debian lacks


def uses_xcb(platform: str = sys.platform, env: Mapping[str, str] = os.environ) -> bool:
    """Whether Qt will start its xcb (X11) platform plugin: Linux, and QT_QPA_PLATFORM
    unset (no Wayland session) or naming xcb."""
    if not platform.startswith("linux"):
        return False
    qpa = env.get("QT_QPA_PLATFORM", "").strip()
    if qpa:
        return qpa.split(";")[0].split(":")[0].strip() == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries(sonames: Iterable[str] = XCB_LIBRARIES, loadable: Callable[[str], bool] = _loadable) -> list[str]:
    """The sonames that cannot be loaded on this system."""
    return [s for s in sonames if not loadable(s)]


def missing_message(missing: Iterable[str], packages: Mapping[str, str] = XCB_LIBRARIES) -> str:
    """What to tell the user: which libraries, which packages (``packages``: soname -> package),
    the command."""
    missing = list(missing)
    need = sorted({packages.get(s, s) for s in missing} | set(USUAL_PACKAGES))
    libs = ", ".join(f"{s} (package {packages[s]})" if s in packages else s for s in missing)
    return (
        "RadLens cannot open its window: system libraries Qt needs are missing: "
        f"{libs}.\n\nInstall them (Debian, Ubuntu) and start RadLens again:\n\n"
        f"    sudo apt-get install {' '.join(need)}\n\n"
        "(Fedora: sudo dnf install xcb-util-cursor libxkbcommon-x11 mesa-libEGL mesa-libGL.) Batch analysis needs "
        "no window and works now: radlens-batch FOLDER -o report.csv"
    )


def check_xcb(platform: str = sys.platform, env: Mapping[str, str] = os.environ) -> str:
    """"" when Qt can start here (or does not use xcb), else the message for the user."""
    if not uses_xcb(platform, env):
        return ""
    missing = missing_libraries()
    return missing_message(missing) if missing else ""
