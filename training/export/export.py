"""ONNX export per the model contract, with self-verification that fails loudly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.ai.card import CARD_KEY, ModelCard

from ..evaluation.metrics import softmax
from ..recipes.models import CamNet, ExportModule


class ExportVerificationError(RuntimeError):
    pass


def validated_card(card: ModelCard | dict) -> ModelCard:
    """The card through the engine's schema (``ModelCard.from_dict``), exactly as the engine
    will read it back; a bad field raises the engine's ``ModelError`` naming it."""
    return ModelCard.from_dict(card.to_dict() if isinstance(card, ModelCard) else card)


def export_onnx(net: CamNet, temperature: float, card: ModelCard | dict, path: Path, size: tuple[int, int]) -> Path:
    card = validated_card(card)  # before anything is written: a bad card fails the export, naming the field
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
        cam_hw = module(torch.zeros(1, 3, *size))[2].shape[2:]
    _fix_cam_dims(path, tuple(int(v) for v in cam_hw))
    write_card(path, card)
    return path


def _fix_cam_dims(path: Path, hw: tuple[int, int]) -> None:
    """The tracer names the CAM's height and width symbolically (even after the batch axis);
    they are fixed by the input size, so declare them as numbers."""
    import onnx

    model = onnx.load(str(path))
    cam = next(o for o in model.graph.output if o.name == "cam")
    for dim, value in zip(cam.type.tensor_type.shape.dim[2:], hw, strict=True):
        dim.Clear()
        dim.dim_value = value
    onnx.save(model, str(path))


def write_card(path: Path, card: ModelCard | dict) -> Path:
    """Store ``card`` as the ``radlens.card`` metadata of an exported model (the graph is untouched).

    The card is validated first by the engine's ``ModelCard`` (the one schema); a bad card raises
    ``engine.errors.ModelError`` and the file is left as it was."""
    import onnx
    from onnx import helper

    text = validated_card(card).to_json()
    model = onnx.load(str(path))
    del model.metadata_props[:]
    helper.set_model_props(model, {CARD_KEY: text})
    model.producer_name = "radlens-training"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def autograd_gradcam(net: CamNet, x: torch.Tensor) -> torch.Tensor:
    """Reference Grad-CAM with a forward hook on the last conv layer: [N, C, h, w].

    One forward pass through the whole torch model; the gradient of each class logit with
    respect to the hooked activations A comes from autograd, alpha = spatial mean of it."""
    net = net.eval()
    store: dict[str, torch.Tensor] = {}

    def hook(_m, _i, out):  # noqa: ANN001, ANN202
        store["a"] = out

    handle = net.layers[-1].register_forward_hook(hook)
    try:
        with torch.enable_grad():
            # the input requires grad so the graph exists even when every weight is frozen
            logits = net(x.detach().clone().requires_grad_(True))
            a = store["a"]
            maps = []
            for c in range(logits.shape[1]):
                (g,) = torch.autograd.grad(logits[:, c].sum(), a, retain_graph=c + 1 < logits.shape[1])
                alpha = g.mean(dim=(2, 3), keepdim=True)
                maps.append(torch.relu((alpha * a).sum(1)).detach())
    finally:
        handle.remove()
    return torch.stack(maps, dim=1)


def verify_export(path: Path, net: CamNet, temperature: float, images: np.ndarray, labels: list[str],
                  prob_tol: float = 1e-4, cam_corr: float = 0.99, cam_tol: float = 1e-3) -> dict:
    """onnxruntime vs torch on real images; in-graph CAM vs autograd Grad-CAM; engine accepts it.

    Raises ExportVerificationError naming every check that failed."""
    import onnxruntime as ort

    from engine.ai.model import Classifier
    from engine.errors import ModelError

    images = np.ascontiguousarray(images, np.float32)
    x = torch.from_numpy(images)
    net = net.eval().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        _, t_probs, _ = ExportModule(net, temperature).eval()(x)
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        o_logits, o_probs, o_cam = sess.run(["logits", "probs", "cam"], {"image": images})
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ExportVerificationError(f"onnxruntime cannot run the exported model {path} ({e})") from e
    problems = []
    if o_probs.shape != tuple(t_probs.shape) or o_cam.shape[:2] != (len(images), len(labels)):
        raise ExportVerificationError(f"exported outputs have shapes probs {o_probs.shape}, cam {o_cam.shape}; expected "
                                      f"probs {tuple(t_probs.shape)} and cam [{len(images)}, {len(labels)}, h, w]")
    prob_diff = float(np.abs(o_probs - t_probs.numpy()).max())
    ref = autograd_gradcam(net, x).numpy()
    corrs = {}
    for c, lab in enumerate(labels):
        a, b = o_cam[:, c].ravel(), ref[:, c].ravel()
        if a.std() == 0 and b.std() == 0:
            corrs[lab] = 1.0 if np.allclose(a, b) else 0.0
        else:
            corrs[lab] = float(np.corrcoef(a, b)[0, 1])
    # relu(w . A) / hw in the graph equals relu(mean(dlogit/dA) . A) from autograd exactly (factor 1),
    # so beyond correlation (blind to offset and scale) the maps must agree value by value
    cam_rel = float(np.abs(o_cam - ref).max() / max(float(np.abs(ref).max()), 1e-12))
    report = {"n_images": int(len(images)), "max_abs_prob_diff": prob_diff, "cam_correlation": corrs,
              "cam_max_rel_diff": cam_rel}
    if prob_diff > prob_tol:
        problems.append(f"onnxruntime vs torch probabilities differ by {prob_diff:.2e} > {prob_tol:.0e}")
    bad = {k: v for k, v in corrs.items() if not v >= cam_corr}
    if bad:
        problems.append(f"in-graph CAM vs autograd Grad-CAM correlation below {cam_corr}: {bad}")
    if not cam_rel <= cam_tol:
        problems.append(f"in-graph CAM differs from autograd Grad-CAM by {cam_rel:.2e} of its maximum > {cam_tol:.0e}")
    try:
        clf = Classifier(path, device="cpu")
    except ModelError as e:
        problems.append(f"the engine refuses the model: {e}")
    else:
        report.update({"engine_accepts": True, "engine_labels": list(clf.labels), "sha256": clf.sha256})
        if list(clf.labels) != list(labels):
            problems.append(f"engine reads labels {list(clf.labels)}, expected {labels}")
        # the card's temperature must be the one inside the graph (evaluation recomputes probs from logits)
        card_diff = float(np.abs(softmax(o_logits, clf.card.temperature) - o_probs).max())
        report["card_temperature_prob_diff"] = card_diff
        if card_diff > prob_tol:
            problems.append(f"card temperature {clf.card.temperature} does not match the graph's probabilities "
                            f"(differ by {card_diff:.2e})")
    if problems:
        raise ExportVerificationError("export verification failed: " + "; ".join(problems))
    return report
