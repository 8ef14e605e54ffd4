"""Read a classifier's linear head from its ONNX graph and write an adapted copy with a new head.

The head of a RadLens classifier (DESIGN.md's model contract) is found by structure, not by name:
the Gemm/MatMul node that makes ``logits`` (weight and bias initializers), the Mul by 1/T before
the Softmax that makes ``probs`` (the temperature), and the 1x1 Conv on the last feature map that
makes ``cam`` (the same weights: Grad-CAM of a GAP + linear head). All three are replaced, so the
adapted model's logits, probabilities AND heatmaps follow the new head; the backbone, the lung
model reference and the OOD score are the parent's, byte for byte.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ai.card import CARD_KEY, ModelCard
from ..errors import ModelError
from ..io.fileio import create_temp
from .head import Head


@dataclass(frozen=True)
class HeadNodes:
    weight: str
    bias: str
    transposed: bool  # Gemm transB=1: weight stored [C, D]
    inv_temperature: str
    cam_weight: str


def _onnx():  # noqa: ANN202 - the onnx module
    try:
        import onnx
    except ImportError:
        raise ModelError("site adaptation needs the 'onnx' package, which this installation lacks; install it with "
                         "`pip install onnx` (it is a RadLens dependency).") from None
    return onnx


def _load(path: Path):  # noqa: ANN202 - onnx.ModelProto
    onnx = _onnx()

    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises its own types
        raise ModelError(f"{path.name} cannot be read as ONNX ({e}).") from None


def _inits(model) -> dict:  # noqa: ANN001
    return {i.name: i for i in model.graph.initializer}


def head_nodes(model) -> HeadNodes:  # noqa: ANN001 - onnx.ModelProto
    """The initializers of the head (see the module); ModelError when the graph has no such head."""
    from onnx import numpy_helper

    inits = _inits(model)
    nodes = list(model.graph.node)
    gemm = next((n for n in nodes if "logits" in n.output and n.op_type in ("Gemm", "MatMul")), None)
    if gemm is None or len(gemm.input) < 2 or gemm.input[1] not in inits:
        raise ModelError("the model's 'logits' do not come from a linear head (Gemm with stored weights), so its "
                         "head cannot be refitted.")
    transposed = gemm.op_type == "Gemm" and any(a.name == "transB" and a.i == 1 for a in gemm.attribute)
    bias = gemm.input[2] if gemm.op_type == "Gemm" and len(gemm.input) > 2 else ""
    if bias not in inits:
        raise ModelError("the model's linear head has no stored bias; its head cannot be refitted.")
    soft = next((n for n in nodes if "probs" in n.output and n.op_type == "Softmax"), None)
    mul = next((n for n in nodes if soft is not None and soft.input[0] in n.output and n.op_type == "Mul"), None)
    inv_t = next((i for i in (mul.input if mul is not None else []) if i in inits), None)
    if inv_t is None or "logits" not in mul.input:
        raise ModelError("the model's 'probs' are not softmax(logits / T) with a stored temperature; its head "
                         "cannot be refitted.")
    w = numpy_helper.to_array(inits[gemm.input[1]])
    w = w if transposed else w.T
    cam = None
    for n in nodes:
        if n.op_type == "Conv" and len(n.input) >= 2 and n.input[1] in inits:
            cw = numpy_helper.to_array(inits[n.input[1]])
            if cw.shape == (*w.shape, 1, 1) and np.array_equal(cw.reshape(w.shape), w):
                cam = n.input[1]
    if cam is None:
        raise ModelError("the model's 'cam' is not computed from the head's weights; its head cannot be refitted.")
    return HeadNodes(gemm.input[1], bias, transposed, inv_t, cam)


def base_head(path: Path) -> Head:
    """The classifier's linear head (float64 copies of its weights)."""
    from onnx import numpy_helper

    model = _load(Path(path))
    hn = head_nodes(model)
    inits = _inits(model)
    w = numpy_helper.to_array(inits[hn.weight]).astype(np.float64)
    return Head(w if hn.transposed else w.T, numpy_helper.to_array(inits[hn.bias]).astype(np.float64).ravel())


def adapted_model(parent: Path, head: Head, temperature: float, card: ModelCard):  # noqa: ANN201 - onnx.ModelProto
    """A copy of ``parent``'s graph with ``head``, 1/``temperature`` and ``card`` (in memory)."""
    from onnx import numpy_helper

    model = _load(Path(parent))
    hn = head_nodes(model)
    inits = _inits(model)
    w = head.weight.astype(np.float32)
    new = {
        hn.weight: w if hn.transposed else w.T.copy(),
        hn.bias: head.bias.astype(np.float32),
        hn.cam_weight: w.reshape(*w.shape, 1, 1),
        hn.inv_temperature: np.full(numpy_helper.to_array(inits[hn.inv_temperature]).shape, 1.0 / temperature,
                                    np.float32),
    }
    for name, arr in new.items():
        inits[name].CopyFrom(numpy_helper.from_array(arr, name))
    set_card(model, card)
    model.producer_name = "radlens-adapt"
    return model


def set_card(model, card: ModelCard) -> None:  # noqa: ANN001 - onnx.ModelProto
    from onnx import helper

    del model.metadata_props[:]
    helper.set_model_props(model, {CARD_KEY: card.to_json()})


def call_cam_peaks(model, x: np.ndarray) -> np.ndarray:  # noqa: ANN001 - onnx.ModelProto
    """The peak of the call's Grad-CAM map for each input [N, 3, H, W], run on the CPU from memory."""
    import onnxruntime as ort

    if len(x) == 0:
        return np.zeros(0, np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    probs, cam = sess.run(["probs", "cam"], {"image": np.ascontiguousarray(x, np.float32)})
    top = probs.argmax(1)
    return cam[np.arange(len(cam)), top].reshape(len(cam), -1).max(1)


def save_model(model, out: Path) -> Path:  # noqa: ANN001 - onnx.ModelProto
    """Check and write ``model`` atomically (a temp file beside ``out``, then a rename)."""
    import onnx

    onnx.checker.check_model(model)
    out = Path(out)
    fd, tmp = create_temp(out)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def write_adapted(parent: Path, out: Path, head: Head, temperature: float, card: ModelCard) -> Path:
    """A copy of ``parent`` with ``head``, 1/``temperature`` and ``card``, written atomically to ``out``."""
    return save_model(adapted_model(parent, head, temperature, card), out)
