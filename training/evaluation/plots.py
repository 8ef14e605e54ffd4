"""Confusion-matrix and training-curve PNGs (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_png(cm: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    a = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2.5, 1.2 * len(labels) + 2))
    norm = a / np.maximum(a.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{a[i, j]}\n{norm[i, j]:.1%}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves_png(history: list[dict], path_loss: Path, path_acc: Path) -> None:
    ep = [h["epoch"] for h in history]
    for key_t, key_v, ylabel, path in (("train_loss", "val_loss", "loss", path_loss), ("train_acc", "val_acc", "accuracy", path_acc)):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot(ep, [h[key_t] for h in history], "o-", label="train")
        ax.plot(ep, [h[key_v] for h in history], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
