"""A small real CNN in ONNX that satisfies the full RadLens model contract.

Built with ``onnx.helper`` from seeded random weights, so engine and desktop tests need
neither torch nor the trained model. Two 3x3 stride-2 convolutions with ReLU, global
average pooling and a linear head; ``cam`` is the linear head applied to the last
feature map (Grad-CAM for a GAP + linear head), ``probs`` a temperature-scaled softmax.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABELS = ("normal", "covid", "pneumonia", "tuberculosis")


def tiny_card(labels: tuple[str, ...] = LABELS, size: int = 64, **overrides) -> dict:
    card = {
        "name": "tiny-test-cnn", "version": "0.0.1", "labels": list(labels), "input_size": [size, size],
        "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize": "stretch", "temperature": 1.5,
        "operating_points": {lab: 0.5 for lab in labels},
        "training_data": {"summary": "none: seeded random weights for tests"},
        "test_metrics": {}, "intended_use": "Research use only, not for diagnosis. Test fixture.",
        "created": "2026-11-23", "architecture": "tiny-cnn",
    }
    card.update(overrides)
    return card


def build_tiny_model(path: str | Path, labels: tuple[str, ...] = LABELS, size: int = 64, seed: int = 0,
                     card: dict | None = None, output_names: tuple[str, str, str] = ("logits", "probs", "cam"),
                     input_name: str = "image") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    c = len(labels)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((16, 8, 3, 3)) * 0.3).astype(np.float32)
    b2 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    wf = (rng.standard_normal((c, 16)) * 0.8).astype(np.float32)
    bf = (rng.standard_normal(c) * 0.1).astype(np.float32)
    card = card if card is not None else tiny_card(labels, size)
    temperature = float(card.get("temperature", 1.0))
    inits = [
        numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2"),
        numpy_helper.from_array(wf.T.copy(), "wf_t"), numpy_helper.from_array(bf, "bf"),
        numpy_helper.from_array(wf.reshape(c, 16, 1, 1), "wcam"),
        numpy_helper.from_array(np.array([temperature], np.float32), "temp"),
        numpy_helper.from_array(np.array([-1, 16], np.int64), "flat"),
    ]
    lo, pr, cm = output_names
    nodes = [
        helper.make_node("Conv", [input_name, "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["feat"]),
        helper.make_node("GlobalAveragePool", ["feat"], ["gap"]),
        helper.make_node("Reshape", ["gap", "flat"], ["pooled"]),
        helper.make_node("Gemm", ["pooled", "wf_t", "bf"], [lo]),
        helper.make_node("Div", [lo, "temp"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], [pr], axis=1),
        helper.make_node("Conv", ["feat", "wcam"], ["cam_raw"]),
        helper.make_node("Relu", ["cam_raw"], [cm]),
    ]
    h = size // 4
    graph = helper.make_graph(
        nodes, "tiny_radlens",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(lo, TensorProto.FLOAT, ["N", c]),
         helper.make_tensor_value_info(pr, TensorProto.FLOAT, ["N", c]),
         helper.make_tensor_value_info(cm, TensorProto.FLOAT, ["N", c, h, h])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="radlens-tests")
    model.ir_version = 8
    if card:
        helper.set_model_props(model, {"radlens.card": json.dumps(card)})
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path
