"""Train the lung U-Net on one fold of the lung-mask set (CPU friendly: arrays cached at
input size, augmentation in numpy, whole network fine-tuned)."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import DEFAULT_DATA, REPO_ROOT, Case, SegAugment, augment_pair, load_arrays, read_cases
from .model import LungUNet


@dataclass
class SegConfig:
    size: int = 160
    decoder: list[int] = field(default_factory=lambda: [96, 64, 32])  # 3 levels: logits at stride 4
    epochs: int = 30
    batch: int = 8
    lr: float = 2e-3  # decoder; the pretrained encoder gets lr * encoder_lr_factor
    encoder_lr_factor: float = 0.5
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    train_folds: list[str] = field(default_factory=lambda: ["fold1"])
    test_folds: list[str] = field(default_factory=lambda: ["fold2"])
    limit: int = 0  # use only this many training cases (smoke tests)
    limit_test: int = 0
    pretrained: bool = True
    threads: int = 1  # one thread: on a shared CPU two threads spin-wait (10x the CPU per step)
    max_minutes: float = 0.0  # wall-time budget: the schedule anneals by time when that is further along (0 = none)
    data: str = str(DEFAULT_DATA)
    cache_dir: str = str(REPO_ROOT / "runs" / "cache")

    @classmethod
    def from_dict(cls, d: dict) -> SegConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def pick(cases: list[Case], folds: list[str], limit: int) -> list[Case]:
    """Cases of the folds; with a limit, spread evenly over the sources."""
    chosen = [c for c in cases if c.fold in folds]
    if limit and limit < len(chosen):
        by_source: dict[str, list[Case]] = {}
        for c in chosen:
            by_source.setdefault(c.source, []).append(c)
        rr = [c for group in zip(*by_source.values(), strict=False) for c in group]
        chosen = rr[:limit]
    return chosen


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    dice = (2 * inter + 1.0) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1.0)
    return bce + (1.0 - dice).mean()


def _lr_at(progress: float, warm: float) -> float:
    """Linear warm-up over ``warm`` (a fraction of training), then cosine to 0 at progress 1."""
    if progress < warm:
        return max(0.02, progress / warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - warm) / max(1e-9, 1.0 - warm))))


def train(cfg: SegConfig, out_dir: Path, log=print) -> tuple[LungUNet, dict]:  # noqa: ANN001 - a print-like callable
    """Train; write ``checkpoint.pt`` and ``train_log.jsonl`` in ``out_dir``; return the net and a summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    cases = pick(read_cases(Path(cfg.data)), cfg.train_folds, cfg.limit)
    images, masks = load_arrays(cases, cfg.size, Path(cfg.cache_dir) if cfg.cache_dir else None)
    imgs_f, masks_f = images.astype(np.float32) / 255.0, masks.astype(np.float32) / 255.0
    log(f"{len(cases)} training cases ({', '.join(sorted({c.source for c in cases}))}) at {cfg.size} px "
        f"loaded in {time.perf_counter() - t0:.1f} s")
    net = LungUNet(pretrained=cfg.pretrained, decoder=tuple(cfg.decoder))
    enc = list(net.encoder.parameters())
    rest = [p for n, p in net.named_parameters() if not n.startswith("encoder.")]
    opt = torch.optim.AdamW([{"params": enc, "lr": cfg.lr * cfg.encoder_lr_factor}, {"params": rest, "lr": cfg.lr}],
                            weight_decay=cfg.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = max(1, math.ceil(len(cases) / cfg.batch))
    total, warm = cfg.epochs * steps_per_epoch, cfg.warmup_epochs / max(1, cfg.epochs)
    aug = SegAugment()
    step, history, stopped, f = 0, [], "", 0.0
    t_train = time.perf_counter()
    # On a shared CPU an epoch may take twice as long: with a budget, the schedule follows
    # the wall clock when that is further along, so it still anneals fully and ends in time.
    budget = cfg.max_minutes * 60 - (t_train - t0) - 30.0 if cfg.max_minutes else 0.0

    def progress() -> float:
        p = step / total
        return max(p, (time.perf_counter() - t_train) / budget) if budget > 0 else p
    with open(out_dir / "train_log.jsonl", "w", encoding="utf-8") as logf:
        for epoch in range(cfg.epochs):
            net.train()
            order = rng.permutation(len(cases))
            losses: list[float] = []
            t_ep = time.perf_counter()
            for b in range(0, len(order), cfg.batch):
                if progress() >= 1.0:
                    break
                idx = order[b: b + cfg.batch]
                pairs = [augment_pair(imgs_f[i], masks_f[i], rng, aug) for i in idx]
                x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
                y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
                f = _lr_at(progress(), warm)
                for g, lr in zip(opt.param_groups, base, strict=True):
                    g["lr"] = lr * f
                loss = dice_bce(net.logits(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
            rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"), "lr_factor": round(f, 4),
                   "epoch_s": round(time.perf_counter() - t_ep, 1), "elapsed_s": round(time.perf_counter() - t0, 1),
                   "cpu_s": round(time.process_time() - cpu0, 1), "load1": round(os.getloadavg()[0], 2)}
            history.append(rec)
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log(f"epoch {rec['epoch']}/{cfg.epochs} loss {rec['loss']:.4f} ({rec['epoch_s']} s, total {rec['elapsed_s']} s)")
            if progress() >= 1.0 and epoch + 1 < cfg.epochs:
                stopped = f"time budget reached in epoch {epoch + 1} (max_minutes={cfg.max_minutes}); schedule annealed by time"
                log(stopped)
                break
    net.eval()
    summary = {"cases": len(cases), "per_source": {s: sum(c.source == s for c in cases) for s in sorted({c.source for c in cases})},
               "epochs_run": len(history), "train_seconds": round(time.perf_counter() - t_train, 1),
               "wall_seconds_incl_loading": round(time.perf_counter() - t0, 1),
               "cpu_seconds": round(time.process_time() - cpu0, 1), "final_loss": history[-1]["loss"] if history else None,
               "stopped": stopped}
    torch.save({"state_dict": net.state_dict(), "config": asdict(cfg), "summary": summary}, out_dir / "checkpoint.pt")
    return net, summary


def load_checkpoint(path: Path) -> tuple[LungUNet, SegConfig, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = SegConfig.from_dict(ck["config"])
    net = LungUNet(pretrained=False, decoder=tuple(cfg.decoder))
    net.load_state_dict(ck["state_dict"])
    return net.eval(), cfg, ck.get("summary", {})
