"""The model card: the JSON stored in the ONNX ``metadata_props`` under ``radlens.card``.

The preprocessing config travels with the model (timm's habit), so serving and training
cannot drift apart. One schema for both sides: training builds a ``ModelCard`` and writes
``to_json()``; the engine reads it back with ``from_json``. Each field has one validator
(``_VALIDATORS``) that raises a ``ModelError`` naming the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ModelError

CARD_KEY = "radlens.card"
RESIZE_POLICIES = ("stretch", "letterbox")
CROP_POLICIES = ("none", "lungs")
INTENSITY_POLICIES = ("none", "clahe", "equalize")
DEFAULT_CROP_MARGIN = 0.1  # fraction of the lung box added on every side
DEFAULT_PREPROCESSING: dict[str, Any] = {"crop": "none", "intensity": "none"}
PREPROCESSING_KEYS = ("crop", "crop_margin", "intensity", "lung_model")
OOD_OUTPUT = "ood"
DISCLAIMER = "Research use only, not for diagnosis"
DECISION_RULE = "the call is the top class; flags are the classes at or above their operating points"
# radlens-cxr4 3.0 on: one coherent call. A disease is flagged at or above its operating point; the call is the
# flagged disease furthest above its operating point (as a fraction of the way from it to 1), else normal; a
# normal call carries no flag, so the flags never contradict the call.
DECISION_RULE_MARGIN = ("the call is the flagged disease furthest above its operating point (as a fraction of the "
                        "way from it to 1), else normal; flags are the diseases at or above their operating points, "
                        "so a normal call carries no flag")
# radlens-cxr4 3.0.0: the call is the most probable class (as before), and a normal call carries no flag.
DECISION_RULE_COHERENT = ("the call is the most probable class; when it is a disease, flags are the diseases at or "
                          "above their operating points; a normal call carries no flag")
DECISION_RULES = (DECISION_RULE, DECISION_RULE_MARGIN, DECISION_RULE_COHERENT)
NORMAL_LABEL = "normal"


# Every field DESIGN.md's model contract lists; a card without one is refused, naming it.
REQUIRED_FIELDS = ("name", "version", "labels", "input_size", "mean", "std", "resize", "temperature",
                   "operating_points", "training_data", "test_metrics", "intended_use", "created")


def card_object(text: str, what: str = "model card") -> dict[str, Any]:
    """The JSON object stored under ``radlens.card``; ModelError when it is not one."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(f"{what} '{CARD_KEY}' is not valid JSON ({e}).") from None
    if not isinstance(d, dict):
        raise ModelError(f"{what} '{CARD_KEY}' must be a JSON object.")
    return d


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    labels: tuple[str, ...]
    input_size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "stretch"
    temperature: float = 1.0
    operating_points: dict[str, float] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str = DISCLAIMER
    created: str = ""
    architecture: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # crop ("none" | "lungs"), crop_margin, intensity ("none" | "clahe" | "equalize"), lung_model {name, sha256}
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PREPROCESSING))
    decision_rule: str = DECISION_RULE
    ood: dict[str, Any] | None = None  # {"method", "threshold", "output": "ood"}
    out_of_source_metrics: dict[str, Any] = field(default_factory=dict)
    # {"file", "sha256", "rows", "dim", ...}: the base model's training features for site adaptation
    reference_set: dict[str, Any] | None = None
    # {"parent": {name, version, sha256}, "site": {name, date, counts}, "parameters", figures}: an adapted model
    site_adaptation: dict[str, Any] | None = None
    # {"output": "view", "classes": ["frontal", "lateral", "other"], "threshold", "method", "figures"}:
    # the view head (scope check 2): out of scope when 1 - P(frontal) > threshold
    view_check: dict[str, Any] | None = None

    @property
    def parent(self) -> dict[str, str] | None:
        """The model this one was adapted from (name, version, sha256); None for a base model."""
        return (self.site_adaptation or {}).get("parent")

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON types (what ``from_dict`` reads back to an equal card)."""
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        for key in ("ood", "reference_set", "site_adaptation", "view_check"):
            if d[key] is None:
                del d[key]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls.from_dict(card_object(text))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Validate a card: every field of the wrong type or out of range is a
        ``ModelError`` naming the field, never a bare ValueError/TypeError."""
        if not isinstance(d, dict):
            raise ModelError(f"model card must be a JSON object, got {type(d).__name__}.")
        missing = [k for k in REQUIRED_FIELDS if k not in d]
        if missing:
            raise ModelError(f"model card is missing required field(s): {', '.join(missing)}.")
        values = {key: check(d) for key, check in _VALIDATORS.items()}  # in table order: first bad field wins
        known = set(cls.__dataclass_fields__)
        values["extra"] = {k: v for k, v in d.items() if k not in known} | values["extra"]
        return cls(**values)


# ------------------------------------------------------------------ helpers

