"""Frozen messages that cross threads between the GUI and the workers (numpy arrays and
plain values only, never widgets)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine import Classifier, LoadedImage, Prediction
from engine.ai.cam import CamScale

from .windowing import DisplaySource


@dataclass(frozen=True)
class OpenRequest:
    generation: int
    path: str
    classifier: Classifier | None
    want_tags: bool = True


@dataclass(frozen=True)
class ImageReady:
    generation: int
    path: str
    image: LoadedImage
    display: DisplaySource
    thumb: np.ndarray
    seconds: float


@dataclass(frozen=True)
class AnalysisDone:
    generation: int
    path: str
    prediction: Prediction
    heat: tuple[np.ndarray, ...]  # RGBA overlay per class, at overlay size, all on ``cam_scale``
    seconds: float
    cam_scale: CamScale | None = None  # the one scale of every class's heatmap (None: each class's own peak)
    evidence: tuple[float, ...] = ()  # per class: its map's peak as a fraction of the scale


@dataclass(frozen=True)
class TagsReady:
    generation: int
    path: str
    rows: tuple = ()  # engine.io.dicom.TagRow
    message: str = ""


@dataclass(frozen=True)
class Failure:
    generation: int
    path: str
    stage: str  # "load", "analysis"
    message: str


@dataclass(frozen=True)
class ModelRequest:
    generation: int
    path: str
    device: str


@dataclass(frozen=True)
class ModelReady:
    generation: int
    path: str
    classifier: Classifier | None
    message: str = ""  # why it failed, when classifier is None
    seconds: float = 0.0


@dataclass(frozen=True)
class StudyRequest:
    generation: int
    paths: tuple[str, ...]
    classifier: Classifier | None
    indices: tuple[int, ...] = ()  # which entries to process
    skip: set[str] | frozenset[str] = frozenset()  # absolute paths the viewer has done (shared, GUI-updated)


@dataclass(frozen=True)
class StudyItem:
    generation: int
    index: int
    path: str
    status: str  # "analysed", "loaded" (no model), "error"
    thumb: np.ndarray | None = None
    label: str = ""
    prob: float = 0.0
    probs: tuple[float, ...] = field(default_factory=tuple)
    message: str = ""
    flags: tuple[str, ...] = ()  # classes at or above their operating points (engine.decide)
    scope: str = ""  # "in", "out" (engine.ai.scope.Scope.label); "" when not analysed
    scope_reason: str = ""  # why it is out of scope, a sentence for the user

    @property
    def out_of_scope(self) -> bool:
        return self.scope == "out"


def percent_text(p: float, sign: bool = True) -> str:
    """A probability as every screen and report writes it (the one rule: the analysis dock, the
    corner text, the study list, the batch table, the model card, the exported PNG's caption and
    the PDF all call this): one decimal, and never "100.0%" or "0.0%" (the model is never
    certain, and "100.0%" on a wrong call invites over-trust): ">99.9%" from 0.9995 up and
    "<0.1%" under 0.0005; "n/a" for a value that is not a finite number."""
    unit = "%" if sign else ""
    if not math.isfinite(p):
        return "n/a"
    text = f"{p * 100:.1f}"
    if p >= 0.9995 or text == "100.0":
        return f">99.9{unit}"
    if p < 0.0005 or text in ("0.0", "-0.0"):
        return f"<0.1{unit}"
    return f"{text}{unit}"


def call_text(call: str, prob: float, flags: tuple[str, ...]) -> str:
    """The decision as every view words it (engine.ai.prediction.DECISION_RULE): the call is
    the top class; flags are the classes at or above their operating points."""
    flagged = f"flagged (at or above the operating point): {', '.join(flags)}" if flags else \
        "no class at or above its operating point"
    return f"call {call} {percent_text(prob)}; {flagged}."
