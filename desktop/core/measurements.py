"""Measurements on an image, Qt-free: calibration (which spacing, and what its lengths
mean), geometry (distance, angle, Cobb angle) and the label each one shows.

API (for exporters and the viewer)::

    store = MeasurementStore()                  # one per window; ``MeasureController.store``
    store.for_path(path) -> list[Measurement]   # the image's measurements, in drawing order
    m.kind                                      # "distance", "angle" or "cobb"
    m.points                                    # [(x, y), ...] in source image pixels (pixel centres at +0.5)
    m.value(cal), m.label(cal)                  # number (mm, px or degrees) and its text, e.g.
                                                # "41.2 mm (at detector, magnification not corrected)"
    store.calibration(path) -> Calibration      # the spacing the image's lengths use
    calibration_for(meta) -> Calibration        # from an ``engine.ImageMeta``

The scene items drawing them are ``desktop.viewer.measure_tools.MeasurementItem`` children of the
image item of ``ImageView``, so rendering the view's scene draws them too.

Which spacing (DICOM PS3.3 10.7.1.1, C.8.11.7): Imager Pixel Spacing (0018,1164) is measured
at the front of the detector, so lengths from it include the geometric magnification of the
beam (about 1.1x for a PA chest). Pixel Spacing (0028,0030) is "in the patient" only when it
has been corrected or calibrated: the same value as Imager Pixel Spacing means it was not;
a different value, or a Pixel Spacing Calibration Type (0028,0A02, GEOMETRY or FIDUCIAL),
means it was; on a projection radiograph with neither, it cannot be told. Cross-sectional
modalities (CT, MR, ...) state Pixel Spacing in the patient. An Estimated Radiographic
Magnification Factor (0018,1114) is reported, never applied silently. Row spacing (the
first value) is the vertical distance between rows; column spacing the horizontal one.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from engine import ImageMeta

Point = tuple[float, float]
KINDS = ("distance", "angle", "cobb")
POINTS_NEEDED = {"distance": 2, "angle": 3, "cobb": 4}
PROJECTION_MODALITIES = frozenset({"CR", "DX", "RG", "MG", "IO", "PX", "XA", "RF", "DF"})

AT_DETECTOR = "at detector, magnification not corrected"
UNCALIBRATED = "uncalibrated"
UNKNOWN_CORRECTION = "magnification correction unknown"
CORRECTED = "corrected for magnification"
CALIBRATION_TYPES = {"GEOMETRY": "corrected for magnification (geometry)",
                     "FIDUCIAL": "calibrated to a fiducial of known size"}


@dataclass(frozen=True)
class Calibration:
    """How an image's pixel distances become lengths.

    ``row_mm``/``col_mm``: spacing between rows (vertical) and columns (horizontal) in mm,
    None when uncalibrated (lengths in pixels). ``qualifier``: what the lengths mean, shown
    after each one ("" for a plain physical spacing). ``source``: which element, for tooltips."""

    row_mm: float | None = None
    col_mm: float | None = None
    qualifier: str = UNCALIBRATED
    source: str = "no pixel spacing in the file"

    @property
    def calibrated(self) -> bool:
        return self.row_mm is not None and self.col_mm is not None

    @property
    def unit(self) -> str:
        return "mm" if self.calibrated else "px"

    def scale(self) -> tuple[float, float]:
        """(x, y) length of one pixel step in the calibration's unit."""
        return (self.col_mm, self.row_mm) if self.calibrated else (1.0, 1.0)  # type: ignore[return-value]


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


def calibration_for(meta: ImageMeta | None) -> Calibration:
    """The calibration PS3.3 gives an image's lengths (see the module docstring)."""
    if meta is None:
        return Calibration()
    ps, ips = meta.pixel_spacing, meta.imager_pixel_spacing
    ermf = meta.magnification_factor
    ermf_note = f"; the file estimates the magnification at {ermf:.3g}x (not applied)" if ermf else ""
    projection = meta.modality.upper() in PROJECTION_MODALITIES or ips is not None
    if ps is not None:
        source = f"Pixel Spacing (0028,0030) {ps[0]:g}\\{ps[1]:g} mm"
        ctype = meta.spacing_calibration_type.upper()
        if ctype in CALIBRATION_TYPES:
            qualifier = CALIBRATION_TYPES[ctype]
        elif ips is not None:
            qualifier = AT_DETECTOR if _same(ps, ips) else CORRECTED
            source += f", Imager Pixel Spacing (0018,1164) {ips[0]:g}\\{ips[1]:g} mm"
        elif projection:
            qualifier = UNKNOWN_CORRECTION
        else:
            qualifier = ""
        if qualifier in (AT_DETECTOR, UNKNOWN_CORRECTION):
            source += ermf_note
        return Calibration(ps[0], ps[1], qualifier, source)
    if ips is not None:
        return Calibration(ips[0], ips[1], AT_DETECTOR,
                           f"Imager Pixel Spacing (0018,1164) {ips[0]:g}\\{ips[1]:g} mm{ermf_note}")
    return Calibration()