def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A finite JSON number (true/false are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text_field(d: dict[str, Any], key: str, default: str | None = None) -> str:
    """A text field; a number is accepted as its text (a version written as 1.0)."""
    value = d.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(value)
    raise ModelError(f"model card {key} must be text, got {_show(value)}.")


def _object_field(d: dict[str, Any], key: str) -> dict[str, Any]:
    value = d.get(key) or {}
    if not isinstance(value, dict):
        raise ModelError(f"model card {key} must be a JSON object, got {_show(value)}.")
    return dict(value)


def _choice(value: object, key: str, choices: tuple[str, ...], what: str = "") -> str:
    if not isinstance(value, str) or value not in choices:
        raise ModelError(f"model card {key}{what} {_show(value)} unknown; expected one of {choices}.")
    return value


# ------------------------------------------------------------------ one validator per field

def _labels(d: dict[str, Any]) -> tuple[str, ...]:
    raw = d["labels"]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise ModelError(f"model card labels must be a list of class names, got {_show(raw)}.")
    labels = tuple(raw)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ModelError(f"model card labels must be at least two distinct names, got {list(labels)}.")
    return labels


def _input_size(d: dict[str, Any]) -> tuple[int, int]:
    size = d["input_size"]
    if _is_int(size):
        size = [size, size]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(s) and s > 0 for s in size):
        raise ModelError(f"model card input_size must be [height, width] in pixels, got {_show(d['input_size'])}.")
    return int(size[0]), int(size[1])


def _channels(d: dict[str, Any], key: str) -> tuple[float, float, float]:
    v = d[key]
    if not isinstance(v, (list, tuple)) or len(v) != 3 or not all(_is_number(x) for x in v):
        raise ModelError(f"model card {key} must have 3 numbers (one per channel), got {_show(v)}.")
    return float(v[0]), float(v[1]), float(v[2])


def _std(d: dict[str, Any]) -> tuple[float, float, float]:
    std = _channels(d, "std")
    if any(s <= 0 for s in std):
        raise ModelError("model card std values must be positive.")
    return std


def _resize(d: dict[str, Any]) -> str:
    return _choice(d.get("resize", "stretch"), "resize", RESIZE_POLICIES, " policy")


def _temperature(d: dict[str, Any]) -> float:
    t = d.get("temperature", 1.0)
    if not _is_number(t) or not t > 0:
        raise ModelError(f"model card temperature must be positive (a number above 0), got {_show(t)}.")
    return float(t)


def _operating_points(d: dict[str, Any]) -> dict[str, float]:
    raw = d.get("operating_points") or {}
    if not isinstance(raw, dict):
        raise ModelError(f"model card operating_points must map labels to thresholds, got {_show(raw)}.")
    bad = {k: v for k, v in raw.items() if not (_is_number(v) and 0.0 <= v <= 1.0)}
    if bad:
        raise ModelError(f"model card operating_points must be probabilities between 0 and 1, got {_show(bad)}.")
    ops = {str(k): float(v) for k, v in raw.items()}
    unknown = set(ops) - set(d["labels"])  # labels were validated before (table order)
    if unknown:
        raise ModelError(f"model card operating_points name unknown label(s): {sorted(unknown)}.")
    return ops


