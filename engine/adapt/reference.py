"""The reference set shipped beside a base model: its own training features, labels and sources.

``MODEL.reference.npz`` (written by ``python -m training features``) holds float16 ``features``
[R, D], ``label`` [R] (indices into ``labels``), ``source`` [R], ``part`` [R] ("fit": training-split
films, the head is refitted on them; "calib": validation-split films, for the temperature and the
operating points; "holdout": test-split films, never fitted on) and ``probe``: the features of two fixed
inputs (``probe_inputs``), so the engine can check that the file belongs to this backbone. The
model card names the file and its SHA-256 (``reference_set``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ai.model import FEATURES_OUTPUT, Classifier, sha256_file
from ..errors import ModelError

__all__ = ["FEATURES_OUTPUT", "REFERENCE_SUFFIX", "Reference", "load_reference", "probe_inputs"]

REFERENCE_SUFFIX = ".reference.npz"
PROBE_TOLERANCE = 2e-2  # features of the probe inputs may differ by CPU/GPU numerics, not by a backbone


def probe_inputs(size: tuple[int, int]) -> np.ndarray:
    """Two fixed model inputs [2, 3, H, W]: a flat grey and a diagonal ramp."""
    h, w = size
    ramp = (np.add.outer(np.arange(h), np.arange(w)) / float(h + w - 2) * 4.0 - 2.0).astype(np.float32)
    return np.stack([np.zeros((3, h, w), np.float32), np.repeat(ramp[None], 3, 0)])


@dataclass(frozen=True)
class Reference:
    features: np.ndarray  # float32 [R, D]
    label: np.ndarray  # int [R]
    source: np.ndarray  # str [R]
    part: np.ndarray  # str [R]: "fit" | "calib" | "holdout"
    labels: tuple[str, ...]
    path: Path
    meta: dict

    def select(self, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.part == part
        return self.features[m], self.label[m], self.source[m]


def _candidates(classifier: Classifier, name: str) -> list[Path]:
    from ..resources import resource_dir

    return [classifier.path.parent / name, resource_dir() / "models" / name]


def load_reference(classifier: Classifier) -> Reference:
    """The reference set the classifier's card names, checked (SHA-256, labels, dimension, probe).
    ModelError naming what is wrong otherwise."""
    spec = classifier.card.reference_set
    if not classifier.has_features:
        raise ModelError(f"{classifier.path.name} has no '{FEATURES_OUTPUT}' output, so it cannot be adapted to a "
                         "site. Use a model exported with it (the bundled model has it).")
    if not spec:
        raise ModelError(f"{classifier.path.name}'s card names no reference set (the base model's training features), "
                         "so it cannot be adapted. Rebuild it with `python -m training features MODEL.onnx`.")
    path = next((p for p in _candidates(classifier, spec["file"]) if p.is_file() and sha256_file(p) == spec["sha256"]),
                None)
    if path is None:
        raise ModelError(f"the reference set {spec['file']} (SHA-256 {spec['sha256'][:12]}...) named by "
                         f"{classifier.path.name} was not found beside the model or in the bundled models. Keep the "
                         "file beside the model.")
    try:
        with np.load(path, allow_pickle=False) as z:
            ref = Reference(features=z["features"].astype(np.float32), label=z["label"].astype(np.int64),
                            source=z["source"].astype(str), part=z["part"].astype(str),
                            labels=tuple(z["labels"].astype(str)), path=path, meta=json.loads(str(z["meta"])))
            probe = z["probe"].astype(np.float32)
    except (OSError, KeyError, ValueError) as e:
        raise ModelError(f"the reference set {path.name} cannot be read ({e}).") from None
    missing = {"fit", "calib", "holdout"} - set(ref.part.tolist())
    if missing:
        raise ModelError(f"the reference set {path.name} has no {', '.join(sorted(missing))} rows; rebuild it with "
                         "`python -m training features`.")
    if ref.labels != tuple(classifier.labels):
        raise ModelError(f"the reference set {path.name} has labels {list(ref.labels)} but the model has "
                         f"{list(classifier.labels)}.")
    got = classifier.run(probe_inputs(classifier.card.input_size), features=True).features
    if got.shape != probe.shape or float(np.abs(got - probe).max()) > PROBE_TOLERANCE:
        raise ModelError(f"the reference set {path.name} was made with another backbone than {classifier.path.name} "
                         "(its probe features differ); rebuild it with `python -m training features`.")
    return ref