# -- geometry ------------------------------------------------------------------------------
def _vec(a: Point, b: Point, cal: Calibration) -> tuple[float, float]:
    sx, sy = cal.scale()
    return (b[0] - a[0]) * sx, (b[1] - a[1]) * sy


def distance(a: Point, b: Point, cal: Calibration) -> float:
    """Length from ``a`` to ``b`` (source pixels) in mm, or in pixels when uncalibrated.
    x steps use the column spacing, y steps the row spacing."""
    dx, dy = _vec(a, b, cal)
    return math.hypot(dx, dy)


def _angle_between(u: tuple[float, float], v: tuple[float, float]) -> float:
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return 0.0
    c = (u[0] * v[0] + u[1] * v[1]) / (nu * nv)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def angle(a: Point, vertex: Point, b: Point, cal: Calibration | None = None) -> float:
    """The angle at ``vertex`` between the arms to ``a`` and ``b``, 0..180 degrees, in
    physical space (non-square pixels are taken into account)."""
    cal = cal or Calibration()
    return _angle_between(_vec(vertex, a, cal), _vec(vertex, b, cal))


def cobb(a1: Point, a2: Point, b1: Point, b2: Point, cal: Calibration | None = None) -> float:
    """The Cobb angle: the angle between line a1-a2 and line b1-b2, 0..90 degrees (the
    lines have no direction, so the acute angle between them)."""
    cal = cal or Calibration()
    theta = _angle_between(_vec(a1, a2, cal), _vec(b1, b2, cal))
    return min(theta, 180.0 - theta)


# -- measurements and their store ----------------------------------------------------------
_ids = itertools.count(1)


@dataclass(eq=False)
class Measurement:
    """One measurement on one image. ``points`` in source image pixels: distance (a, b),
    angle (arm end, vertex, arm end), cobb (line 1 end, end, line 2 end, end)."""

    kind: str
    points: list[Point]
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown measurement kind {self.kind!r} (one of {', '.join(KINDS)})")
        self.points = [(float(x), float(y)) for x, y in self.points]

    @property
    def complete(self) -> bool:
        return len(self.points) >= POINTS_NEEDED[self.kind]

    def value(self, cal: Calibration) -> float | None:
        """Length (mm or px) or angle (degrees); None until it has all its points."""
        p = self.points
        if not self.complete:
            return None
        if self.kind == "distance":
            return distance(p[0], p[1], cal)
        if self.kind == "angle":
            return angle(p[0], p[1], p[2], cal)
        return cobb(p[0], p[1], p[2], p[3], cal)

    def label(self, cal: Calibration) -> str:
        """The text drawn beside it: "41.2 mm", "41.2 mm (at detector, magnification not
        corrected)", "318.0 px (uncalibrated)", "37.5°", "Cobb 23.4°"."""
        v = self.value(cal)
        if v is None:
            return ""
        if self.kind == "distance":
            text = f"{v:.1f} {cal.unit}"
            return f"{text} ({cal.qualifier})" if cal.qualifier else text
        return f"Cobb {v:.1f}°" if self.kind == "cobb" else f"{v:.1f}°"

    def moved(self, dx: float, dy: float) -> None:
        self.points = [(x + dx, y + dy) for x, y in self.points]


class MeasurementStore:
    """Measurements per image path, kept while the app runs (in memory only)."""

    def __init__(self) -> None:
        self._by_path: dict[str, list[Measurement]] = {}
        self._cal: dict[str, Calibration] = {}

    def for_path(self, path: str) -> list[Measurement]:
        """The image's measurements (a copy of the list; the measurements themselves)."""
        return list(self._by_path.get(path, ()))

    def add(self, path: str, m: Measurement) -> Measurement:
        self._by_path.setdefault(path, []).append(m)
        return m

    def remove(self, path: str, m: Measurement) -> None:
        items = self._by_path.get(path, [])
        if m in items:
            items.remove(m)
        if not items:
            self._by_path.pop(path, None)

    def clear(self, path: str) -> int:
        """Remove every measurement of the image; returns how many there were."""
        return len(self._by_path.pop(path, []))

    def paths(self) -> list[str]:
        return [p for p, items in self._by_path.items() if items]

    def set_calibration(self, path: str, cal: Calibration) -> None:
        self._cal[path] = cal

    def calibration(self, path: str) -> Calibration:
        return self._cal.get(path, Calibration())

    def labels(self, path: str) -> list[str]:
        """Every measurement's label on the image, in drawing order (for reports)."""
        cal = self.calibration(path)
        return [m.label(cal) for m in self.for_path(path)]
