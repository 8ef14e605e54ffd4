"""Recipe v2 (radlens-cxr4 2.0.0): levers against source shortcuts, measured out of source.

One function, ``run_recipe(rc, out)``, trains one recipe and scores it on the internal
validation (and test) split and on the external-dev set, per source. Levers (keys of
``rc``): ``preprocessing`` (lung crop with margin, CLAHE / histogram equalisation, run by
``engine.ai.preprocess.model_gray``, the engine's own code), ``aug`` (``v1``: geometry and mild
photometry after preprocessing; ``scanner``: other-scanner looks before preprocessing, then
``v1``), ``balance`` (``class``: class-weighted loss; ``source``: sampling balanced by class
and by source within class, ``source_alpha``), ``cut`` (layers below it frozen and their
outputs cached; 12 = v1, 15 = only blocks 14-15 + head train, the cheap proxy),
``max_per_source`` (cap per class/source in train: cheap proxies), ``extra`` (sources outside the
pool, ``training.data.extra_sources``), ``adv`` (class-conditional source adversary,
``training.recipes.adversary``), ``lisa`` (intra-label cross-source mixing), ``init_seed`` (training
randomness only, for the seed spread). Temperature and
operating points are fitted on the validation split (mixed sources), never on extdev;
the best epoch is chosen on validation by the mean correct-call rate over class/source
groups.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.ai.card import ModelCard
from engine.ai.preprocess import model_gray, to_u8

from ..data.augment import FOV_AUGMENT, augment
from ..data.data import Sample, data_root, load_all, load_samples, read_split, resolve_data, write_split
from ..data.sampling import epoch_indices, sample_weights
from ..data.scanner_aug import TEXTURE_ONLY, figure_marks, scanner_augment
from ..evaluation.evaluate_ext import EXTDEV, POOL, group_report, source_report, subtypes_of
from ..evaluation.metrics import evaluate, fit_temperature, operating_points, softmax

LABELS = ["normal", "covid", "pneumonia", "tuberculosis"]
CACHE = Path(__file__).resolve().parents[2] / "runs" / "cache"

DEFAULT_RC: dict = {
    "name": "radlens-cxr4", "version": "2.0.0", "pool": POOL, "extdev": EXTDEV, "split_file": None,
    "preprocessing": {"crop": "none", "intensity": "none"}, "lung_model_path": None,
    "aug": "v1", "views": 2, "cut": 15, "epochs": 6, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.01,
    "warmup_epochs": 0.5, "balance": "class", "source_alpha": 0.5, "label_smoothing": 0.0,
    "max_per_source": 0, "extra": [], "adv": 0.0, "lisa": 0.0, "seed": 42, "init_seed": None, "eval_test": False, "size": [224, 224], "mean": [0.5] * 3, "std": [0.5] * 3,
}


@dataclass(frozen=True)
class _Lungs:
    box: tuple[int, int, int, int] | None


def recipe_card(rc: dict) -> ModelCard:
    """A minimal card carrying the recipe's preprocessing (what ``model_gray`` reads)."""
    pp = dict(rc["preprocessing"])
    d = {"name": rc["name"], "version": rc["version"], "labels": LABELS, "input_size": list(rc["size"]),
         "mean": rc["mean"], "std": rc["std"], "resize": "stretch", "temperature": 1.0, "operating_points": {},
         "training_data": {}, "test_metrics": {}, "intended_use": "Research use only, not for diagnosis.",
         "created": "", "preprocessing": pp}
    return ModelCard.from_dict(d)


def _key(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def lung_boxes(samples: list[Sample], imgs: np.ndarray, seg_path: str | None) -> list[tuple | None]:
    """Lung boxes (segmenter on the stored image, as the engine would) cached by file."""
    from engine.ai.lungs import LungSegmenter
    from engine.ai.model import sha256_file

    sha = sha256_file(seg_path)
    path = CACHE / f"lungboxes-{sha[:12]}.json"
    known: dict = {}
    for part in sorted(CACHE.glob(f"lungboxes-{sha[:12]}*.json")):  # runs in parallel write their own part
        known.update(json.loads(part.read_text()))
    path = CACHE / f"lungboxes-{sha[:12]}-{os.getpid()}.json"
    todo = [i for i, s in enumerate(samples) if s.path not in known]
    if todo:
        seg = LungSegmenter(seg_path)
        t0 = time.time()
        for n, i in enumerate(todo):
            field = seg.segment(imgs[i].astype(np.float32) / 255.0)
            box = getattr(field, "box", None)
            known[samples[i].path] = None if box is None else [int(v) for v in box]
            if n % 1000 == 999:
                print(f"lung boxes {n + 1}/{len(todo)} ({(n + 1) / (time.time() - t0):.0f} img/s)", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known))
    return [None if known[s.path] is None else tuple(known[s.path]) for s in samples]