def _lung_model(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ModelError(f"model card preprocessing.lung_model must be {{\"name\", \"sha256\"}}, got {_show(value)}.")
    name, sha = value.get("name"), value.get("sha256")
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model card preprocessing.lung_model.name must be the lung model's name, got {_show(name)}.")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
        raise ModelError(f"model card preprocessing.lung_model.sha256 must be 64 hex digits, got {_show(sha)}.")
    return {"name": name, "sha256": sha.lower()}


def _crop_margin(raw: dict[str, Any], crop: str) -> dict[str, float]:
    if "crop_margin" not in raw and crop != "lungs":
        return {}
    margin = raw.get("crop_margin", DEFAULT_CROP_MARGIN)
    if not _is_number(margin) or margin < 0:
        raise ModelError(f"model card preprocessing.crop_margin must be a number >= 0 (a fraction of the lung "
                         f"box), got {_show(margin)}.")
    return {"crop_margin": float(margin)}


def _crop_lung_model(raw: dict[str, Any], crop: str) -> dict[str, dict[str, str]]:
    if raw.get("lung_model") is not None:
        return {"lung_model": _lung_model(raw["lung_model"])}
    if crop == "lungs":
        raise ModelError("model card preprocessing.crop 'lungs' needs preprocessing.lung_model "
                         "({\"name\", \"sha256\"} of the lung segmentation model).")
    return {}


def _preprocessing(d: dict[str, Any]) -> dict[str, Any]:
    raw = d.get("preprocessing")
    raw = DEFAULT_PREPROCESSING if raw is None else raw
    if not isinstance(raw, dict):
        raise ModelError(f"model card preprocessing must be a JSON object, got {_show(raw)}.")
    unknown = sorted(set(raw) - set(PREPROCESSING_KEYS))
    if unknown:  # a step this engine does not know would silently be left out: refuse
        raise ModelError(f"model card preprocessing has unknown key(s) {unknown}; this engine knows "
                         f"{list(PREPROCESSING_KEYS)}.")
    crop = _choice(raw.get("crop", "none"), "preprocessing.crop", CROP_POLICIES)
    intensity = _choice(raw.get("intensity", "none"), "preprocessing.intensity", INTENSITY_POLICIES)
    return {"crop": crop, "intensity": intensity, **_crop_margin(raw, crop), **_crop_lung_model(raw, crop)}


def _ood(d: dict[str, Any]) -> dict[str, Any] | None:
    raw = d.get("ood")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ModelError(f"model card ood must be a JSON object or absent, got {_show(raw)}.")
    method, threshold, output = raw.get("method"), raw.get("threshold"), raw.get("output")
    if not isinstance(method, str) or not method.strip():
        raise ModelError(f"model card ood.method must name the out-of-distribution score, got {_show(method)}.")
    if not _is_number(threshold):
        raise ModelError(f"model card ood.threshold must be a number, got {_show(threshold)}.")
    if output != OOD_OUTPUT:
        raise ModelError(f"model card ood.output must be {OOD_OUTPUT!r} (the graph output), got {_show(output)}.")
    return {**raw, "threshold": float(threshold)}


def _decision_rule(d: dict[str, Any]) -> str:
    rule = _text_field(d, "decision_rule", DECISION_RULE) or DECISION_RULE
    if rule not in DECISION_RULES:  # a rule this engine would not apply as written: refuse, never guess
        raise ModelError(f"model card decision_rule {_show(rule)} is not one this engine applies; expected one of "
                         f"{[r[:40] + '...' for r in DECISION_RULES]}.")
    if rule in (DECISION_RULE_MARGIN, DECISION_RULE_COHERENT) and NORMAL_LABEL not in d["labels"]:
        raise ModelError(f"model card decision_rule needs a '{NORMAL_LABEL}' label (the call when no disease is "
                         "flagged).")
    return rule


def _reference_set(d: dict[str, Any]) -> dict[str, Any] | None:
    raw = d.get("reference_set")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ModelError(f"model card reference_set must be a JSON object or absent, got {_show(raw)}.")
    name, sha = raw.get("file"), raw.get("sha256")
    if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
        raise ModelError(f"model card reference_set.file must be a file name beside the model, got {_show(name)}.")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
        raise ModelError(f"model card reference_set.sha256 must be 64 hex digits, got {_show(sha)}.")
    return {**raw, "sha256": sha.lower()}


def _site_adaptation(d: dict[str, Any]) -> dict[str, Any] | None:
    raw = d.get("site_adaptation")
    if raw is None:
        return None
    parent = raw.get("parent") if isinstance(raw, dict) else None
    if not isinstance(parent, dict) or not all(isinstance(parent.get(k), str) and parent.get(k)
                                               for k in ("name", "version", "sha256")):
        raise ModelError("model card site_adaptation must name its parent model {name, version, sha256}, got "
                         f"{_show(raw)}.")
    return dict(raw)


def _view_check(d: dict[str, Any]) -> dict[str, Any] | None:
    raw = d.get("view_check")
    if raw is None:
        return None
    classes = raw.get("classes") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("output") != "view" or not _is_number(raw.get("threshold")) \
            or not 0.0 < raw["threshold"] < 1.0 or not isinstance(classes, list) or "frontal" not in classes \
            or not all(isinstance(c, str) for c in classes):
        raise ModelError("model card view_check must be {\"output\": \"view\", \"classes\": [\"frontal\", ...], "
                         f"\"threshold\": a probability between 0 and 1, ...}}, got {_show(raw)}.")
    trust = raw.get("trust_frontal")
    if trust is not None and not (_is_number(trust) and 0.0 < trust <= 1.0):
        raise ModelError(f"model card view_check.trust_frontal must be a probability, got {_show(trust)}.")
    return {**raw, "threshold": float(raw["threshold"])}


# Field name -> validator, in the order the fields are checked (the first bad one is reported).
_VALIDATORS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda d: _text_field(d, "name"),
    "version": lambda d: _text_field(d, "version"),
    "labels": _labels,
    "input_size": _input_size,
    "mean": lambda d: _channels(d, "mean"),
    "std": _std,
    "resize": _resize,
    "temperature": _temperature,
    "operating_points": _operating_points,
    "training_data": lambda d: _object_field(d, "training_data"),
    "test_metrics": lambda d: _object_field(d, "test_metrics"),
    "extra": lambda d: _object_field(d, "extra"),
    "intended_use": lambda d: _text_field(d, "intended_use", DISCLAIMER) or DISCLAIMER,
    "created": lambda d: _text_field(d, "created", ""),
    "architecture": lambda d: _text_field(d, "architecture", ""),
    "preprocessing": _preprocessing,
    "decision_rule": lambda d: _decision_rule(d),
    "ood": _ood,
    "out_of_source_metrics": lambda d: _object_field(d, "out_of_source_metrics"),
    "reference_set": _reference_set,
    "site_adaptation": _site_adaptation,
    "view_check": _view_check,
}
