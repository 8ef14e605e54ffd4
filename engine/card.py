"""The model card: the JSON stored in the ONNX ``metadata_props`` under ``radlens.card``.

The preprocessing config travels with the model (timm's habit), so serving and training
cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ModelError

CARD_KEY = "radlens.card"
RESIZE_POLICIES = ("stretch", "letterbox")
DISCLAIMER = "Research use only, not for diagnosis"


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
        missing = [k for k in ("name", "version", "labels", "input_size", "mean", "std") if k not in d]
        if missing:
            raise ModelError(f"model card is missing required field(s): {', '.join(missing)}.")
        labels = tuple(str(x) for x in d["labels"])
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ModelError(f"model card labels must be at least two distinct names, got {list(labels)}.")
        size = d["input_size"]
        if isinstance(size, int):
            size = [size, size]
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ModelError(f"model card input_size must be [height, width] in pixels, got {d['input_size']!r}.")
        for key in ("mean", "std"):
            v = d[key]
            if len(v) != 3 or not all(isinstance(x, (int, float)) for x in v):
                raise ModelError(f"model card {key} must have 3 numbers (one per channel), got {v!r}.")
        if any(float(s) <= 0 for s in d["std"]):
            raise ModelError("model card std values must be positive.")
        resize = d.get("resize", "stretch")
        if resize not in RESIZE_POLICIES:
            raise ModelError(f"model card resize policy {resize!r} unknown; expected one of {RESIZE_POLICIES}.")
        temperature = float(d.get("temperature", 1.0))
        if not temperature > 0:
            raise ModelError(f"model card temperature must be positive, got {temperature}.")
        ops = {str(k): float(v) for k, v in (d.get("operating_points") or {}).items()}
        unknown = set(ops) - set(labels)
        if unknown:
            raise ModelError(f"model card operating_points name unknown label(s): {sorted(unknown)}.")
        known = set(cls.__dataclass_fields__)
        return cls(
            name=str(d["name"]), version=str(d["version"]), labels=labels,
            input_size=(int(size[0]), int(size[1])),
            mean=tuple(float(x) for x in d["mean"]), std=tuple(float(x) for x in d["std"]),  # type: ignore[arg-type]
            resize=resize, temperature=temperature, operating_points=ops,
            training_data=dict(d.get("training_data") or {}), test_metrics=dict(d.get("test_metrics") or {}),
            intended_use=str(d.get("intended_use") or DISCLAIMER), created=str(d.get("created", "")),
            architecture=str(d.get("architecture", "")),
            extra={k: v for k, v in d.items() if k not in known} | dict(d.get("extra") or {}),
        )
