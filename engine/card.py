"""The model card: the JSON stored in the ONNX ``metadata_props`` under ``radlens.card``.

The preprocessing config travels with the model (timm's habit), so serving and training
cannot drift apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ModelError

CARD_KEY = "radlens.card"
RESIZE_POLICIES = ("stretch", "letterbox")
DISCLAIMER = "Research use only, not for diagnosis"


# Every field DESIGN.md's model contract lists; a card without one is refused, naming it.
REQUIRED_FIELDS = ("name", "version", "labels", "input_size", "mean", "std", "resize", "temperature",
                   "operating_points", "training_data", "test_metrics", "intended_use", "created")


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

    def to_json(self) -> str:
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return json.dumps(d, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"model card '{CARD_KEY}' is not valid JSON ({e}).") from None
        if not isinstance(d, dict):
            raise ModelError(f"model card '{CARD_KEY}' must be a JSON object.")
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Validate a card: every field of the wrong type or out of range is a
        ``ModelError`` naming the field, never a bare ValueError/TypeError."""
        if not isinstance(d, dict):
            raise ModelError(f"model card must be a JSON object, got {type(d).__name__}.")
        missing = [k for k in REQUIRED_FIELDS if k not in d]
        if missing:
            raise ModelError(f"model card is missing required field(s): {', '.join(missing)}.")
        name, version = _text_field(d, "name"), _text_field(d, "version")
        raw_labels = d["labels"]
        if not isinstance(raw_labels, (list, tuple)) or not all(isinstance(x, str) and x.strip() for x in raw_labels):
            raise ModelError(f"model card labels must be a list of class names, got {_show(raw_labels)}.")
        labels = tuple(raw_labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ModelError(f"model card labels must be at least two distinct names, got {list(labels)}.")
        size = d["input_size"]
        if _is_int(size):
            size = [size, size]
        if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(s) and s > 0 for s in size):
            raise ModelError(f"model card input_size must be [height, width] in pixels, got {_show(d['input_size'])}.")
        for key in ("mean", "std"):
            v = d[key]
            if not isinstance(v, (list, tuple)) or len(v) != 3 or not all(_is_number(x) for x in v):
                raise ModelError(f"model card {key} must have 3 numbers (one per channel), got {_show(v)}.")
        if any(float(s) <= 0 for s in d["std"]):
            raise ModelError("model card std values must be positive.")
        resize = d.get("resize", "stretch")
        if not isinstance(resize, str) or resize not in RESIZE_POLICIES:
            raise ModelError(f"model card resize policy {_show(resize)} unknown; expected one of {RESIZE_POLICIES}.")
        temperature = d.get("temperature", 1.0)
        if not _is_number(temperature) or not temperature > 0:
            raise ModelError(f"model card temperature must be positive (a number above 0), got {_show(temperature)}.")
        raw_ops = d.get("operating_points") or {}
        if not isinstance(raw_ops, dict):
            raise ModelError(f"model card operating_points must map labels to thresholds, got {_show(raw_ops)}.")
        bad = {k: v for k, v in raw_ops.items() if not (_is_number(v) and 0.0 <= v <= 1.0)}
        if bad:
            raise ModelError(f"model card operating_points must be probabilities between 0 and 1, got {_show(bad)}.")
        ops = {str(k): float(v) for k, v in raw_ops.items()}
        unknown = set(ops) - set(labels)
        if unknown:
            raise ModelError(f"model card operating_points name unknown label(s): {sorted(unknown)}.")
        objects = {key: _object_field(d, key) for key in ("training_data", "test_metrics", "extra")}
        known = set(cls.__dataclass_fields__)
        return cls(
            name=name, version=version, labels=labels,
            input_size=(int(size[0]), int(size[1])),
            mean=tuple(float(x) for x in d["mean"]), std=tuple(float(x) for x in d["std"]),  # type: ignore[arg-type]
            resize=resize, temperature=float(temperature), operating_points=ops,
            training_data=objects["training_data"], test_metrics=objects["test_metrics"],
            intended_use=_text_field(d, "intended_use", DISCLAIMER) or DISCLAIMER,
            created=_text_field(d, "created", ""), architecture=_text_field(d, "architecture", ""),
            extra={k: v for k, v in d.items() if k not in known} | objects["extra"],
        )


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
