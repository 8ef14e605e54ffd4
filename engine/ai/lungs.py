"""Lung fields: a small ONNX segmentation model with its own card, and what its mask says.

Contract of the lung model (one .onnx file, card JSON in metadata ``radlens.card``):
input ``image`` float32 [N, 1 or 3, H, W] (the display-pipeline gray in [0, 1], resized
by stretching to the card's ``input_size``, then ``(x - mean) / std`` from the card);
output ``mask`` float32 [N, 1, H, W], the lung probability (sigmoid inside the graph).
A classifier card names the lung model it needs under ``preprocessing.lung_model``
(``{name, sha256}``); ``segmenter_for`` finds, verifies and loads it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ModelError
from .card import CARD_KEY, card_object
from .preprocess import resize_gray
from .session import DEVICES, open_session, sha256_file

LUNGSEG_NAME = "radlens-lungseg"
MIN_COMPONENT = 0.004  # a component smaller than this fraction of the image is a speck, dropped


def default_lungseg_path() -> Path:
    """The bundled lung model (resources/models/radlens-lungseg.onnx)."""
    from ..resources import resource_dir

    return resource_dir() / "models" / f"{LUNGSEG_NAME}.onnx"


@dataclass(frozen=True)
class SegCard:
    """The lung model's card (a subset of the classifier card's schema, plus ``kind``/``threshold``)."""

    name: str
    version: str
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    threshold: float = 0.5
    labels: tuple[str, ...] = ("lungs",)
    kind: str = "segmentation"
    resize: str = "stretch"
    intended_use: str = ""
    created: str = ""
    training_data: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    plausibility: dict[str, float] = field(default_factory=dict)  # overrides of PLAUSIBLE
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> SegCard:
        d = card_object(text, "lung model card")
        missing = [k for k in ("name", "version", "kind", "labels", "input_size", "mean", "std", "threshold",
                               "intended_use") if k not in d]
        if missing:
            raise ModelError(f"lung model card is missing field(s): {', '.join(missing)}.")
        if d["kind"] != "segmentation":
            raise ModelError(f"lung model card kind is {d['kind']!r}; a lung model must be 'segmentation'.")
        if d["labels"] != ["lungs"]:
            raise ModelError(f"lung model card labels are {d['labels']!r}; expected ['lungs'].")
        size = d["input_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s >= 32 for s in size)):
            raise ModelError(f"lung model card input_size must be [height, width], got {size!r}.")
        for key in ("mean", "std"):
            v = d[key]
            if not (isinstance(v, list) and len(v) in (1, 3) and all(isinstance(x, (int, float)) for x in v)):
                raise ModelError(f"lung model card {key} must be 1 or 3 numbers, got {v!r}.")
        if any(s <= 0 for s in d["std"]):
            raise ModelError("lung model card std values must be positive.")
        thr = d["threshold"]
        if not (isinstance(thr, (int, float)) and 0.0 < thr < 1.0):
            raise ModelError(f"lung model card threshold must be between 0 and 1, got {thr!r}.")
        if d.get("resize", "stretch") != "stretch":
            raise ModelError(f"lung model card resize must be 'stretch', got {d.get('resize')!r}.")
        rule = d.get("plausibility") or {}
        if not isinstance(rule, dict) or not all(k in PLAUSIBLE and isinstance(v, (int, float)) for k, v in rule.items()):
            raise ModelError(f"lung model card plausibility must map {sorted(PLAUSIBLE)} to numbers, got {rule!r}.")
        return cls(name=str(d["name"]), version=str(d["version"]), input_size=(size[0], size[1]),
                   mean=tuple(float(x) for x in d["mean"]), std=tuple(float(x) for x in d["std"]), threshold=float(thr),
                   intended_use=str(d["intended_use"]), created=str(d.get("created", "")),
                   training_data=dict(d.get("training_data") or {}), test_metrics=dict(d.get("test_metrics") or {}),
                   plausibility={k: float(v) for k, v in rule.items()}, raw=d)


@dataclass(frozen=True)
class LungField:
    """What the lung mask says about one image. Sides are the patient's: the right lung is
    on the image's left. Fractions are of the whole image area."""

    mask: np.ndarray  # bool HxW at image size; specks removed
    box: tuple[int, int, int, int] | None  # (top, left, height, width) of the two largest fields
    area_fraction: float
    n_components: int  # components above MIN_COMPONENT of the image
    right_fraction: float  # the larger field on the image's left (patient's right lung)
    left_fraction: float
    confidence: float  # mean probability inside the mask (about 0.5 = unsure, 1 = sure)
    plausible: bool
    reason: str  # why not plausible ("" when plausible)

    @property
    def found(self) -> bool:
        return self.box is not None