def make_view(imgs: np.ndarray, boxes: list, card: ModelCard, aug: str, seed: int | None,
              paths: list[str] | None = None) -> np.ndarray:
    """uint8 [N, H, W] model-input gray: (scanner aug) -> engine crop/intensity/resize -> (v1 aug).
    Each image's augmentation draws from its own generator (seed, file), so an image gets the same
    view whichever set it is in (and its cached features can be reused)."""
    out = np.empty((len(imgs), *card.input_size), np.uint8)
    for i, im in enumerate(imgs):
        rng = None
        if seed is not None:
            rng = np.random.default_rng([seed, zlib.crc32((paths[i] if paths else str(i)).encode())])
        g = im.astype(np.float32) / 255.0
        if rng is not None and aug in ("scanner", "scanner_marks"):
            g = scanner_augment(g, rng)
        elif rng is not None and aug == "texture":
            g = scanner_augment(g, rng, TEXTURE_ONLY)
        if rng is not None and aug in ("scanner_marks", "marks"):
            g = figure_marks(g, rng)
        g, _, _ = model_gray(g, card, _Lungs(boxes[i]) if boxes is not None else None)
        if rng is not None and aug in ("v1", "scanner", "scanner_marks", "marks", "texture"):
            g = augment(g, rng)
        elif rng is not None and aug == "fov":
            g = augment(g, rng, FOV_AUGMENT)
        out[i] = to_u8(g)
    return out


class FeatureStore:
    """Trunk features of one variant (preprocessing, augmentation, view seed, cut), per image
    file, on disk: chunks of rows plus an index, so a bigger run reuses a proxy's work."""

    def __init__(self, key: str) -> None:
        self.dir = CACHE / f"store-{key}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index_path = self.dir / "index.json"
        self.index: dict[str, list[int]] = json.loads(self.index_path.read_text()) if self.index_path.exists() else {}

    def missing(self, paths: list[str]) -> list[int]:
        return [i for i, p in enumerate(paths) if p not in self.index]

    def add(self, paths: list[str], feats: np.ndarray) -> None:
        chunk = len(list(self.dir.glob("chunk-*.npy")))
        np.save(self.dir / f"chunk-{chunk}.npy", feats)
        for row, p in enumerate(paths):
            self.index[p] = [chunk, row]
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.index))
        tmp.replace(self.index_path)

    def get(self, paths: list[str]) -> np.ndarray:
        chunks: dict[int, np.ndarray] = {}
        out = None
        for i, p in enumerate(paths):
            c, r = self.index[p]
            if c not in chunks:
                chunks[c] = np.load(self.dir / f"chunk-{c}.npy", mmap_mode="r")
            if out is None:
                out = np.empty((len(paths), *chunks[c].shape[1:]), np.float16)
            out[i] = chunks[c][r]
        return out


def cached_features(tag: str, samples: list[Sample], imgs: np.ndarray, boxes: list, card: ModelCard, rc: dict,
                    aug_seed: int | None, trunk) -> np.ndarray:  # noqa: ANN001
    from .train import normalize_batch

    key = _key(rc["preprocessing"], rc["aug"] if aug_seed is not None else "clean", aug_seed, rc["cut"],
               rc["size"], rc["mean"], rc["std"], rc.get("lung_model_path") if boxes is not None else None)
    store = FeatureStore(key)
    paths = [s.path for s in samples]
    todo = store.missing(paths)
    if todo:
        t0 = time.time()
        views = make_view(imgs[todo], None if boxes is None else [boxes[i] for i in todo], card, rc["aug"], aug_seed,
                          [paths[i] for i in todo])
        t1 = time.time()
        feats = None
        for i in range(0, len(views), 64):
            y = trunk.run(None, {"x": normalize_batch(views[i : i + 64], rc["mean"], rc["std"])})[0]
            if feats is None:
                feats = np.empty((len(views), *y.shape[1:]), np.float16)
            feats[i : i + len(y)] = y
        store.add([paths[i] for i in todo], feats)
        print(f"cache {tag} (view seed {aug_seed}): {len(todo)} of {len(paths)} imgs new, prep {t1 - t0:.0f}s, "
              f"trunk {time.time() - t1:.0f}s ({len(todo) / max(time.time() - t1, 1e-6):.0f} img/s)", flush=True)
    return store.get(paths)


