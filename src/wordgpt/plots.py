"""Pictures: loss curves and embedding maps (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(metrics_csv: str | Path, out_png: str | Path, title: str = "") -> None:
    """Train and val loss against step, from a run's ``metrics.csv``."""
    from .rundir import parse_metrics

    rows, _ = parse_metrics(Path(metrics_csv).read_text(encoding="utf-8", errors="replace"))
    if not rows:
        return
    plt = _pyplot()
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.plot(steps, [float(r["train_loss"]) for r in rows], label="train", marker=".")
    ax.plot(steps, [float(r["val_loss"]) for r in rows], label="val", marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title or "loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def word_map(
    points: np.ndarray,
    words: list[str],
    out_png: str | Path,
    n_labels: int = 100,
    size: tuple[int, int] = (1200, 1200),
    title: str = "",
) -> None:
    """A scatter of 2-D points, the first ``n_labels`` (the most frequent words) labelled."""
    plt = _pyplot()
    dpi = 100
    fig, ax = plt.subplots(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    ax.scatter(points[:, 0], points[:, 1], s=7, c="#c0392b", alpha=0.45, linewidths=0)
    for (x, y), w in zip(points[:n_labels], words[:n_labels], strict=False):
        ax.annotate(w, (x, y), fontsize=8, alpha=0.9, xytext=(2, 2), textcoords="offset points")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    fig.tight_layout()
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
