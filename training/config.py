"""Training configuration: YAML files with dotted command-line overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

DEFAULTS: dict[str, Any] = {
    "name": "radlens-model",
    "version": "0.1.0",
    "data": "../shared/data/cxr",
    "classes": None,
    "max_per_class": 0,  # >0: subsample (smoke runs)
    "split": {"fractions": [0.7, 0.15, 0.15], "seed": 42, "file": None},
    "model": {"arch": "efficientnet_lite0", "pretrained": True, "freeze_layers": 12, "dropout": 0.2},
    "input": {"size": [224, 224], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize": "stretch"},
    "train": {"epochs": 8, "batch_size": 64, "optimizer": "adamw", "lr": 1.0e-3, "momentum": 0.9,
              "weight_decay": 0.01, "warmup_epochs": 0.5, "aug_views": 2, "balance": "loss_weights",
              "seed": 42, "threads": 0, "max_steps": 0},
    "card": {"intended_use": "Research use only, not for diagnosis.", "training_data": {}},
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(name_or_path: str, overrides: list[str] | None = None) -> dict:
    """A config by name (training/configs/NAME.yaml) or path, with ``a.b=value`` overrides
    (values parsed as YAML, so numbers, lists and booleans work)."""
    path = Path(name_or_path)
    if not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"config {name_or_path!r} not found; known configs: {known}")
    cfg = _merge(DEFAULTS, yaml.safe_load(path.read_text()) or {})
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must be key=value (e.g. train.epochs=2)")
        key, value = item.split("=", 1)
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return cfg
