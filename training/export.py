"""ONNX export per the model contract, with self-verification that fails loudly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .models import CamNet, ExportModule


class ExportVerificationError(RuntimeError):
    pass


def export_onnx(net: CamNet, temperature: float, card: dict, path: Path, size: tuple[int, int]) -> Path:
    import onnx
    from onnx import helper

    net = net.eval().to(memory_format=torch.contiguous_format)
    module = ExportModule(net, temperature).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            module, torch.zeros(1, 3, *size), str(path), input_names=["image"], output_names=["logits", "probs", "cam"],
            dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}, "probs": {0: "N"}, "cam": {0: "N"}},
            opset_version=17, dynamo=False,
        )
    model = onnx.load(str(path))
    helper.set_model_props(model, {"radlens.card": json.dumps(card, sort_keys=True)})
    model.producer_name = "radlens-training"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def autograd_gradcam(net: CamNet, x: torch.Tensor) -> torch.Tensor:
    """Reference Grad-CAM with hooks on the last conv layer: [N, C, h, w]."""
    net = net.eval()
    store: dict[str, torch.Tensor] = {}

    def hook(_m, _i, out):  # noqa: ANN001, ANN202
        out.retain_grad()
        store["a"] = out

    handle = net.layers[-1].register_forward_hook(hook)
    try:
        maps = []
        for c in range(net.fc.out_features):
            net.zero_grad(set_to_none=True)
            logits = net(x.clone().requires_grad_(False))
            logits[:, c].sum().backward()
            a, g = store["a"], store["a"].grad
            alpha = g.mean(dim=(2, 3), keepdim=True)
            maps.append(torch.relu((alpha * a).sum(1)).detach())
    finally:
        handle.remove()
    return torch.stack(maps, dim=1)


def verify_export(path: Path, net: CamNet, temperature: float, images: np.ndarray, labels: list[str],
                  prob_tol: float = 1e-4, cam_corr: float = 0.99) -> dict:
    """onnxruntime vs torch on real images; in-graph CAM vs autograd Grad-CAM; engine accepts it."""
    import onnxruntime as ort

    from engine.model import Classifier

    x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
    net = net.eval().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        t_logits, t_probs, _ = ExportModule(net, temperature).eval()(x)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    o_logits, o_probs, o_cam = sess.run(["logits", "probs", "cam"], {"image": images.astype(np.float32)})
    prob_diff = float(np.abs(o_probs - t_probs.numpy()).max())
    ref = autograd_gradcam(net, x).numpy()
    corrs = {}
    for c, lab in enumerate(labels):
        a, b = o_cam[:, c].ravel(), ref[:, c].ravel()
        if a.std() == 0 and b.std() == 0:
            corrs[lab] = 1.0 if np.allclose(a, b) else 0.0
        else:
            corrs[lab] = float(np.corrcoef(a, b)[0, 1])
    clf = Classifier(path, device="cpu")
    report = {"n_images": int(len(images)), "max_abs_prob_diff": prob_diff, "cam_correlation": corrs,
              "engine_accepts": True, "engine_labels": list(clf.labels), "sha256": clf.sha256}
    problems = []
    if prob_diff > prob_tol:
        problems.append(f"onnxruntime vs torch probabilities differ by {prob_diff:.2e} > {prob_tol:.0e}")
    bad = {k: v for k, v in corrs.items() if not v >= cam_corr}
    if bad:
        problems.append(f"in-graph CAM vs autograd Grad-CAM correlation below {cam_corr}: {bad}")
    if list(clf.labels) != list(labels):
        problems.append(f"engine reads labels {list(clf.labels)}, expected {labels}")
    if problems:
        raise ExportVerificationError("; ".join(problems))
    return report
