"""Which files of a retrieved or received study the viewer opens, and in which order:
those that hold an image, originals before derived ones (RadLens's own heatmap captures),
by series and instance number. Reports (SR) and other objects without pixels are left in
the cache, not shown."""

from __future__ import annotations

import pydicom


def _number(ds: object, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return 0


def viewable(paths: list[str]) -> tuple[list[str], int]:
    """The retrieved files that hold an image, originals first (then derived ones such as a
    heatmap capture), by series and instance number; and how many hold none (a report)."""
    keyed = []
    others = 0
    for p in paths:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - unreadable now: the viewer will say so when it opens it
            keyed.append(((1, 0, 0), p))
            continue
        if "Rows" not in ds:
            others += 1
            continue
        derived = "DERIVED" in [str(v).upper() for v in (ds.get("ImageType") or [])]
        keyed.append(((int(derived), _number(ds, "SeriesNumber"), _number(ds, "InstanceNumber")), p))
    return [p for _, p in sorted(keyed, key=lambda kp: kp[0])], others
