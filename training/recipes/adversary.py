"""Class-conditional source adversary (recipe key ``adv`` of ``training.recipes.recipe_v2``).

From the pooled features it tells the sources of an image's own class apart, and the reversed
gradient (Ganin and Lempitsky, ICML 2015) takes that information out of the features, so
inside a class the hospital's look cannot carry the call. Classes with one source add nothing.
Each class/source group weighs the same.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):  # noqa: ANN001, ANN205
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        return -ctx.lam * g, None


class SourceAdversary(nn.Module):
    def __init__(self, y: np.ndarray, sources: list[str], channels: int) -> None:
        super().__init__()
        keys = [f"{int(c)}/{s}" for c, s in zip(y, sources, strict=True)]
        self.groups = sorted(set(keys))
        gi = np.array([self.groups.index(k) for k in keys])
        cls_of = np.array([int(g.split("/")[0]) for g in self.groups])
        self.register_buffer("target", torch.from_numpy(gi))
        self.register_buffer("allowed", torch.from_numpy(cls_of[None, :] == np.asarray(y)[:, None]))
        size = np.bincount(gi, minlength=len(self.groups)).astype(np.float64)
        self.register_buffer("weight", torch.tensor(size.sum() / (len(size) * size), dtype=torch.float32))
        self.head = nn.Sequential(nn.Linear(channels, 256), nn.ReLU(), nn.Linear(256, len(self.groups)))

    def loss(self, pooled: torch.Tensor, idx: np.ndarray, lam: float) -> torch.Tensor:
        """Cross-entropy over the sources of each image's class; the features get ``-lam`` times
        its gradient."""
        ti = torch.from_numpy(np.asarray(idx))
        z = self.head(_Reverse.apply(pooled, lam)).float()
        z = z.masked_fill(~self.allowed[ti], -1e4)
        return F.cross_entropy(z, self.target[ti], weight=self.weight)
