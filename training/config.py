"""Training configuration: YAML files with dotted command-line overrides."""

from __future__ import annotations

import copy
import re
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


class _Loader(yaml.SafeLoader):
    """YAML with 1.2 floats: PyYAML reads ``3e-4`` (no dot) as a string, which would reach the
    optimiser as text."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe


# sections whose keys are all known: a typo in an override is an error, not a silent no-op
STRICT_SECTIONS = ("split", "model", "input", "train")


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
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"config {name_or_path!r} not found; known configs: {known} (or give a YAML file path)")
    loaded = _yaml(path.read_text())
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError(f"config {path} must be a YAML mapping of settings")
    cfg = _merge(DEFAULTS, loaded or {})
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must be key=value (e.g. train.epochs=2)")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = cfg
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parts[: i + 1])} is a value, not a section")
        section = DEFAULTS.get(parts[0]) if len(parts) == 2 else None
        if parts[0] in STRICT_SECTIONS and isinstance(section, dict) and parts[1] not in section:
            raise ValueError(f"override {item!r}: unknown setting {key!r}; {parts[0]} has {sorted(section)}")
        node[parts[-1]] = _yaml(value)
    return cfg
