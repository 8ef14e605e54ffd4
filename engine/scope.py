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

from .image import ImageMeta, LoadedImage

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
LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "LLO", "RLO"})

# Image statistics (on the display pixels, [0, 1]); see bench/scope_thresholds.py for how they were chosen.
MIN_SIDE = 128  # pixels: below this there is too little to analyse
MIN_SPREAD = 0.06  # 1st-99th percentile range: below it the image is blank or near-uniform
MIN_STD = 0.02
MAX_NOISE = 0.35  # mean |x - blur(x)| / std at 256 px: radiographs are far smoother than noise
MAX_FLAT = 0.30  # fraction of pixels in exactly flat 5x5 areas at a mid grey: screenshots, drawings
MAX_COLOUR = 0.06  # mean chroma of a colour image (0 = grey): above it, a photograph or a screenshot


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
    view = (meta.view_position or "").strip().upper()
    if view in LATERAL_VIEWS:
        return _out("lateral", f"this is a lateral view (View Position {view}): RadLens analyses frontal "
                    "(PA or AP) chest radiographs only.", {"view_position": view})
    return None


def image_statistics(pixels: np.ndarray) -> dict[str, float]:
    """The statistics the pixel rules use, on a copy at most 256 px on its long side."""
    h, w = pixels.shape[:2]
    s = min(1.0, 256.0 / max(h, w))
    small = cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) \
        if s < 1.0 else pixels.astype(np.float32, copy=False)
    lo, hi = np.percentile(small, [1, 99])
    std = float(small.std())
    blur = cv2.GaussianBlur(small, (3, 3), 0)
    noise = float(np.mean(np.abs(small - blur)) / (std + 1e-6))
    # exactly flat 5x5 neighbourhoods at a mid grey (not the black or white borders of a film)
    u8 = np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)
    flat = cv2.dilate(u8, kernel) == cv2.erode(u8, kernel)
    mid = (u8 > 8) & (u8 < 247)
    return {"spread": float(hi - lo), "std": std, "noise": noise, "flat": float(np.mean(flat & mid)),
            "min_side": float(min(h, w))}


def pixel_evidence(image: LoadedImage, stats: dict[str, float] | None = None) -> Scope | None:
    """Out of scope from the pixels alone, or None."""
    st = dict(stats or image_statistics(image.pixels))
    colour = float(getattr(image.meta, "colourfulness", 0.0) or 0.0)
    st["colour"] = colour
    h, w = image.shape
    if colour > MAX_COLOUR:
        return _out("colour", "this is a colour image (a photograph, a screenshot or a drawing), not a radiograph: "
                    "RadLens analyses chest radiographs only.", st)
    if min(h, w) < MIN_SIDE:
        return _out("small", f"the image is too small to analyse ({w}x{h} pixels; at least {MIN_SIDE} on each side "
                    "are needed). Open the full-resolution radiograph.", st)
    if st["spread"] < MIN_SPREAD or st["std"] < MIN_STD:
        return _out("blank", "the image is blank or nearly uniform: there is no radiograph to analyse.", st)
    if st["noise"] > MAX_NOISE:
        return _out("noise", "the image looks like noise, not a radiograph: RadLens analyses chest radiographs only.", st)
    if st["flat"] > MAX_FLAT:
        return _out("graphic", "the image has large perfectly flat areas, as a screenshot or a drawing has, "
                    "not a radiograph: open the radiograph itself.", st)
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
    return _out("lungs", f"this does not look like a frontal chest radiograph ({why}).",
                {"lung_area_fraction": float(getattr(lungs, "area_fraction", 0.0) or 0.0)})


def verdict(before: Scope, lungs: object | None, ood_score: float | None, ood_threshold: float | None) -> Scope:
    """The final verdict: the first decisive evidence in DESIGN.md's order, with the OOD score
    recorded whatever the verdict."""
    score = None if ood_score is None or not np.isfinite(ood_score) else float(ood_score)
    extra = {"ood_score": score, "ood_threshold": ood_threshold}
    if not before.in_scope:
        return Scope(False, before.kind, before.reason, evidence=before.evidence, **extra)
    lung = lung_evidence(lungs)
    if lung is not None:
        return Scope(False, lung.kind, lung.reason, evidence=lung.evidence, **extra)
    if score is not None and ood_threshold is not None and score > ood_threshold:
        return Scope(False, "ood", "the image is unlike the chest radiographs the model was trained on "
                     f"(out-of-distribution score {score:.2f}, threshold {ood_threshold:.2f}): it may be another "
                     "body part, another view, or an edited image.", evidence={"ood_score": score}, **extra)
    return Scope(True, **extra)
