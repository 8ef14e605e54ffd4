"""The training loop.

On a CPU-only machine the frozen part of the network (``model.freeze_layers``) runs once
per image and view through onnxruntime; its outputs are cached in memory (float16) and
only the rest of the network trains. Augmented views are cached too (``aug_views``), so
augmentation still reaches the trainable layers. With ``freeze_layers: 0`` the whole
network trains on the fly (the path for a GPU).
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.augment import augment
from ..data.data import (
    Sample,
    data_root,
    decode_samples,
    describe_split,
    load_all,
    load_samples,
    read_split,
    split_key_kinds,
    split_samples,
    summarize,
    write_split,
)
from ..evaluation.evaluate import _known
from ..evaluation.metrics import evaluate, fit_temperature, operating_points, softmax
from .models import CamNet, build_model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def normalize_batch(gray_u8: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 [N, H, W] (engine-preprocessed gray) -> float32 [N, 3, H, W]; same math as
    engine.ai.preprocess.normalize."""
    x = gray_u8.astype(np.float32) / 255.0
    m = np.asarray(mean, np.float32)[None, :, None, None]
    s = np.asarray(std, np.float32)[None, :, None, None]
    return (x[:, None] - m) / s


def _augment_u8(imgs: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.clip(augment(im.astype(np.float32) / 255.0, rng) * 255.0 + 0.5, 0, 255).astype(np.uint8) for im in imgs])


class FeatureCache:
    """Frozen trunk outputs via onnxruntime (3-4x faster than torch eager on this CPU)."""

    def __init__(self, net: CamNet, k: int, size: tuple[int, int], mean: list[float], std: list[float], threads: int = 0) -> None:
        import onnxruntime as ort

        self.mean, self.std = mean, std
        trunk = net.trunk(k).eval()
        self._tmp = tempfile.TemporaryDirectory()
        path = Path(self._tmp.name) / "trunk.onnx"
        with torch.no_grad():
            torch.onnx.export(trunk, torch.zeros(1, 3, *size), str(path), input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, imgs_u8: np.ndarray, desc: str, batch: int = 64, aug_seed: int | None = None) -> np.ndarray:
        out = None
        with tqdm(total=len(imgs_u8), desc=desc, unit="img", mininterval=5) as bar:
            for i in range(0, len(imgs_u8), batch):
                chunk = imgs_u8[i : i + batch]
                if aug_seed is not None:
                    chunk = _augment_u8(chunk, aug_seed * 1_000_003 + i)
                y = self.session.run(None, {"x": normalize_batch(chunk, self.mean, self.std)})[0]
                if out is None:
                    out = np.empty((len(imgs_u8), *y.shape[1:]), np.float16)
                out[i : i + len(y)] = y
                bar.update(len(chunk))
        return out


def _lr_lambda(total: int, warmup: int):  # noqa: ANN202
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        p = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    return f


@torch.no_grad()
def predict_logits(net: CamNet, x: np.ndarray, start: int, batch: int = 128) -> np.ndarray:
    net.eval()
    outs = []
    for i in range(0, len(x), batch):
        t = torch.from_numpy(np.asarray(x[i : i + batch], np.float32)).contiguous(memory_format=torch.channels_last)
        outs.append(net(t, start=start).float().numpy())
    return np.concatenate(outs)


