"""Load an ONNX classifier, validate the model contract, pick the execution provider."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .card import CARD_KEY, ModelCard
from .session import DEVICES, open_session, sha256_file

__all__ = ["DEVICES", "FEATURES_OUTPUT", "Classifier", "ModelOutputs", "default_model_path", "open_session",
           "sha256_file", "validate_contract"]

log = logging.getLogger(__name__)

REQUIRED_OUTPUTS = ("logits", "probs", "cam")
# the out-of-distribution score [N] (higher = less like the training data); the view probabilities [N, K]
# (the card's view_check classes, e.g. frontal / lateral / other: scope check 2)
OPTIONAL_OUTPUTS = ("ood", "view")
FEATURES_OUTPUT = "features"  # optional [N, D]: the pooled features feeding the linear head (site adaptation)


def default_model_path() -> Path:
    """The bundled default model (resources/models/), also inside a frozen app."""
    env = os.environ.get("RADLENS_MODEL")
    if env:
        return Path(env)
    from ..resources import resource_dir

    models = resource_dir() / "models"
    preferred = models / "radlens-cxr4.onnx"
    if preferred.exists():
        return preferred
    found = sorted(models.glob("*.onnx"))
    return found[0] if found else preferred


@dataclass(frozen=True)
class ModelOutputs:
    logits: np.ndarray  # [N, C]
    probs: np.ndarray  # [N, C]
    cam: np.ndarray  # [N, C, h, w]
    ood: np.ndarray | None = None  # [N], when the model has the optional output
    features: np.ndarray | None = None  # [N, D], only when asked for (``run(..., features=True)``)
    view: np.ndarray | None = None  # [N, K], the view probabilities, when the model has the optional output


def _dims(shape: list) -> list:
    return [d if isinstance(d, int) else None for d in shape]


def validate_contract(session, card: ModelCard) -> None:  # noqa: ANN001 - onnxruntime session
    """Raise ModelError naming the first mismatch between the graph, the card and the contract."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != "image":
        raise ModelError(f"model must have exactly one input named 'image'; it has {[i.name for i in inputs]}.")
    inp = inputs[0]
    if inp.type != "tensor(float)":
        raise ModelError(f"input 'image' must be float32, got {inp.type}.")
    ishape = _dims(inp.shape)
    if len(ishape) != 4:
        raise ModelError(f"input 'image' must be [N, 3, H, W], got shape {inp.shape}.")
    if ishape[1] not in (None, 3):
        raise ModelError(f"input 'image' must have 3 channels, got {ishape[1]}.")
    h, w = card.input_size
    if ishape[2] not in (None, h) or ishape[3] not in (None, w):
        raise ModelError(f"input 'image' is {ishape[2]}x{ishape[3]} but the card says input_size {h}x{w}.")
    outs = {o.name: o for o in session.get_outputs()}
    missing = [n for n in REQUIRED_OUTPUTS if n not in outs]
    if missing:
        raise ModelError(f"model is missing output(s) {missing}; the contract needs {list(REQUIRED_OUTPUTS)}.")
    n_cls = len(card.labels)
    for name, rank in (("logits", 2), ("probs", 2), ("cam", 4)):
        shape = _dims(outs[name].shape)
        if len(shape) != rank:
            raise ModelError(f"output '{name}' must have rank {rank}, got shape {outs[name].shape}.")
        if shape[1] not in (None, n_cls):
            raise ModelError(f"output '{name}' has {shape[1]} classes but the card lists {n_cls} labels {list(card.labels)}.")
    if "ood" in outs and len(_dims(outs["ood"].shape)) != 1:
        raise ModelError(f"output 'ood' must be [N] (one score per image), got shape {outs['ood'].shape}.")
    if FEATURES_OUTPUT in outs and len(_dims(outs[FEATURES_OUTPUT].shape)) != 2:
        raise ModelError(f"output '{FEATURES_OUTPUT}' must be [N, D] (pooled features), got shape "
                         f"{outs[FEATURES_OUTPUT].shape}.")
    vc = getattr(card, "view_check", None)
    if vc and "view" not in outs:
        raise ModelError("the model card describes a view check ('view') but the graph has no 'view' output; "
                         "re-export the model.")
    if "view" in outs:
        shape = _dims(outs["view"].shape)
        if len(shape) != 2 or (vc and shape[1] not in (None, len(vc["classes"]))):
            raise ModelError(f"output 'view' must be [N, {len(vc['classes']) if vc else 'K'}] (view probabilities), "
                             f"got shape {outs['view'].shape}.")
    if getattr(card, "ood", None) and "ood" not in outs:
        raise ModelError("the model card describes an out-of-distribution score ('ood') but the graph has no 'ood' "
                         "output; re-export the model.")


