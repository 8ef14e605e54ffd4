"""An out-of-distribution score inside a classifier's ONNX graph (DESIGN.md: optional ``ood``).

Method: Mahalanobis distance (Lee et al., NeurIPS 2018) on the pooled features that feed
the linear head: class-conditional means and one shared covariance (shrunk towards its
mean variance so that it is well conditioned), fitted on training-split images run
through the ENGINE's per-image path (``engine.prepare``: the same crop, intensity step and
resize as at run time). The score is ``sqrt(min_c d_c / K)``: the distance to the nearest
class mean per feature dimension, so 1.0 is "as far as a typical training image".

The threshold is the ``quantile`` of the validation split's scores (in-scope images the
model never trained on), and it is reported against the out-of-scope development images
(``ood-dev``: knees). It is never chosen on test data or on ``cxr-extdev``.

The nodes are added to the exported graph: the score costs one small matrix product at
run time, nothing else. ``python -m training ood MODEL.onnx --split-file S.csv`` does it.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine import Classifier, load_image, prepare
from engine.ai.card import CARD_KEY

OOD_OUTPUT = "ood"
METHOD = ("mahalanobis: sqrt(min over classes of the squared Mahalanobis distance / feature dims) on the pooled "
          "features feeding the linear head; class means and one shared covariance (shrinkage 0.1) fitted on the "
          "training split")


def pooled_tensor(model: onnx.ModelProto) -> str:
    """Name of the pooled-feature tensor: the data input of the node that makes ``logits``."""
    for node in model.graph.node:
        if "logits" in node.output and node.op_type in ("Gemm", "MatMul"):
            return node.input[0]
    raise ValueError("no Gemm/MatMul node produces 'logits': not a RadLens GAP + linear-head classifier")


def _with_output(model: onnx.ModelProto, name: str) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return m.SerializeToString()


class FeatureExtractor:
    """One classifier and one session that also returns the pooled features: every image goes
    through the engine's per-image path (``engine.prepare``) once, and gives its features and
    the call's CAM peak together."""

    def __init__(self, model_path: Path) -> None:
        import onnxruntime as ort

        self.clf = Classifier(model_path, device="cpu", warmup=False)
        model = onnx.load(str(model_path))
        self.name = pooled_tensor(model)
        self.sess = ort.InferenceSession(_with_output(model, self.name), providers=["CPUExecutionProvider"])

    def inputs(self, files: list[Path]) -> tuple[list[np.ndarray], list[str]]:
        xs, kept = [], []
        for f in files:
            try:
                xs.append(prepare(load_image(f), self.clf).x)
            except Exception as e:  # noqa: BLE001 - a file the engine refuses is not a feature
                print(f"  skipped {f.name}: {e}")
                continue
            kept.append(str(f))
        return xs, kept

    def run(self, files: list[Path], batch: int = 32) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(features [N, K] float64, the files kept, the call's CAM peak [N])."""
        xs, kept = self.inputs(files)
        feats, peaks = [], []
        for i in range(0, len(xs), batch):
            f, probs, cam = self.sess.run([self.name, "probs", "cam"], {"image": np.stack(xs[i : i + batch])})
            feats.append(f.reshape(len(f), -1))
            peaks.append(cam[np.arange(len(cam)), probs.argmax(1)].reshape(len(cam), -1).max(1))
        if not feats:
            return np.zeros((0, 0)), kept, np.zeros(0)
        return np.concatenate(feats).astype(np.float64), kept, np.concatenate(peaks)


def extract_features(model_path: Path, files: list[Path], batch: int = 32) -> tuple[np.ndarray, list[str]]:
    """Pooled features of ``files`` through the engine's per-image path; unreadable files skipped."""
    feats, kept, _ = FeatureExtractor(model_path).run(files, batch)
    return feats, kept


def fit(train: np.ndarray, labels: np.ndarray, n_classes: int, shrinkage: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    means = np.stack([train[labels == c].mean(0) for c in range(n_classes)])
    centred = train - means[labels]
    cov = centred.T @ centred / max(1, len(train) - n_classes)
    k = cov.shape[0]
    cov = (1 - shrinkage) * cov + shrinkage * (np.trace(cov) / k) * np.eye(k)
    return means, np.linalg.inv(cov)


def scores(feats: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    diff = feats[:, None, :] - means[None, :, :]  # [N, C, K]
    d = np.einsum("nck,kj,ncj->nc", diff, precision, diff)
    return np.sqrt(np.maximum(d.min(1), 0.0) / feats.shape[1])


PRECISION_F16 = "ood_precision_f16"


def compact_precision(model: onnx.ModelProto) -> bool:
    """Store the score's K x K precision matrix in half precision, cast to float32 in the graph
    (1280 x 1280: 6.6 MB -> 3.3 MB, so the classifier stays under 20 MB). The score moves by a
    few 1e-4 relative (checked against float32 in tests). True when the model was changed;
    a model already compact, or without the score, is left as it is."""
    g = model.graph
    found = [i for i in g.initializer if i.name == "ood_precision"]
    if not found:
        return False
    arr = numpy_helper.to_array(found[0]).astype(np.float16)
    g.initializer.remove(found[0])
    g.initializer.append(numpy_helper.from_array(arr, PRECISION_F16))
    cast = helper.make_node("Cast", [PRECISION_F16], ["ood_precision"], to=TensorProto.FLOAT, name="ood_precision_cast")
    g.node.insert(0, cast)
    onnx.checker.check_model(model)
    return True


def add_ood_head(model: onnx.ModelProto, means: np.ndarray, precision: np.ndarray) -> onnx.ModelProto:
    """Append the score's nodes to the graph: output ``ood`` [N] (float32)."""
    g = model.graph
    for out in list(g.output):
        if out.name == OOD_OUTPUT:
            g.output.remove(out)
    pooled = pooled_tensor(model)
    k = means.shape[1]
    inits = {
        "ood_means": means.astype(np.float32)[None],  # [1, C, K]
        PRECISION_F16: precision.astype(np.float16),  # [K, K], stored in half precision (see compact_precision)
        "ood_axes_1": np.array([1], np.int64),
        "ood_axes_2": np.array([2], np.int64),
        "ood_inv_k": np.array(1.0 / k, np.float32),
        "ood_zero": np.array(0.0, np.float32),
    }
    for name, arr in inits.items():
        g.initializer.append(numpy_helper.from_array(arr, name))
    g.node.extend([
        helper.make_node("Cast", [PRECISION_F16], ["ood_precision"], to=TensorProto.FLOAT, name="ood_precision_cast"),
        helper.make_node("Unsqueeze", [pooled, "ood_axes_1"], ["ood_f"], name="ood_unsqueeze"),  # [N, 1, K]
        helper.make_node("Sub", ["ood_f", "ood_means"], ["ood_diff"], name="ood_sub"),  # [N, C, K]
        helper.make_node("MatMul", ["ood_diff", "ood_precision"], ["ood_proj"], name="ood_matmul"),  # [N, C, K]
        helper.make_node("Mul", ["ood_proj", "ood_diff"], ["ood_prod"], name="ood_mul"),
        helper.make_node("ReduceSum", ["ood_prod", "ood_axes_2"], ["ood_d"], keepdims=0, name="ood_sum"),  # [N, C]
        helper.make_node("ReduceMin", ["ood_d"], ["ood_dmin"], axes=[1], keepdims=0, name="ood_min"),  # [N]
        helper.make_node("Mul", ["ood_dmin", "ood_inv_k"], ["ood_scaled"], name="ood_scale"),
        helper.make_node("Max", ["ood_scaled", "ood_zero"], ["ood_pos"], name="ood_clamp"),
        helper.make_node("Sqrt", ["ood_pos"], [OOD_OUTPUT], name="ood_sqrt"),
    ])
    g.output.append(helper.make_tensor_value_info(OOD_OUTPUT, TensorProto.FLOAT, ["N"]))
    return model


def cam_scale(peaks: np.ndarray, quantile: float = 0.99) -> dict:
    """The model-wide Grad-CAM scale: the ``quantile`` of the call's CAM peak over validation
    images. Heatmaps divided by it mean the same across images and classes (1.0 = evidence as
    strong as on a typical-to-strong validation image)."""
    return {"scale": float(np.quantile(peaks, quantile)), "rule": f"quantile {quantile} of the call's CAM peak",
            "n": int(len(peaks)), "median_peak": float(np.median(peaks))}


def _split_rows(split_file: Path) -> list[dict[str, str]]:
    with open(split_file, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _spread(rows: list[dict[str, str]], limit: int, seed: int) -> list[dict[str, str]]:
    """At most ``limit`` rows, drawn at random with a fixed seed (file order kept)."""
    if len(rows) <= limit:
        return rows
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(rows))[:limit]
    return [rows[i] for i in sorted(idx)]


def run(model_path: Path, data: Path, split_file: Path, ood_dev: Path | None, out: Path | None = None,
        max_train: int = 4000, max_val: int = 1500, quantile: float = 0.995, seed: int = 0) -> dict:
    """Fit the score, choose the threshold, write the graph and the card. Returns the report."""
    t0 = time.perf_counter()
    rows = _split_rows(split_file)
    ext = FeatureExtractor(model_path)
    card = json.loads(ext.clf.card.to_json())
    labels = list(card["labels"])
    train = _spread([r for r in rows if r["split"] == "train" and r["label"] in labels], max_train, seed)
    val = _spread([r for r in rows if r["split"] == "val" and r["label"] in labels], max_val, seed)
    f_train, kept_train, _ = ext.run([data / r["file"] for r in train])
    kept = set(kept_train)
    y = np.array([labels.index(r["label"]) for r in train if str(data / r["file"]) in kept])
    means, precision = fit(f_train, y, len(labels))
    precision = precision.astype(np.float16).astype(np.float64)  # as the graph stores it: threshold and graph agree
    f_val, kept_val, val_peaks = ext.run([data / r["file"] for r in val])
    s_val = scores(f_val, means, precision)
    threshold = float(np.quantile(s_val, quantile))
    report: dict = {
        "method": METHOD, "fitted_on": {"split": "train", "images": int(len(f_train))},
        "threshold_rule": f"quantile {quantile} of the validation split's scores (n = {len(f_val)})",
        "threshold": threshold,
        "val": {"n": int(len(s_val)), "flagged": float(np.mean(s_val > threshold)),
                "median": float(np.median(s_val))},
    }
    if ood_dev is not None and (ood_dev / "manifest.csv").exists():
        with open(ood_dev / "manifest.csv", newline="", encoding="utf-8") as f:
            dev = [ood_dev / r["file"] for r in csv.DictReader(f)]
        f_dev, _, _ = ext.run(dev)
        s_dev = scores(f_dev, means, precision)
        report["ood_dev"] = {"n": int(len(s_dev)), "flagged": float(np.mean(s_dev > threshold)),
                             "median": float(np.median(s_dev))}
    report["cam_scale"] = cam_scale(val_peaks)
    model = add_ood_head(onnx.load(str(model_path)), means, precision)
    card["cam_scale"] = report["cam_scale"]["scale"]
    card["ood"] = {"method": METHOD, "threshold": threshold, "output": OOD_OUTPUT,
                   "threshold_rule": report["threshold_rule"], "val_flagged": report["val"]["flagged"],
                   "ood_dev_flagged": report.get("ood_dev", {}).get("flagged")}
    from engine.ai.card import ModelCard

    card_json = ModelCard.from_dict(card).to_json()  # the shared schema: a card the engine refuses is never written
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, CARD_KEY: card_json})
    target = out or model_path
    onnx.save(model, str(target))
    # verify: the graph's score equals the numpy score on the same features
    check = Classifier(target, device="cpu", warmup=False)
    xs, _ = ext.inputs([Path(f) for f in kept_val[:8]])
    got = check.run(np.stack(xs)).ood
    want = scores(f_val[:8], means, precision)
    report["graph_vs_numpy_max_abs_diff"] = float(np.max(np.abs(got - want)))
    if report["graph_vs_numpy_max_abs_diff"] > 1e-3 * max(1.0, float(np.max(want))):
        raise RuntimeError(f"in-graph OOD score differs from numpy by {report['graph_vs_numpy_max_abs_diff']:.3g}")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training.export.ood", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="RadLens classifier .onnx (changed in place unless -o)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/cxr"))
    ap.add_argument("--split-file", type=Path, required=True)
    ap.add_argument("--ood-dev", type=Path, default=Path("../shared/data/ood-dev"))
    ap.add_argument("-o", "--output", type=Path, default=None)
    ap.add_argument("--max-train", type=int, default=4000)
    ap.add_argument("--max-val", type=int, default=1500)
    ap.add_argument("--quantile", type=float, default=0.995)
    a = ap.parse_args(argv)
    report = run(a.model, a.data, a.split_file, a.ood_dev, a.output, a.max_train, a.max_val, a.quantile)
    print(json.dumps(report, indent=1))
    target = a.output or a.model
    Path(str(target).removesuffix(".onnx") + ".ood.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