def trunk_session(net, k: int, size: tuple[int, int]):  # noqa: ANN001, ANN201
    import tempfile

    import onnxruntime as ort
    import torch

    path = Path(tempfile.mkdtemp()) / "trunk.onnx"
    with torch.no_grad():
        torch.onnx.export(net.trunk(k).eval(), torch.zeros(1, 3, *size), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def load_splits(rc: dict) -> dict[str, list[Sample]]:
    pool = resolve_data(rc["pool"])
    if rc.get("split_file"):
        splits = read_split(Path(rc["split_file"]), data_root(pool))
    else:
        from ..data.split_v2 import V1_SPLIT, v2_split

        splits = v2_split(pool, LABELS, Path(rc.get("old_split") or V1_SPLIT), seed=int(rc["seed"]))
    if rc.get("extra"):
        from ..data.extra_sources import add_extra

        splits = add_extra(splits, list(rc["extra"]), data_root(pool), int(rc["seed"]))
    if rc.get("max_per_source"):
        rng = random.Random(int(rc["seed"]))
        by: dict[str, list[Sample]] = {}
        for s in splits["train"]:
            by.setdefault(f"{s.label}/{s.source}", []).append(s)
        kept = []
        for g in sorted(by):
            items = list(by[g])
            rng.shuffle(items)
            kept += items[: int(rc["max_per_source"])]
        splits = {**splits, "train": sorted(kept, key=lambda s: s.file)}
    return splits


def group_score(logits: np.ndarray, y: np.ndarray, samples: list[Sample]) -> float:
    """Mean over class/source groups of the correct-call rate (validation model selection)."""
    pred = logits.argmax(1)
    groups: dict[str, list[bool]] = {}
    for p, t, s in zip(pred, y, samples, strict=True):
        groups.setdefault(f"{s.label}/{s.source}", []).append(bool(p == t))
    return float(np.mean([np.mean(v) for v in groups.values()]))


def _intra_label_mix(y: np.ndarray, sources: list[str]):  # noqa: ANN202
    """Selective augmentation (LISA, Yao et al. 2022), intra-label part, on cached trunk features
    (recipe key ``lisa``: the share of batches mixed): each image is mixed (lambda ~ Beta(2, 2))
    with an image of the same class from another source of that class, label unchanged, so what
    tells the sources of a class apart stops carrying the class. Classes with one source are
    left as they are."""
    by: dict[int, dict[str, np.ndarray]] = {}
    for c in sorted(set(int(v) for v in y)):
        members = np.flatnonzero(y == c)
        srcs = sorted({sources[i] for i in members})
        by[c] = {src: np.array([i for i in members if sources[i] == src]) for src in srcs}

    def mix(xb: np.ndarray, idx: np.ndarray, rng: np.random.Generator, get) -> np.ndarray:  # noqa: ANN001
        out = xb.copy()
        for j, t in enumerate(idx):
            groups = by[int(y[t])]
            others = [g for g in groups if g != sources[t]]
            if not others:
                continue
            pool = groups[others[int(rng.integers(0, len(others)))]]
            lam = float(rng.beta(2.0, 2.0))
            out[j] = lam * xb[j] + (1.0 - lam) * np.asarray(get(int(pool[int(rng.integers(0, len(pool)))])), np.float32)
        return out

    return mix


def run_recipe(rc: dict, out: Path) -> dict:
    import torch
    import torch.nn.functional as F

    from .models import build_model
    from .train import _lr_lambda, predict_logits, seed_everything

    rc = {**copy.deepcopy(DEFAULT_RC), **rc}
    t_start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(json.dumps(rc, indent=1))
    init_seed = int(rc["seed"] if rc.get("init_seed") is None else rc["init_seed"])  # training randomness only
    seed_everything(init_seed)
    torch.set_num_threads(2)
    card = recipe_card(rc)
    size = tuple(rc["size"])
    splits = load_splits(rc)
    write_split(splits, out / "split.csv")
    ext_samples, _ = load_samples(resolve_data(rc["extdev"]))
    hold = set(rc.get("hold_out") or [])  # leave-one-source-out: "label/source" groups kept out of train and val
    held = [s for part in ("train", "val", "test") for s in splits[part] if f"{s.label}/{s.source}" in hold]
    if hold:
        splits = {p: [s for s in v if f"{s.label}/{s.source}" not in hold] for p, v in splits.items()}
    sets = {"train": splits["train"], "val": splits["val"], "extdev": ext_samples}
    if held:
        sets["held_out"] = held  # every film of the held-out source(s): how a source never seen is called
    if rc["eval_test"]:
        sets["test"] = splits["test"]
    y = {k: np.array([LABELS.index(s.label) for s in v]) for k, v in sets.items()}
    t0 = time.time()
    imgs = {k: load_all(v, size, "stretch", workers=2) for k, v in sets.items()}
    print(f"decoded {sum(map(len, imgs.values()))} images in {time.time() - t0:.0f}s; train {len(y['train'])}", flush=True)
    boxes = {k: None for k in sets}
    if rc["preprocessing"].get("crop") == "lungs":
        boxes = {k: lung_boxes(sets[k], imgs[k], rc["lung_model_path"]) for k in sets}
        missing = {k: sum(b is None for b in v) for k, v in boxes.items()}
        print(f"no lung field (whole image used): {missing}", flush=True)

    net = build_model("efficientnet_lite0", len(LABELS), True, 0.2)
    k = int(rc["cut"])
    net.freeze(k)
    t0 = time.time()
    trunk = trunk_session(net, k, size)
    feats_train = [cached_features("train", sets["train"], imgs["train"], boxes["train"], card, rc, None, trunk)]
    feats_train += [cached_features("train", sets["train"], imgs["train"], boxes["train"], card, rc,
                                    int(rc["seed"]) + v, trunk) for v in range(1, int(rc["views"]))]
    feats = {s: cached_features(s, sets[s], imgs[s], boxes[s], card, rc, None, trunk) for s in sets if s != "train"}
    t_cache = time.time() - t0
    del imgs

    net = net.to(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    src_train = [s.source for s in sets["train"]]
    adv = None
    if float(rc["adv"]) > 0:
        from .adversary import SourceAdversary

        adv = SourceAdversary(y["train"], src_train, net.fc.in_features)
    if adv is not None:
        params += list(adv.parameters())
        print(f"source adversary: {len(adv.groups)} class/source groups, weight {rc['adv']}", flush=True)
    opt = torch.optim.AdamW(params, lr=float(rc["lr"]), weight_decay=float(rc["weight_decay"]))
    bs, n_train, epochs = int(rc["batch_size"]), len(y["train"]), int(rc["epochs"])
    steps = math.ceil(n_train / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps * epochs, int(float(rc["warmup_epochs"]) * steps)))
    loss_w = None
    if rc["balance"] == "class":
        freq = np.bincount(y["train"], minlength=len(LABELS)).astype(np.float64)
        loss_w = torch.tensor(freq.sum() / (len(LABELS) * np.maximum(freq, 1)), dtype=torch.float32)
    else:
        draw = sample_weights(y["train"], src_train, float(rc["source_alpha"]))
    rng = np.random.default_rng(init_seed)
    views = len(feats_train)
    mix = _intra_label_mix(y["train"], src_train) if float(rc["lisa"]) > 0 else None
    history, best, best_state = [], None, None
    t_train0 = time.time()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(n_train) if loss_w is not None else epoch_indices(draw, n_train, rng)
        view_of = rng.integers(0, views, n_train)
        run_loss, seen, te = 0.0, 0, time.time()
        for i in range(0, n_train, bs):
            idx = order[i : i + bs]
            xb = np.stack([feats_train[view_of[i + j]][t] for j, t in enumerate(idx)]).astype(np.float32)
            if mix is not None and rng.random() < float(rc["lisa"]):
                xb = mix(xb, idx, rng, lambda t: feats_train[int(rng.integers(0, views))][t])
            xt = torch.from_numpy(xb).contiguous(memory_format=torch.channels_last)
            yt = torch.from_numpy(y["train"][idx])
            if adv is None:
                out_b = net(xt, start=k)
            else:
                pooled = net.features(xt, start=k).mean((2, 3))
                out_b = net.fc(net.dropout(pooled))
            loss = F.cross_entropy(out_b, yt, weight=loss_w, label_smoothing=float(rc["label_smoothing"]))
            if adv is not None:  # DANN ramp of the reversed gradient's strength over the run
                p_run = (epoch * steps + i // bs) / (epochs * steps)
                lam = float(rc["adv"]) * (2.0 / (1.0 + math.exp(-10.0 * p_run)) - 1.0)
                loss = loss + adv.loss(pooled, idx, lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
        vl = predict_logits(net, feats["val"], k)
        score = group_score(vl, y["val"], sets["val"])
        val_loss = float(F.cross_entropy(torch.from_numpy(vl), torch.from_numpy(y["val"])))
        rec = {"epoch": epoch + 1, "train_loss": run_loss / seen, "val_loss": val_loss,
               "val_acc": float((vl.argmax(1) == y["val"]).mean()), "val_group_score": score,
               "images_per_s": seen / (time.time() - te)}
        if best is None or (score, -val_loss) > best:
            best, best_state, rec["best"] = (score, -val_loss), {a: b.detach().clone() for a, b in net.state_dict().items()}, True
        history.append(rec)
        print(json.dumps(rec), flush=True)
    t_train = time.time() - t_train0
    net.load_state_dict(best_state)
    logits = {s: predict_logits(net, feats[s], k) for s in feats}
    temperature = fit_temperature(logits["val"], y["val"])
    ops = operating_points(softmax(logits["val"], temperature), y["val"], LABELS)
    subs = {**subtypes_of(resolve_data(rc["pool"])), **subtypes_of(resolve_data(rc["extdev"]))}
    result = {"recipe": rc, "temperature": temperature, "operating_points": ops, "history": history,
              "best_epoch": max(r["epoch"] for r in history if r.get("best")),
              "counts": {s: len(v) for s, v in sets.items()}}
    for s in logits:
        rep = group_report(logits[s], y[s], LABELS, temperature)
        rep["per_source"] = source_report(logits[s], y[s], sets[s], LABELS, temperature, subs)
        rep["group_score"] = group_score(logits[s], y[s], sets[s])
        result[s] = rep
    result["val_metrics"] = evaluate(logits["val"], y["val"], LABELS, temperature)
    result["timing"] = {"cache_s": t_cache, "train_s": t_train, "total_s": time.time() - t_start}
    torch.save({"state_dict": net.state_dict(), "recipe": rc, "labels": LABELS, "temperature": temperature,
                "operating_points": ops}, out / "checkpoint.pt")
    np.savez_compressed(out / "logits.npz", **{f"{s}_logits": v for s, v in logits.items()},
                        **{f"{s}_files": np.array([x.file for x in sets[s]]) for s in logits})
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(summary(result)), flush=True)
    return result


def summary(result: dict) -> dict:
    """One ablation-table row."""
    ext, val = result["extdev"], result["val"]
    ps = ext["per_source"]
    row = {"val_acc": val["accuracy"], "val_ece": val["ece"], "val_group_score": round(val["group_score"], 4),
           "val_nih_pneumonia": val["per_source"].get("pneumonia/nih-pneumonia", {}).get("correct"),
           "val_nih_normal": val["per_source"].get("normal/nih-nofinding", {}).get("correct"),
           "ext_normal": ps.get("normal/chestxray-com-normal", {}).get("correct"),
           "ext_covid": ps.get("covid/hannover-mhh", {}).get("correct"),
           "ext_pneumonia": ps.get("pneumonia/cohen-pneumonia", {}).get("correct"),
           "ext_macro_auc": ext["macro_auc_ovr"], "ext_ece": ext["ece"],
           "wall_s": round(result["timing"]["total_s"])}
    if "test" in result:
        row.update({"test_acc": result["test"]["accuracy"], "test_ece": result["test"]["ece"]})
    return row


def main() -> None:
    """``python -m training.recipes.recipe_v2 OUT_DIR [RECIPE.json | '{"json": "overrides"}' ...]``: later
    arguments override earlier ones (e.g. the recipe file, then '{"epochs": 2}')."""
    import sys

    out = Path(sys.argv[1])
    rc: dict = {}
    for arg in sys.argv[2:]:
        rc.update(json.loads(Path(arg).read_text()) if Path(arg).is_file() else json.loads(arg))
    run_recipe(rc, out)


if __name__ == "__main__":
    main()
