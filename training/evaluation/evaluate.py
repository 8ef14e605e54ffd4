"""Evaluate an exported .onnx (through the engine, as the app runs it) or a checkpoint."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.ai.model import Classifier
from engine.ai.preprocess import preprocess
from engine.io import load_image

from ..data.data import Sample
from .metrics import evaluate


def _known(samples: list[Sample], labels: list[str]) -> list[Sample]:
    known = [s for s in samples if s.label in labels]
    if not known:
        found = sorted({s.label for s in samples})
        raise ValueError(f"none of the {len(samples)} samples has a label the model knows: data has {found}, "
                         f"the model {list(labels)}. Select or rename classes to match the model.")
    return known


def onnx_logits(model_path: Path, samples: list[Sample], batch: int = 32, device: str = "cpu") -> tuple[np.ndarray, Classifier]:
    clf = Classifier(model_path, device=device)

    def prep(s: Sample) -> np.ndarray:
        return preprocess(load_image(s.path).pixels, clf.card)

    outs = []
    with ThreadPoolExecutor(2) as ex, tqdm(total=len(samples), desc="evaluate onnx", unit="img", mininterval=5) as bar:
        for i in range(0, len(samples), batch):
            x = np.stack(list(ex.map(prep, samples[i : i + batch])))
            outs.append(clf.run(x).logits)
            bar.update(len(x))
    return np.concatenate(outs), clf


def evaluate_onnx(model_path: Path, samples: list[Sample], device: str = "cpu") -> dict:
    """Metrics of an .onnx on samples whose labels the model knows (others are counted, skipped)."""
    clf = Classifier(model_path, device=device, warmup=False)
    labels = list(clf.labels)
    known = _known(samples, labels)
    logits, clf = onnx_logits(model_path, known, device=device)
    y = np.array([labels.index(s.label) for s in known])
    m = evaluate(logits, y, labels, clf.card.temperature)
    m["skipped_unknown_label"] = len(samples) - len(known)
    m["model"] = {"name": clf.card.name, "version": clf.card.version, "sha256": clf.sha256}
    return m