def lung_field(prob: np.ndarray, image_hw: tuple[int, int], threshold: float = 0.5,
               rule: dict[str, float] | None = None) -> LungField:
    """A lung probability map at model resolution (h x w) -> ``LungField`` at image size;
    ``rule`` overrides ranges of ``PLAUSIBLE``."""
    h, w = prob.shape
    H, W = int(image_hw[0]), int(image_hw[1])
    binary = (prob >= threshold).astype(np.uint8)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    major = [i + 1 for i in np.argsort(-areas) if areas[i] >= MIN_COMPONENT * h * w]
    chosen = np.zeros(n, np.uint8)
    chosen[major] = 1
    keep = chosen[labels]  # labels in ``major``: a lookup, not np.isin (a third of this step's time)
    clean = prob * cv2.dilate(keep, np.ones((3, 3), np.uint8))
    up = cv2.resize(np.clip(clean * 255.0 + 0.5, 0, 255).astype(np.uint8), (W, H), interpolation=cv2.INTER_LINEAR)
    mask = up >= int(np.ceil(threshold * 255.0))
    area = float(keep.sum()) / (h * w)
    confidence = float(prob[keep > 0].mean()) if keep.any() else 0.0
    if not major:
        return LungField(mask, None, 0.0, 0, 0.0, 0.0, confidence, False, "no lung field found")
    fields = _fields(labels, stats, centroids, major, w)
    x0, y0 = min(f[3] for f in fields), min(f[1] for f in fields)
    x1, y1 = max(f[4] for f in fields), max(f[2] for f in fields)
    box = _refine_box(mask, (y0 - 1) * H // h, (x0 - 1) * W // w, -(-(y1 + 1) * H // h), -(-(x1 + 1) * W // w))
    fr = [f[0] / (h * w) for f in fields]
    right, left = (fr[0], fr[1]) if len(fr) == 2 else ((fr[0], 0.0) if fields[0][5] < w / 2 else (0.0, fr[0]))
    reason = _implausible(fields, h, w, area, confidence, PLAUSIBLE | (rule or {}))
    return LungField(mask, box, area, len(major), right, left, confidence, reason == "", reason)


Field = tuple[float, int, int, int, int, float]  # area (px), top, bottom, left, right, centre x; model pixels


def _fields(labels: np.ndarray, stats: np.ndarray, centroids: np.ndarray, major: list[int], w: int) -> list[Field]:
    """The (at most two) lung fields, image-left first: the two largest components, or the
    halves of the largest when it crosses the image centre on its own (lungs that touch
    above or below the mediastinum, common in small children)."""
    def of(sel: np.ndarray, dx: int = 0) -> Field:
        ys, xs = np.nonzero(sel)
        return float(ys.size), int(ys.min()), int(ys.max()) + 1, int(xs.min()) + dx, int(xs.max()) + 1 + dx, float(xs.mean()) + dx

    big = major[0]
    left, width = int(stats[big, cv2.CC_STAT_LEFT]), int(stats[big, cv2.CC_STAT_WIDTH])
    alone = len(major) == 1 or stats[major[1], cv2.CC_STAT_AREA] < 0.2 * stats[big, cv2.CC_STAT_AREA]
    if alone and left + 0.25 * width < w / 2 < left + 0.75 * width:
        comp = labels[:, left: left + width] == big
        col = comp.sum(0)
        lo, hi = int(0.3 * width), max(int(0.3 * width) + 1, int(0.7 * width))
        cut = lo + int(np.argmin(col[lo:hi]))
        halves = [comp[:, :cut], comp[:, cut:]]
        if cut and col[cut] <= 0.5 * min(col[:cut].max(), col[cut:].max()):  # a neck: two lungs, not one blob
            return [of(halves[0], left), of(halves[1], left + cut)]
    return sorted((_component(stats, centroids, i) for i in major[:2]), key=lambda f: f[5])


def _component(stats: np.ndarray, centroids: np.ndarray, i: int) -> Field:
    """A whole component's field from OpenCV's statistics: what ``of(labels == i)`` would compute
    (area, rows, columns, mean column), without a pass over the label image."""
    top, left = int(stats[i, cv2.CC_STAT_TOP]), int(stats[i, cv2.CC_STAT_LEFT])
    return (float(stats[i, cv2.CC_STAT_AREA]), top, top + int(stats[i, cv2.CC_STAT_HEIGHT]), left,
            left + int(stats[i, cv2.CC_STAT_WIDTH]), float(centroids[i, 0]))


def _refine_box(mask: np.ndarray, t: int, l: int, b: int, r: int) -> tuple[int, int, int, int] | None:  # noqa: E741
    """The exact mask extent inside the model-resolution box (grown by a model pixel)."""
    H, W = mask.shape
    t, l, b, r = max(0, int(t)), max(0, int(l)), min(H, int(b)), min(W, int(r))  # noqa: E741
    win = mask[t:b, l:r]
    rows, cols = np.flatnonzero(win.any(1)), np.flatnonzero(win.any(0))
    if rows.size == 0:
        return None
    return t + int(rows[0]), l + int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


# Plausibility of a frontal chest: two confident side-by-side fields of similar size. Ranges
# chosen with radlens-lungseg 1.0.0 on samples of every source of the cxr pool and cxr-extdev
# (in scope: 97-100% pass per source) against the 400 ood-dev knees (2.2% pass), with margin;
# a lung card's "plausibility" object overrides them (``python -m training.seg plausibility``).
PLAUSIBLE = {"min_lung": 0.02, "min_total": 0.06, "max_total": 0.75, "min_ratio": 0.2, "min_gap": 0.12,
             "min_overlap": 0.4, "min_confidence": 0.86}


def _implausible(fields: list[Field], h: int, w: int, total: float, confidence: float, p: dict[str, float]) -> str:
    if len(fields) < 2:
        return "only one lung field found"
    a = [f[0] / (h * w) for f in fields]
    if min(a) < p["min_lung"]:
        return f"a lung field is too small ({min(a):.1%} of the image)"
    if total < p["min_total"]:
        return f"the lung fields are too small ({total:.1%} of the image)"
    if total > p["max_total"]:
        return f"the lung fields cover {total:.0%} of the image"
    if min(a) / max(a) < p["min_ratio"]:
        return f"the two fields differ too much in size (ratio {min(a) / max(a):.2f})"
    (_, tr, br, _, _, xr), (_, tl, bl, _, _, xl) = fields
    if (xl - xr) / w < p["min_gap"] or not (xr < w / 2 < xl):
        return "the two fields are not on either side of the image centre"
    if (min(br, bl) - max(tr, tl)) / max(1, min(br - tr, bl - tl)) < p["min_overlap"]:
        return "the two fields are not side by side"
    if confidence < p["min_confidence"]:
        return f"the lung fields are uncertain (mean probability {confidence:.2f})"
    return ""


class LungSegmenter:
    """An ONNX lung model that satisfies the contract above. ``run``/``segment`` are thread-safe
    (onnxruntime sessions may be run from several threads at once)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, device: str = "auto", warmup: bool = True,
                 threads: int = 0) -> None:
        self.path = Path(path) if path is not None else default_lungseg_path()
        if device not in DEVICES:
            raise ModelError(f"device must be one of {DEVICES}, got {device!r}.")
        if not self.path.is_file():
            raise ModelError(f"lung model not found: {self.path}. Put {LUNGSEG_NAME}.onnx in resources/models.")
        try:
            self.sha256 = sha256_file(self.path)
        except OSError as e:
            raise ModelError(f"lung model cannot be read: {self.path} ({e.strerror or e}).") from None
        # No spin-waiting between ops: on a busy CPU (a batch, other programs) spinning threads
        # made this small model 2x slower; on an idle one the cost is within noise.
        self.session, self.provider_note = open_session(self.path, device, threads, spinning=False)
        meta = self.session.get_modelmeta().custom_metadata_map
        if CARD_KEY not in meta:
            raise ModelError(f"{self.path.name} has no model card (metadata '{CARD_KEY}'); it is not a RadLens lung model.")
        self.card = SegCard.from_json(meta[CARD_KEY])
        self.channels = self._validate()
        self.provider = self.session.get_providers()[0]
        if warmup:
            self.run(np.zeros((1, self.channels, *self.card.input_size), np.float32))

    def _validate(self) -> int:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != "image":
            raise ModelError(f"lung model must have one input named 'image'; it has {[i.name for i in inputs]}.")
        shape = [d if isinstance(d, int) else None for d in inputs[0].shape]
        if inputs[0].type != "tensor(float)" or len(shape) != 4 or shape[1] not in (1, 3):
            raise ModelError(f"lung model input 'image' must be float32 [N, 1 or 3, H, W], got {inputs[0].type} {inputs[0].shape}.")
        if shape[2] not in (None, self.card.input_size[0]) or shape[3] not in (None, self.card.input_size[1]):
            raise ModelError(f"lung model input is {shape[2]}x{shape[3]} but its card says input_size "
                             f"{self.card.input_size[0]}x{self.card.input_size[1]}.")
        if len(self.card.mean) not in (1, shape[1]) or len(self.card.std) not in (1, shape[1]):
            raise ModelError(f"lung model card mean/std have {len(self.card.mean)} values for {shape[1]} input channel(s).")
        names = [o.name for o in outputs]
        if "mask" not in names:
            raise ModelError(f"lung model has no output 'mask' (it has {names}); the contract needs 'mask' [N, 1, H, W].")
        out = next(o for o in outputs if o.name == "mask")
        if len(out.shape) != 4 or (isinstance(out.shape[1], int) and out.shape[1] != 1):
            raise ModelError(f"lung model output 'mask' must be [N, 1, H, W], got {out.shape}.")
        return int(shape[1])

    def preprocess(self, pixels: np.ndarray) -> np.ndarray:
        """Display-pipeline pixels ([0, 1], HxW) -> one model input [C, h, w]."""
        pixels = np.asarray(pixels, np.float32)
        th, tw = self.card.input_size
        k = min(pixels.shape[0] // th, pixels.shape[1] // tw) // 2
        if k >= 2:  # a large image: an integer-factor box average first (OpenCV's fast path), 4x faster
            h, w = pixels.shape[0] // k * k, pixels.shape[1] // k * k
            pixels = cv2.resize(pixels[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
        x = resize_gray(pixels, self.card.input_size, "stretch")
        mean = np.asarray(self.card.mean, np.float32)[:, None, None]
        std = np.asarray(self.card.std, np.float32)[:, None, None]
        x = (x[None] - mean) / std
        return np.ascontiguousarray(np.broadcast_to(x, (self.channels, *x.shape[1:])), np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed [N, C, h, w] -> lung probabilities [N, 1, h, w]."""
        if batch.ndim != 4:
            raise ValueError(f"expected [N, C, H, W], got {batch.shape}")
        return self.session.run(["mask"], {"image": np.ascontiguousarray(batch, np.float32)})[0]

    def segment(self, pixels: np.ndarray) -> LungField:
        """The lung field of one image (display-pipeline pixels, any size or aspect)."""
        prob = self.run(self.preprocess(pixels)[None])[0, 0]
        return lung_field(prob, pixels.shape[:2], self.card.threshold, self.card.plausibility)

    def segment_many(self, images: list[np.ndarray]) -> list[LungField]:
        """The lung fields of several images in one batched run (the batch's path; about 25%
        less time per image than one run each on this CPU)."""
        if not images:
            return []
        probs = self.run(np.stack([self.preprocess(p) for p in images]))
        return [lung_field(probs[i, 0], p.shape[:2], self.card.threshold, self.card.plausibility)
                for i, p in enumerate(images)]

    def describe(self) -> dict[str, str]:
        return {"lung_model_name": self.card.name, "lung_model_version": self.card.version, "lung_model_sha256": self.sha256}


def _lung_ref(card: object) -> Any:
    """``preprocessing.lung_model`` of a classifier card (validated by engine.ai.card)."""
    return (getattr(card, "preprocessing", None) or {}).get("lung_model")


def segmenter_for(card: object, model_path: str | os.PathLike[str], device: str = "auto",
                  threads: int = 0) -> LungSegmenter | None:
    """The lung model a classifier card references (``{name, sha256}``), looked up beside the
    classifier, then in resources/models, its SHA-256 verified; None when none is referenced."""
    ref = _lung_ref(card)
    if not ref:
        return None
    name = ref.get("name") if isinstance(ref, dict) else getattr(ref, "name", ref)
    want = ref.get("sha256") if isinstance(ref, dict) else getattr(ref, "sha256", None)
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"the model card's preprocessing.lung_model has no name ({ref!r}).")
    stem = name[:-5] if name.endswith(".onnx") else name
    places = [Path(model_path).parent / f"{stem}.onnx", default_lungseg_path().parent / f"{stem}.onnx"]
    path = next((p for p in places if p.is_file()), None)
    if path is None:
        raise ModelError(f"the model needs the lung model {stem}.onnx, which is in neither "
                         f"{places[0].parent} nor {places[1].parent}. Put it beside the model.")
    seg = LungSegmenter(path, device=device, threads=threads)  # hashes the file once
    if want and seg.sha256.lower() != str(want).lower():
        raise ModelError(f"lung model {path} has SHA-256 {seg.sha256[:12]}..., but the model card expects "
                         f"{str(want)[:12]}...; install the lung model that was shipped with this model.")
    if seg.card.name != stem:
        raise ModelError(f"lung model {path.name} says its name is {seg.card.name!r}; the model card asks for {stem!r}.")
    return seg


_shared: dict[tuple[str, str, int], LungSegmenter] = {}
_shared_lock = threading.Lock()


def lungseg_disabled() -> bool:
    """RADLENS_LUNGSEG=off (or 0, none): run without the bundled lung model."""
    return os.environ.get("RADLENS_LUNGSEG", "").lower() in ("off", "0", "none")


def scope_segmenter(device: str = "auto", threads: int = 0) -> LungSegmenter | None:
    """The bundled lung model, shared by every classifier in the process, for the scope check
    of a classifier whose card names no lung model (None when it is not installed). Set
    RADLENS_LUNGSEG=off to run without it (the scope check then has no lung evidence)."""
    if lungseg_disabled():
        return None
    path = default_lungseg_path()
    if not path.is_file():
        return None
    key = (str(path), device, threads)  # threads: the classifier's (one per Dask worker process, ...)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = LungSegmenter(path, device=device, threads=threads)
        return _shared[key]
