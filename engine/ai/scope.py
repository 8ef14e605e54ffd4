"""The scope check: is this a frontal chest radiograph, the only thing the model was built for?

Evidence is combined and any one source can decide "out of scope":

1. the DICOM header: Modality, Body Part Examined, View Position;
2. image statistics: colour, size, blank or near-uniform, noise, flat graphic areas
   (screenshots, drawings);
3. the lung field from the segmentation model: two lung fields of plausible size and place;
4. the classifier's own out-of-distribution score (an ``ood`` output of the graph, with its
   threshold in the model card), when the model has one.

``header_and_pixels`` runs before the model (cheap; DESIGN.md's "scope evidence" step) and
``verdict`` after it, adding the lung field and the OOD score. The thresholds of the image
statistics were chosen on the validation split of ../shared/data/cxr, the knee radiographs of
../shared/data/ood-dev and generated cases (blank, uniform, noise, gradients, colour photos,
screenshots of this program): see ``bench/scope_thresholds.py``; never on test data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..io.image import ImageMeta, LoadedImage

# Modalities that are (or may be) projection radiographs; OT and empty: decided by the pixels.
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "RG", "DR", "OT", ""})
MODALITY_NAMES = {
    "CT": "CT", "MR": "MR", "US": "ultrasound", "NM": "nuclear medicine", "PT": "PET", "MG": "mammography",
    "XA": "angiography", "RF": "fluoroscopy", "IO": "intra-oral radiograph", "PX": "panoramic dental radiograph",
    "ES": "endoscopy", "XC": "photograph", "OP": "ophthalmic photograph", "SM": "microscopy", "SEG": "segmentation",
    "RTDOSE": "radiotherapy dose", "RTIMAGE": "radiotherapy image", "RTSTRUCT": "radiotherapy structure set",
    "BMD": "bone densitometry", "ECG": "ECG", "SR": "structured report", "PR": "presentation state", "KO": "key object",
}
CHEST_BODY_PARTS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "CHEST_PA", "CHEST_AP", "PORTABLE CHEST",
                              "TORAX", "THORAX_PA", "CHEST PA", "CHEST AP", "BRUST", "POITRINE", "PECHO", "TORACE"})
# Words in a Study/Series Description or Protocol Name that name another body part (English and
# DICOM's defined terms); a description that also names the chest never decides.
OTHER_PART_WORDS = ("TEETH", "TOOTH", "DENTAL", "DENT ", "PANORAM", "MANDIB", "KNEE", "ANKLE", "FOOT", "FEET", "TOE",
                    "HAND", "FINGER", "WRIST", "ELBOW", "FOREARM", "HUMERUS", "HIP", "PELVIS", "FEMUR", "TIBIA",
                    "FIBULA", "SKULL", "HEAD", "SINUS", "CSPINE", "C-SPINE", "LSPINE", "L-SPINE", "SPINE", "ABDOMEN",
                    "EXTREMITY", "LEG", "ARM", "MAMMO", "BREAST")
CHEST_WORDS = ("CHEST", "THORAX", "THORAC", "LUNG", "PULMO", "TORAX", "CXR", "RIB")
LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "LLO", "RLO"})

# Image statistics (on the display pixels, [0, 1]); see bench/scope_thresholds.py for how they were chosen.
MIN_SIDE = 128  # pixels: below this there is too little to analyse
MIN_SPREAD = 0.06  # 1st-99th percentile range: below it the image is blank or near-uniform
MIN_STD = 0.02
MAX_NOISE = 0.35  # mean |x - blur(x)| / std at 256 px: radiographs are far smoother than noise
MAX_FLAT = 0.30  # fraction of pixels in exactly flat 5x5 areas at a mid grey: screenshots, drawings
MAX_COLOUR = 0.10  # mean saturation of a colour image's lit pixels (0 = grey): above it, a photograph


@dataclass(frozen=True)
class Scope:
    """The scope verdict of one image. ``reason`` is a sentence for the user when out of scope."""

    in_scope: bool
    kind: str = ""  # "", "modality", "body_part", "lateral", "colour", "small", "blank", "noise", "graphic",
    #                 "lungs", "ood"
    reason: str = ""
    ood_score: float | None = None
    ood_threshold: float | None = None
    evidence: dict[str, float | str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "in" if self.in_scope else "out"


IN_SCOPE = Scope(True)


def _out(kind: str, reason: str, evidence: dict[str, float | str]) -> Scope:
    return Scope(False, kind, reason, evidence=evidence)


def header_evidence(meta: ImageMeta) -> Scope | None:
    """Out of scope from the DICOM header alone, or None."""
    modality = (meta.modality or "").strip().upper()
    if meta.format == "dicom" and modality not in RADIOGRAPH_MODALITIES:
        name = MODALITY_NAMES.get(modality, modality)
        return _out("modality", f"DICOM modality {modality} ({name}): RadLens analyses chest radiographs only.",
                    {"modality": modality})
    body = " ".join((meta.body_part or "").strip().upper().split())
    if body and body not in CHEST_BODY_PARTS and "CHEST" not in body and "THORAX" not in body:
        return _out("body_part", f"the DICOM header says the body part is {body.lower()}, not the chest: "
                    "RadLens analyses frontal chest radiographs only.", {"body_part": body})
    desc = " ".join((getattr(meta, "description", "") or "").upper().replace("_", " ").split())
    if desc and not any(w in desc for w in CHEST_WORDS):
        word = next((w for w in OTHER_PART_WORDS if _has_word(desc, w.strip())), None)
        if word is not None:
            return _out("body_part", f"the DICOM header describes the study as \"{desc.lower()}\", not a chest "
                        "radiograph: RadLens analyses frontal chest radiographs only.", {"description": desc})
    view = (meta.view_position or "").strip().upper()
    if view in LATERAL_VIEWS:
        return _out("lateral", f"this is a lateral view (View Position {view}): RadLens analyses frontal "
                    "(PA or AP) chest radiographs only.", {"view_position": view})
    return None


STATS_SIDE = 128  # the statistics are measured on a copy at most this many pixels on its long side


def _has_word(text: str, word: str) -> bool:
    """``word`` at the start of a word of ``text`` (so HIP matches HIPS but not CHIP; LEG not COLLEGE)."""
    import re

    return re.search(rf"(?<![A-Z]){re.escape(word)}", text) is not None


def image_statistics(pixels: np.ndarray) -> dict[str, float]:
    """The statistics the pixel rules use, on an 8-bit copy subsampled to about ``STATS_SIDE`` px
    on its long side (about 0.15 ms): percentiles and spread from its histogram, a noise ratio,
    and the fraction of exactly flat 5x5 areas at a mid grey."""
    h, w = pixels.shape[:2]
    step = max(1, round(max(h, w) / STATS_SIDE))  # plain subsampling: 50x faster than INTER_AREA on a 2k image
    u8 = cv2.convertScaleAbs(np.ascontiguousarray(pixels[::step, ::step]), alpha=255.0)
    hist = cv2.calcHist([u8], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    cdf = np.cumsum(hist) / max(hist.sum(), 1.0)
    lo, hi = np.searchsorted(cdf, 0.01) / 255.0, np.searchsorted(cdf, 0.99) / 255.0
    levels = np.arange(256) / 255.0
    freq = hist / max(hist.sum(), 1.0)
    mean = float(np.dot(freq, levels))
    std = float(np.sqrt(max(0.0, float(np.dot(freq, (levels - mean) ** 2)))))
    blur = cv2.GaussianBlur(u8, (3, 3), 0)
    noise = float(cv2.absdiff(u8, blur).mean() / 255.0 / (std + 1e-6))
    kernel = np.ones((5, 5), np.uint8)
    flat = cv2.dilate(u8, kernel) == cv2.erode(u8, kernel)
    mid = (u8 > 8) & (u8 < 247)
    return {"spread": float(hi - lo), "std": std, "noise": noise, "flat": float(np.count_nonzero(flat & mid)) / u8.size,
            "min_side": float(min(h, w))}


def pixel_evidence(image: LoadedImage, stats: dict[str, float] | None = None) -> Scope | None:
    """Out of scope from the pixels alone, or None."""
    st = dict(stats or image_statistics(image.pixels))
    colour = float(getattr(image.meta, "colourfulness", 0.0) or 0.0)
    st["colour"] = colour
    h, w = image.shape
    if colour > MAX_COLOUR:
        return _out("colour", "not a radiograph: a colour image (a photograph, a screenshot or a drawing). RadLens "
                    "analyses chest radiographs only.", st)
    if min(h, w) < MIN_SIDE:
        return _out("small", f"the image is too small to analyse ({w}x{h} pixels; at least {MIN_SIDE} on each side "
                    "are needed). Open the full-resolution radiograph.", st)
    if st["spread"] < MIN_SPREAD or st["std"] < MIN_STD:
        return _out("blank", "the image is blank or nearly uniform: there is no radiograph to analyse.", st)
    if st["noise"] > MAX_NOISE:
        return _out("noise", "not a radiograph: the image looks like a document, a screenshot or noise. RadLens "
                    "analyses chest radiographs only.", st)
    if st["flat"] > MAX_FLAT:
        return _out("graphic", "not a radiograph: a document or screenshot (large perfectly flat areas). Open the "
                    "radiograph itself.", st)
    return None


def header_and_pixels(image: LoadedImage) -> Scope:
    """The evidence available before the model: the header, then the image statistics."""
    return header_evidence(image.meta) or pixel_evidence(image) or IN_SCOPE


def lung_evidence(lungs: object | None) -> Scope | None:
    """Out of scope when the segmentation model finds no plausible pair of lung fields."""
    if lungs is None:
        return None
    if getattr(lungs, "plausible", True):
        return None
    why = getattr(lungs, "reason", "") or "no two lung fields of plausible size and position were found"
    return _out("lungs", "not a frontal chest radiograph: no pair of lung fields where a frontal chest film has "
                f"them. It may be another body part, a lateral view or a photograph ({why}).",
                {"lung_area_fraction": float(getattr(lungs, "area_fraction", 0.0) or 0.0)})


LATERAL_REASON = ("looks like a lateral view of the chest: RadLens analyses frontal (PA or AP) chest radiographs "
                  "only. Open the frontal film of the study.")


OTHER_PART_REASON = ("not a chest radiograph: it looks like another body part (or not a radiograph at all). "
                     "RadLens analyses frontal chest radiographs only.")


def verdict(before: Scope, lungs: object | None, ood_score: float | None, ood_threshold: float | None,
            views: dict[str, float] | None = None, view_threshold: float | None = None,
            trust_frontal: float | None = None) -> Scope:
    """The final verdict: the first decisive evidence in DESIGN.md's order (header and pixels, the
    view, the lung field, the OOD score), with the OOD score recorded whatever the verdict."""
    score = None if ood_score is None or not np.isfinite(ood_score) else float(ood_score)
    extra = {"ood_score": score, "ood_threshold": ood_threshold}
    if not before.in_scope:
        return Scope(False, before.kind, before.reason, evidence=before.evidence, **extra)
    if views and view_threshold is not None and "frontal" in views:
        frontal = views["frontal"]
        if not np.isfinite(frontal) or 1.0 - frontal > view_threshold:
            lateral, other = views.get("lateral", 0.0), views.get("other", 0.0)
            ev = {f"view_{k}": float(v) for k, v in views.items()}
            if lateral >= other:
                return Scope(False, "lateral", LATERAL_REASON, evidence=ev, **extra)
            return Scope(False, "body_part", OTHER_PART_REASON, evidence=ev, **extra)
    sure_frontal = bool(views and trust_frontal is not None and views.get("frontal", 0.0) >= trust_frontal)
    lung = None if sure_frontal else lung_evidence(lungs)  # disease may hide a lung field on a sure frontal film
    if lung is not None:
        return Scope(False, lung.kind, lung.reason, evidence=lung.evidence, **extra)
    if score is not None and ood_threshold is not None and score > ood_threshold:
        return Scope(False, "ood", "not a frontal chest radiograph, or a very unusual one: it is unlike the films "
                     "the model was trained on. It may be another body part, another view, a photograph or an edited "
                     f"image (out-of-distribution score {score:.2f}, threshold {ood_threshold:.2f}).",
                     evidence={"ood_score": score}, **extra)
    return Scope(True, **extra)
