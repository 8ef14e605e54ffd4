"""Site-adaptation experiments on stand-in sites (cxr-extdev's README allows this one use).

``python -m training.site_experiments cache MODEL.onnx``: features and logits of every cxr-extdev
film, the JSRT normal films and the model's whole internal test split, through the engine's
per-image path (``runs/site/features.npz``).

``python -m training.site_experiments run MODEL.onnx [--grid]``: the issue's stand-in sites. A site
is at most 50 films of ONE source, drawn with a fixed seed (written in the output); the figures
are on the rest of that source, on every other cxr-extdev source and on the internal test split.
With ``--grid`` it repeats every site over site shares and strengths, so the defaults are chosen
on all sites together and the spread shows how much a choice depends on any one of them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from engine.adapt.fit import AdaptOptions, adapt_features, prior_of
from engine.adapt.head import Head
from engine.adapt.reference import load_reference
from engine.model import Classifier

from .data import data_root, load_samples, read_split, resolve_data
from .evaluate_ext import EXTDEV, POOL, default_split_file, other_normals
from .features import engine_features

CACHE = Path("runs/site/features.npz")
SEED = 20261206

# (name, {source: films fitted}, what the target is)
SITES = [
    ("chestxray-com-normal", {"chestxray-com-normal": 50}, "normals called normal on its other films >= 0.95"),
    ("jsrt-nonodule", {"jsrt-nonodule": 30}, "normals called normal on the other 62 >= 0.90"),
    ("tbx11k-tb+chestxray-com", {"tbx11k-tb": 50, "chestxray-com-normal": 50}, "TB recall on the other 50 >= 0.85"),
    ("hannover-mhh", {"hannover-mhh": 50}, "(no target) a COVID-only site"),
    ("cohen-pneumonia", {"cohen-pneumonia": 35}, "(no target) published-figure pneumonias"),
]


def cache(model: Path) -> Path:
    clf = Classifier(model, device="cpu")
    labels = list(clf.labels)
    ext, _ = load_samples(resolve_data(EXTDEV))
    jsrt, _ = other_normals(resolve_data(POOL), None)
    split = read_split(default_split_file(model), data_root(resolve_data(POOL)))
    rows = [("extdev", s) for s in ext] + [("extdev", s) for s in jsrt] + [("test", s) for s in split["test"]]
    t0 = time.time()
    feats, kept = engine_features(clf, [s for _, s in rows])
    out = clf.run(np.zeros((1, 3, *clf.card.input_size), np.float32))  # noqa: F841 - warm
    rows = [rows[i] for i in kept]
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(CACHE, features=feats.astype(np.float32),
                        label=np.array([labels.index(s.label) for _, s in rows]),
                        source=np.array([s.source for _, s in rows]), part=np.array([p for p, _ in rows]),
                        files=np.array([s.file for _, s in rows]))
    print(f"cached {len(rows)} films in {time.time() - t0:.0f} s -> {CACHE}")
    return CACHE


def _rate(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean()) if len(y) else float("nan")


def run_site(ref, base: Head, base_t: float, prior, data: dict, site: dict[str, int], opts: AdaptOptions) -> dict:  # noqa: ANN001
    rng = np.random.default_rng(SEED)
    src, part = data["source"], data["part"]
    fit_idx = []
    for s, n in site.items():
        idx = np.flatnonzero((src == s) & (part == "extdev"))
        fit_idx += list(rng.choice(idx, size=min(n, len(idx)), replace=False))
    fit_idx = np.array(sorted(fit_idx))
    x, y = data["features"], data["label"]
    t0 = time.time()
    fitted = adapt_features(ref, base, base_t, prior, x[fit_idx], y[fit_idx], None, opts)
    secs = time.time() - t0
    rest = np.ones(len(y), bool)
    rest[fit_idx] = False
    res = {"fitted_films": {s: n for s, n in site.items()}, "seconds": round(secs, 2),
           "site_cv": fitted.figures["site_cross_validated"]["per_class"], "sources": {}}
    for s in sorted(set(src[part == "extdev"])):
        m = rest & (src == s) & (part == "extdev")
        res["sources"][s] = {"n": int(m.sum()), "before": round(_rate(base.logits(x[m]), y[m]), 4),
                             "after": round(_rate(fitted.head.logits(x[m]), y[m]), 4), "site": s in site}
    m = part == "test"
    res["internal_test"] = {"n": int(m.sum()), "before": round(_rate(base.logits(x[m]), y[m]), 4),
                            "after": round(_rate(fitted.head.logits(x[m]), y[m]), 4)}
    res["worst_other_source_move"] = round(max(abs(v["after"] - v["before"]) for v in res["sources"].values()
                                               if not v["site"]), 4)
    res["temperature"] = round(fitted.temperature, 4)
    return res


def run(model: Path, grid: bool) -> dict:
    clf = Classifier(model, device="cpu")
    ref = load_reference(clf)
    from engine.adapt.export import base_head

    base, base_t = base_head(clf.path), float(clf.card.temperature)
    prior = prior_of(clf.card.extra, clf.labels)
    z = np.load(CACHE)
    data = {k: z[k] for k in z.files}
    combos = list(itertools.product([0.25, 0.5, 0.75], [1e-3, 1e-2, 1e-1])) if grid else [(None, None)]
    out = {"seed": SEED, "model": clf.card.name, "version": clf.card.version, "runs": []}
    for share, strength in combos:
        opts = AdaptOptions() if share is None else AdaptOptions(site_share=share, strength=strength)
        for name, site, target in SITES:
            r = run_site(ref, base, base_t, prior, data, site, opts)
            r.update(site=name, target=target, site_share=opts.site_share, strength=opts.strength)
            out["runs"].append(r)
            srcs = " ".join(f"{s}:{v['before']:.2f}->{v['after']:.2f}" for s, v in r["sources"].items())
            print(f"share={opts.site_share} strength={opts.strength:g} {name:24s} {srcs} | internal "
                  f"{r['internal_test']['before']:.3f}->{r['internal_test']['after']:.3f} | worst other move "
                  f"{r['worst_other_source_move']:.3f} | {r['seconds']} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.site_experiments", description=__doc__.splitlines()[0])
    p.add_argument("cmd", choices=["cache", "run"])
    p.add_argument("model")
    p.add_argument("--grid", action="store_true")
    p.add_argument("-o", "--output", default="runs/site/experiments.json")
    a = p.parse_args(argv)
    if a.cmd == "cache":
        cache(Path(a.model))
        return 0
    res = run(Path(a.model), a.grid)
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(res, indent=1))
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
