"""The corner text's lines, Qt-free: what a radiologist reads at the corners of the image.

Top left: patient name, ID, age and sex (only when the user enables identifiers; the same
rows the tag viewer highlights as identifying), modality and view, study date. Top right:
image size and pixel spacing with what its lengths mean. Bottom right: window/level, zoom,
the model's call (worded as the analysis dock words it) and the notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine import DISCLAIMER, ImageMeta, Prediction
from engine.io.image import TagRow

from .measurements import calibration_for
from .messages import call_text

PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientAge", "PatientSex")


@dataclass(frozen=True)
class CornerLines:
    top_left: tuple[str, ...] = ()
    top_right: tuple[str, ...] = ()
    bottom_right: tuple[str, ...] = ()

    def all(self) -> tuple[str, ...]:
        return self.top_left + self.top_right + self.bottom_right


def dicom_date(value: str) -> str:
    """YYYYMMDD -> YYYY-MM-DD; anything else as it is."""
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def identifying_values(tags: Sequence[TagRow], meta: ImageMeta | None = None) -> dict[str, str]:
    """Patient name, ID, age and sex from the rows the tag viewer marks as identifying
    (top level only); name and ID fall back to the image's identifiers."""
    out = {r.keyword: r.value.strip() for r in tags
           if r.depth == 0 and r.identifying and r.keyword in PATIENT_KEYWORDS and r.value.strip()}
    if meta is not None:
        out.setdefault("PatientName", meta.identifiers.patient_name.strip())
        out.setdefault("PatientID", meta.identifiers.patient_id.strip())
    return {k: v for k, v in out.items() if v}


def patient_lines(values: dict[str, str]) -> tuple[str, ...]:
    lines = []
    if values.get("PatientName"):
        lines.append(values["PatientName"].replace("^", " ").strip())
    if values.get("PatientID"):
        lines.append(f"ID {values['PatientID']}")
    age = values.get("PatientAge", "").lstrip("0") or ("0" if values.get("PatientAge") else "")
    sex = values.get("PatientSex", "")
    if age or sex:
        lines.append(" ".join(x for x in (f"Age {age}" if age else "", f"Sex {sex}" if sex else "") if x))
    return tuple(lines)


def ai_line(prediction: Prediction | None, status: str = "") -> str:
    """The model's call as the analysis dock words it, or ``status`` ("analysing…",
    "analysis failed") when there is no prediction."""
    if prediction is None:
        return f"AI: {status}" if status else ""
    if not prediction.in_scope:
        return "AI: not analysed (out of scope)"
    return "AI: " + call_text(prediction.call, prediction.top_prob, prediction.flags)


def corner_lines(meta: ImageMeta | None, tags: Sequence[TagRow] = (), *, window: str = "", zoom: float | None = None,
                 ai: str = "", identifiers: bool = False) -> CornerLines:
    """Every corner's lines for the image shown; ``meta`` None (no image, an error): none."""
    if meta is None:
        return CornerLines()
    top_left = patient_lines(identifying_values(tags, meta)) if identifiers else ()
    what = " ".join(x for x in (meta.modality or meta.format.upper(), meta.view_position) if x)
    top_left += (what,)
    if meta.identifiers.study_date:
        top_left += (f"Study date {dicom_date(meta.identifiers.study_date)}",)
    cal = calibration_for(meta)
    spacing = (f"{cal.row_mm:.3g} × {cal.col_mm:.3g} mm/pixel" if cal.calibrated else "no pixel spacing") + \
        (f" ({cal.qualifier})" if cal.qualifier else "")
    top_right = (f"{meta.width} × {meta.height} px", spacing)
    bottom = tuple(x for x in (window, f"Zoom {zoom * 100:.0f}%" if zoom else "", ai) if x)
    if ai:
        bottom += (DISCLAIMER,)
    return CornerLines(top_left, top_right, bottom)