_UNSET = object()


class Classifier:
    """An ONNX model that satisfies the RadLens contract. ``run`` is thread-safe."""

    def __init__(self, path: str | os.PathLike[str], device: str = "auto", warmup: bool = True,
                 threads: int = 0) -> None:
        self.path = Path(path)
        if device not in DEVICES:
            raise ModelError(f"device must be one of {DEVICES}, got {device!r}.")
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}. Choose an .onnx model file.")
        try:
            self.sha256 = sha256_file(self.path)
        except OSError as e:
            raise ModelError(f"model file cannot be read: {self.path} ({e.strerror or e}).") from None
        self.session, self.provider_note = open_session(self.path, device, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if CARD_KEY not in meta:
            raise ModelError(f"{self.path.name} has no model card (metadata '{CARD_KEY}'); it is not a RadLens model.")
        self.card = ModelCard.from_json(meta[CARD_KEY])
        validate_contract(self.session, self.card)
        from .lungs import segmenter_for  # here: engine.ai.lungs imports this module
        self.segmenter = segmenter_for(self.card, self.path, device, threads)  # None unless the card names a lung model
        self._device, self._threads = device, threads
        self.provider = self.session.get_providers()[0]
        names = {o.name for o in self.session.get_outputs()}
        self._outputs = [*REQUIRED_OUTPUTS, *(n for n in OPTIONAL_OUTPUTS if n in names)]
        self.has_ood = "ood" in names
        self.has_features = FEATURES_OUTPUT in names
        self._scope_segmenter: object = _UNSET
        if warmup:
            self._warmup()

    @property
    def lung_segmenter(self):  # noqa: ANN201 - engine.ai.lungs.LungSegmenter | None
        """The lung model of the per-image job: the one the card names (its preprocessing crops
        with it), else the bundled one, for the scope check."""
        if self.segmenter is not None:
            return self.segmenter
        from .lungs import lungseg_disabled, scope_segmenter

        if lungseg_disabled():  # read at every image (a dict lookup): the switch works at once
            return None
        if self._scope_segmenter is _UNSET:  # found once (the file check, the shared session), not per image
            self._scope_segmenter = scope_segmenter(self._device, self._threads)
        return self._scope_segmenter

    @property
    def threads(self) -> int:
        """onnxruntime's threads per run (0: onnxruntime's default, every core)."""
        return self._threads

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def device_label(self) -> str:
        return "CUDA (GPU)" if self.provider == "CUDAExecutionProvider" else "CPU"

    def _warmup(self) -> None:
        h, w = self.card.input_size
        try:
            out = self.run(np.zeros((1, 3, h, w), np.float32))
        except Exception as e:  # noqa: BLE001
            if self.provider != "CPUExecutionProvider":
                self.provider_note = f"CUDA failed on the first inference ({str(e).splitlines()[0]}); using the CPU."
                self.session, _ = open_session(self.path, "cpu", self._threads)
                self.provider = "CPUExecutionProvider"
                out = self.run(np.zeros((1, 3, h, w), np.float32))
            else:
                raise ModelError(f"{self.path.name}: the model failed on a test input ({e}).") from None
        if out.probs.shape[1] != len(self.labels):
            raise ModelError(f"{self.path.name}: 'probs' gives {out.probs.shape[1]} classes but the card lists {len(self.labels)} labels.")

    def run(self, batch: np.ndarray, features: bool = False) -> ModelOutputs:
        """Run on preprocessed input [N, 3, H, W] float32. ``features=True`` also returns the pooled
        features (the model must have the optional ``features`` output)."""
        if batch.ndim != 4:
            raise ValueError(f"expected [N, 3, H, W], got {batch.shape}")
        if features and not self.has_features:
            raise ModelError(f"{self.path.name} has no '{FEATURES_OUTPUT}' output (pooled features); re-export it "
                             "with `python -m training features MODEL.onnx`.")
        names = [*self._outputs, FEATURES_OUTPUT] if features else self._outputs
        out = self.session.run(names, {"image": np.ascontiguousarray(batch, np.float32)})
        got = dict(zip(names, out, strict=True))
        return ModelOutputs(logits=got["logits"], probs=got["probs"], cam=got["cam"], ood=got.get("ood"),
                            features=got.get(FEATURES_OUTPUT), view=got.get("view"))

    def describe(self) -> dict[str, str]:
        return {"model_name": self.card.name, "model_version": self.card.version, "model_sha256": self.sha256}
