"""Training curves: loss per step and validation score per evaluation, one PNG."""

from __future__ import annotations

import os
from typing import Any


def plot_training(log: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [(r["step"], r["loss"]) for r in log if "loss" in r]
    scores = [(r["step"], r["validation"]["score"]) for r in log if "validation" in r]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    if losses:
        left.plot(*zip(*losses, strict=True), color="tab:blue")
    left.set(xlabel="step", ylabel="training loss", title="loss")
    if scores:
        right.plot(*zip(*scores, strict=True), marker="o", color="tab:green")
    right.set(xlabel="step", ylabel="validation score", title="validation")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