def train(cfg: dict, out_dir: Path) -> dict:
    """Train per ``cfg``; write split, checkpoint, history, val/test results to ``out_dir``."""
    t_start = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    tc, mc, ic = cfg["train"], cfg["model"], cfg["input"]
    seed_everything(int(tc["seed"]))
    if tc.get("threads"):
        torch.set_num_threads(int(tc["threads"]))
    samples, labels = load_samples(cfg["data"], cfg.get("classes"))
    if cfg.get("split", {}).get("file"):
        splits = read_split(Path(cfg["split"]["file"]), data_root(cfg["data"]))
    else:
        if cfg.get("max_per_class"):
            rng = random.Random(int(tc["seed"]))
            kept = []
            for lab in labels:
                items = [s for s in samples if s.label == lab]
                rng.shuffle(items)
                kept += items[: int(cfg["max_per_class"])]
            samples = kept
        splits = split_samples(samples, tuple(cfg["split"]["fractions"]), int(cfg["split"]["seed"]))
    size = tuple(ic["size"])

    t0 = time.time()
    imgs, skipped = {}, []
    for s in splits:  # files the engine refuses leave the split (and split.csv), counted, not fatal
        imgs[s], splits[s], lost = decode_samples(splits[s], size, ic["resize"])
        skipped += lost
    t_decode = time.time() - t0
    print(f"decoded {sum(len(v) for v in imgs.values())} images in {t_decode:.0f} s", flush=True)
    if skipped:
        print(f"WARNING: skipped {len(skipped)} unreadable file(s) the engine refuses, e.g. "
              + "; ".join(f"{sk.file}: {sk.reason}" for sk in skipped[:3]), flush=True)
    if not splits["train"]:
        raise ValueError(f"no readable images left in the train split ({len(skipped)} unreadable)")
    write_split(splits, out_dir / "split.csv")
    counts = summarize(splits, labels)
    split_kinds = split_key_kinds(splits)
    print(f"classes {labels}; split sizes {json.dumps(counts)}; {describe_split(split_kinds)}", flush=True)
    if split_kinds["file"]:
        print(f"WARNING: {split_kinds['file']} images have no subject or group and were split file by file; "
              "test metrics may be optimistic if one patient has several images", flush=True)
    y = {s: np.array([labels.index(x.label) for x in splits[s]], dtype=np.int64) for s in splits}

    net = build_model(mc["arch"], len(labels), bool(mc.get("pretrained", True)), float(mc.get("dropout", 0.2)))
    k = int(mc.get("freeze_layers", 0))
    net.freeze(k)
    net = net.to(memory_format=torch.channels_last)
    views = max(1, int(tc.get("aug_views", 1)))
    t0 = time.time()
    if k > 0:
        cache = FeatureCache(net, k, size, ic["mean"], ic["std"], int(tc.get("threads") or 0))
        feats_train = [cache(imgs["train"], "cache train (clean)")]
        feats_train += [cache(imgs["train"], f"cache train (aug {v})", aug_seed=int(tc["seed"]) + v) for v in range(1, views)]
        feats = {"val": cache(imgs["val"], "cache val"), "test": cache(imgs["test"], "cache test")}
    else:
        feats_train, feats = None, None
    t_cache = time.time() - t0

    params = [p for p in net.parameters() if p.requires_grad]
    if tc["optimizer"] == "sgd":
        opt = torch.optim.SGD(params, lr=tc["lr"], momentum=tc.get("momentum", 0.9), weight_decay=tc["weight_decay"], nesterov=True)
    else:
        opt = torch.optim.AdamW(params, lr=tc["lr"], weight_decay=tc["weight_decay"])
    bs = int(tc["batch_size"])
    n_train = len(y["train"])
    steps_per_epoch = math.ceil(n_train / bs)
    epochs = int(tc["epochs"])
    total = steps_per_epoch * epochs
    if tc.get("max_steps"):
        total = min(total, int(tc["max_steps"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, int(float(tc["warmup_epochs"]) * steps_per_epoch)))
    freq = np.bincount(y["train"], minlength=len(labels)).astype(np.float64)
    weights = torch.tensor(freq.sum() / (len(labels) * np.maximum(freq, 1)), dtype=torch.float32) if tc["balance"] == "loss_weights" else None
    rng = np.random.default_rng(int(tc["seed"]))

    def val_inputs(split: str) -> np.ndarray:
        return feats[split] if feats is not None else normalize_batch(imgs[split], ic["mean"], ic["std"])

    history, best, best_state, step = [], None, None, 0
    t_train0 = time.time()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(n_train)
        view_of = rng.integers(0, views, n_train)
        run_loss, run_correct, seen = 0.0, 0, 0
        te = time.time()
        bar = tqdm(range(0, n_train, bs), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", mininterval=5)
        for i in bar:
            idx = order[i : i + bs]
            if feats_train is not None:
                xb = np.stack([feats_train[view_of[j]][j] for j in idx]).astype(np.float32)
            else:
                xb = normalize_batch(_augment_u8(imgs["train"][idx], int(rng.integers(1 << 30))), ic["mean"], ic["std"])
            xt = torch.from_numpy(xb).contiguous(memory_format=torch.channels_last)
            yt = torch.from_numpy(y["train"][idx])
            logits = net(xt, start=k)
            loss = F.cross_entropy(logits, yt, weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            run_loss += float(loss.detach()) * len(idx)
            run_correct += int((logits.argmax(1) == yt).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{run_loss / seen:.3f}", img_s=f"{seen / (time.time() - te):.0f}")
            if tc.get("max_steps") and step >= total:
                break
        bar.close()
        val_logits = predict_logits(net, val_inputs("val"), k)
        vm = evaluate(val_logits, y["val"], labels)
        val_loss = float(F.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(y["val"])))
        rec = {"epoch": epoch + 1, "train_loss": run_loss / max(seen, 1), "train_acc": run_correct / max(seen, 1),
               "val_loss": val_loss, "val_acc": vm["accuracy"], "val_macro_f1": vm["macro_f1"],
               "images_per_s": seen / (time.time() - te), "seconds": time.time() - te}
        history.append(rec)
        print(json.dumps(rec), flush=True)
        score = (vm["macro_f1"], -val_loss)
        if best is None or score > best:
            best = score
            best_state = {kk: v.detach().clone() for kk, v in net.state_dict().items()}
            rec["best"] = True
        if tc.get("max_steps") and step >= total:
            break
    t_train = time.time() - t_train0
    net.load_state_dict(best_state)
    best_epoch = max(r["epoch"] for r in history if r.get("best"))

    val_logits = predict_logits(net, val_inputs("val"), k)
    temperature = fit_temperature(val_logits, y["val"])
    ops = operating_points(softmax(val_logits, temperature), y["val"], labels)
    test_logits = predict_logits(net, val_inputs("test"), k)
    result = {
        "labels": labels, "counts": counts, "split_kinds": split_kinds, "best_epoch": best_epoch, "temperature": temperature,
        "skipped_unreadable": len(skipped), "skipped_files": [asdict(sk) for sk in skipped],
        "operating_points": ops, "history": history,
        "val": evaluate(val_logits, y["val"], labels, temperature),
        "test_head": evaluate(test_logits, y["test"], labels, temperature),
        "timing": {"decode_s": t_decode, "cache_s": t_cache, "train_s": t_train, "total_s": time.time() - t_start,
                   "train_images_per_s": float(np.mean([r["images_per_s"] for r in history])),
                   "threads": torch.get_num_threads()},
    }
    torch.save({"state_dict": net.state_dict(), "config": cfg, "labels": labels, "temperature": temperature,
                "operating_points": ops}, out_dir / "checkpoint.pt")
    (out_dir / "train_result.json").write_text(json.dumps(result, indent=1))
    return result


def evaluate_checkpoint(checkpoint: Path, samples: list[Sample]) -> dict:
    """Metrics of a 1.0.0 checkpoint on samples whose labels it knows (others are counted, skipped)."""
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg, labels = ck["config"], ck["labels"]
    net = build_model(cfg["model"]["arch"], len(labels), pretrained=False)
    net.load_state_dict(ck["state_dict"])
    known = _known(samples, labels)
    imgs = load_all(known, tuple(cfg["input"]["size"]), cfg["input"]["resize"])
    logits = predict_logits(net, normalize_batch(imgs, cfg["input"]["mean"], cfg["input"]["std"]), 0, batch=32)
    y = np.array([labels.index(s.label) for s in known])
    m = evaluate(logits, y, labels, float(ck["temperature"]))
    m["skipped_unknown_label"] = len(samples) - len(known)
    return m
