"""Site-adaptation experiments on stand-in sites (cxr-extdev's README allows this one use).

``python -m training.evaluation.site_experiments cache MODEL.onnx``: features and logits of every cxr-extdev
film, the JSRT normal films and the model's whole internal test split, through the engine's
per-image path (``runs/site/features.npz``).

``python -m training.evaluation.site_experiments make-site SOURCE=N[,SOURCE=N] --out SITE [--rest REST]``: a stand-in
site folder (links to the same films ``run`` fits on) and the source's other films, for ``radlens-adapt``.

``python -m training.evaluation.site_experiments run MODEL.onnx [--grid]``: the issue's stand-in sites. A site
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
from engine.ai.model import Classifier

from ..data.data import data_root, load_samples, read_split, resolve_data
from .evaluate_ext import EXTDEV, POOL, default_split_file, engine_features, other_normals

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


def pick(files: list[str], n: int, seed: int = SEED) -> list[str]:
    """``n`` of a source's films (by file name, sorted first), drawn with ``seed``: the site's films."""
    files = sorted(files)
    rng = np.random.default_rng(seed)
    return sorted(files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False))


def run_site(ref, base: Head, base_t: float, prior, data: dict, site: dict[str, int], opts: AdaptOptions,  # noqa: ANN001
             seed: int = SEED) -> dict:
    src, part, files = data["source"], data["part"], data["files"]
    fit_idx = []
    for s, n in site.items():
        idx = np.flatnonzero((src == s) & (part == "extdev"))
        chosen = set(pick([str(files[i]) for i in idx], n, seed))
        fit_idx += [i for i in idx if str(files[i]) in chosen]
    fit_idx = np.array(sorted(fit_idx))
    x, y = data["features"], data["label"]
    t0 = time.time()
    fitted = adapt_features(ref, base, base_t, prior, x[fit_idx], y[fit_idx], None, opts)
    secs = time.time() - t0
    rest = np.ones(len(y), bool)
    rest[fit_idx] = False
    res = {"fitted_films": {s: n for s, n in site.items()}, "seed": seed, "seconds": round(secs, 2),
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


def run(model: Path, grid: bool, draws: int = 1) -> dict:
    clf = Classifier(model, device="cpu")
    ref = load_reference(clf)
    from engine.adapt.export import base_head

    base, base_t = base_head(clf.path), float(clf.card.temperature)
    prior = prior_of(clf.card.extra, clf.labels)
    z = np.load(CACHE)
    data = {k: z[k] for k in z.files}
    combos = list(itertools.product([0.5, 0.75, 0.9], [3e-3, 1e-2, 3e-2, 1e-1])) if grid else [(None, None)]
    out = {"seed": SEED, "model": clf.card.name, "version": clf.card.version, "runs": []}
    for share, strength in combos:
        opts = AdaptOptions() if share is None else AdaptOptions(site_share=share, strength=strength)
        for name, site, target in SITES:
            for seed in range(SEED, SEED + draws):
                r = run_site(ref, base, base_t, prior, data, site, opts, seed)
                r.update(site=name, target=target, site_share=opts.site_share, strength=opts.strength)
                out["runs"].append(r)
                srcs = " ".join(f"{s}:{v['before']:.2f}->{v['after']:.2f}" for s, v in r["sources"].items())
                print(f"share={opts.site_share} strength={opts.strength:g} {name:24s} seed {seed} {srcs} | internal "
                      f"{r['internal_test']['before']:.3f}->{r['internal_test']['after']:.3f} | worst other move "
                      f"{r['worst_other_source_move']:.3f} | {r['seconds']} s", flush=True)
    out["summary"] = summarize(out["runs"])
    return out


def summarize(runs: list[dict]) -> list[dict]:
    """Per site (and parameters): mean, min and max over the draws of each figure."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["site"], r["site_share"], r["strength"]), []).append(r)
    out = []
    for (site, share, strength), rs in groups.items():
        figs: dict[str, list[float]] = {}
        for r in rs:
            for s, v in r["sources"].items():
                key = f"{s} (site, other films)" if v["site"] else f"{s} (other source) change"
                figs.setdefault(key, []).append(v["after"] if v["site"] else v["after"] - v["before"])
                if v["site"]:
                    figs.setdefault(f"{s} before", []).append(v["before"])
            figs.setdefault("internal test change", []).append(r["internal_test"]["after"] - r["internal_test"]["before"])
            for lab, v in r["site_cv"].items():
                figs.setdefault(f"site CV {lab}", []).append(v["rate"])
            figs.setdefault("seconds", []).append(r["seconds"])
        out.append({"site": site, "site_share": share, "strength": strength, "draws": len(rs),
                    "figures": {k: {"mean": round(float(np.mean(v)), 4), "min": round(float(np.min(v)), 4),
                                    "max": round(float(np.max(v)), 4)} for k, v in figs.items()}})
    return out


def make_site(specs: list[str], out: Path, rest: Path | None) -> None:
    """A stand-in site folder from cxr-extdev (or the JSRT normals): SOURCE=N films of each named source,
    chosen as ``run`` chooses them, linked under OUT/<label>/; the source's other films under REST/<label>/."""
    import os

    ext, _ = load_samples(resolve_data(EXTDEV))
    jsrt, _ = other_normals(resolve_data(POOL), None)
    for spec in specs:
        source, _, n = spec.partition("=")
        films = [s for s in ext + jsrt if s.source == source]
        if not films or not n.isdigit() or int(n) > 50:
            raise SystemExit(f"{spec}: expected SOURCE=N with a cxr-extdev source or jsrt-nonodule and N <= 50 "
                             "(cxr-extdev's README allows at most 50 films of one source)")
        chosen = set(pick([s.file for s in films], int(n)))
        for s in films:
            dest = (out if s.file in chosen else rest)
            if dest is None:
                continue
            (dest / s.label).mkdir(parents=True, exist_ok=True)
            link = dest / s.label / Path(s.file).name
            if not link.exists():
                os.symlink(Path(s.path).resolve(), link)
        print(f"{source}: {len(chosen)} films in {out}" + (f", {len(films) - len(chosen)} in {rest}" if rest else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluation.site_experiments", description=__doc__.splitlines()[0])
    p.add_argument("cmd", choices=["cache", "run", "make-site"])
    p.add_argument("model", nargs="?", default="resources/models/radlens-cxr4.onnx",
                   help="the model (cache, run); for make-site: SOURCE=N[,SOURCE=N]")
    p.add_argument("--out", help="make-site: the site folder to create")
    p.add_argument("--rest", help="make-site: a folder for the source's other films (to check the adapted model on)")
    p.add_argument("--grid", action="store_true")
    p.add_argument("--draws", type=int, default=5, help="run: draws of each site's films (seeds 20261206, +1, ...)")
    p.add_argument("-o", "--output", default="runs/site/experiments.json")
    a = p.parse_args(argv)
    if a.cmd == "cache":
        cache(Path(a.model))
        return 0
    if a.cmd == "make-site":
        if not a.out:
            raise SystemExit("make-site needs --out SITE_FOLDER")
        make_site(a.model.split(","), Path(a.out), Path(a.rest) if a.rest else None)
        return 0
    res = run(Path(a.model), a.grid, a.draws)
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(res, indent=1))
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
