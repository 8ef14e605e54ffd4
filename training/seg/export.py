"""Export the lung U-Net to ONNX with its card, check it against torch, measure Dice through
the engine's own ``LungSegmenter`` (the path the viewer runs)."""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine.ai.card import CARD_KEY, DISCLAIMER
from engine.ai.lungs import LUNGSEG_NAME, PLAUSIBLE, LungSegmenter, SegCard
from engine.io import load_image

from .data import Case, load_mask
from .model import IMAGENET_MEAN, IMAGENET_STD, LungUNet

LICENCES = {
    "jsrt-scr": ("JSRT images: research and education only, treat as not redistributable (Shiraishi et al., AJR "
                 "2000;174:71-74). SCR masks: research and education only, redistribution and commercial use "
                 "prohibited (van Ginneken et al., MedIA 2006;10:19-40)."),
    "openist": "OpenIST masks on chestx-ray.com teaching-module images: no licence stated; internal research only.",
}
INTENDED_USE = (f"{DISCLAIMER}. Finds the lung fields of a frontal chest radiograph for RadLens preprocessing "
                "(lung crop) and scope checks (is this a frontal chest?, is the evidence inside the lungs?). "
                "Trained on JSRT/SCR and OpenIST: the JSRT images and SCR masks are for research and education only "
                "and must not be redistributed or used commercially, so this model and its outputs are for internal "
                "research only and may not ship in a product until those licences are cleared. Trained on adult PA "
                "films; pediatric, AP portable and heavily opacified lungs are less certain (check `plausible`).")


def build_card(size: int, test_metrics: dict, train_summary: dict, decoder: tuple[int, ...] = (96, 64, 32),
               version: str = "1.0.0") -> dict:
    per_source = train_summary.get("per_source", {})
    return {
        "name": LUNGSEG_NAME, "version": version, "kind": "segmentation", "labels": ["lungs"],
        "input_size": [size, size], "input_channels": 1, "resize": "stretch",
        "mean": [0.0], "std": [1.0],
        "input": "image float32 [N, 1, H, W]: display-pipeline gray in [0, 1] stretched to input_size "
                 "(mean 0, std 1: the ImageNet normalisation is inside the graph)",
        "normalization_in_graph": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "output": "mask float32 [N, 1, H, W]: lung probability (sigmoid inside the graph); resize to the image, "
                  "then threshold",
        "threshold": 0.5,
        "plausibility": dict(PLAUSIBLE),
        "architecture": (f"U-Net: EfficientNet-Lite0 blocks 0-13 (ImageNet weights) as encoder, {len(decoder)}-level "
                         f"3x3-conv decoder {list(decoder)}, logits at stride {2 ** (5 - len(decoder))} upsampled bilinearly"),
        "created": _dt.date.today().isoformat(),
        "training_data": {
            "summary": (f"{train_summary.get('cases', 0)} chest radiographs with manual lung masks from "
                        "../shared/data/lungseg, split_hint fold1 only: "
                        + ", ".join(f"{s} {n}" for s, n in per_source.items()) + ". Adult PA films."),
            "sources": {s: {"images": n, "licence": LICENCES.get(s, "see the data set README")} for s, n in per_source.items()},
            "mask_definition": "SCR: lung fields where radiation passed through lung but not heart, mediastinum, "
                               "aorta or below the diaphragm (retrocardiac and subdiaphragmatic lung excluded)",
            "overlap": "The OpenIST pictures are also in ../shared/data/cxr-extdev (chestxray-com-normal): figures of "
                       "this model on that source are not independent of its training.",
            "augmentation": "rotation, zoom-out/in with borders, aspect change, gamma, contrast, brightness, blur, "
                            "edge enhancement, noise, collimation bands; no left-right flip",
        },
        "test_metrics": test_metrics,
        "intended_use": INTENDED_USE,
    }


class _Graph(torch.nn.Module):
    def __init__(self, net: LungUNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def export_onnx(net: LungUNet, size: int, card: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(_Graph(net.eval()), torch.zeros(1, 1, size, size), str(tmp), input_names=["image"],
                          output_names=["mask"], dynamic_axes={"image": {0: "N"}, "mask": {0: "N"}},
                          opset_version=17, dynamo=False)
    write_card(tmp, card)
    tmp.replace(path)
    return path


def write_card(path: Path, card: dict) -> Path:
    """Store the card (validated by the engine's ``SegCard``) as ``radlens.card`` metadata."""
    import onnx
    from onnx import helper

    text = json.dumps(card, indent=1, sort_keys=True)
    SegCard.from_json(text)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    helper.set_model_props(model, {CARD_KEY: text})
    model.producer_name = "radlens-training"
    onnx.checker.check_model(model)
    tmp = Path(path).with_suffix(".card.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return Path(path)


def verify_export(path: Path, net: LungUNet, x: np.ndarray, tol: float = 1e-4) -> dict:
    """ONNX vs torch on the same inputs [N, 1, S, S]: max abs difference of the probabilities."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["mask"], {"image": x.astype(np.float32)})[0]
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x.astype(np.float32))).numpy()
    diff = float(np.abs(got - ref).max())
    agree = float(((got >= 0.5) == (ref >= 0.5)).mean())
    if diff > tol:
        raise RuntimeError(f"ONNX export differs from torch: max abs diff {diff:.2e} > {tol:.0e}")
    return {"n": int(x.shape[0]), "max_abs_diff": diff, "mask_agreement": agree, "tolerance": tol}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def evaluate(path: Path, cases: list[Case], log=print) -> dict:  # noqa: ANN001
    """Dice and IoU at the masks' own 512 px, through ``engine.ai.lungs.LungSegmenter.segment``."""
    seg = LungSegmenter(path, device="cpu")
    rows = []
    t = time.perf_counter()
    for c in cases:
        field = seg.segment(load_image(c.image).pixels)
        gt = load_mask(c.mask)
        inter, union = int((field.mask & gt).sum()), int((field.mask | gt).sum())
        rows.append({"case": c.case, "source": c.source, "dice": dice(field.mask, gt),
                     "iou": inter / union if union else 1.0, "plausible": field.plausible, "reason": field.reason})
    log(f"evaluated {len(rows)} held-out cases in {time.perf_counter() - t:.1f} s")
    out: dict = {"split": "split_hint fold2 of ../shared/data/lungseg, held out: never trained on, no setting tuned on it",
                 "resolution": "masks at 512x512, model output resized back and thresholded at 0.5 (engine path)",
                 "per_source": {}}
    for src in sorted({r["source"] for r in rows}) + ["all"]:
        sel = [r for r in rows if src == "all" or r["source"] == src]
        d = np.array([r["dice"] for r in sel])
        out["per_source"][src] = {"n": len(sel), "dice_mean": round(float(d.mean()), 4), "dice_median": round(float(np.median(d)), 4),
                                  "dice_min": round(float(d.min()), 4), "dice_p05": round(float(np.percentile(d, 5)), 4),
                                  "iou_mean": round(float(np.mean([r["iou"] for r in sel])), 4),
                                  "plausible_rate": round(float(np.mean([r["plausible"] for r in sel])), 4)}
    return {"summary": out, "rows": rows}
