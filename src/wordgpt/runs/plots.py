"""A run's loss curve as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from ..figures import pyplot, save_png
from .metrics import parse_metrics


def loss_curve(metrics_csv: str | Path, out_png: str | Path, title: str = "") -> None:
    """Train and val loss against step, from a run's ``metrics.csv``."""
    rows, _ = parse_metrics(Path(metrics_csv).read_text(encoding="utf-8", errors="replace"))
    if not rows:
        return
    plt = pyplot()
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
    save_png(fig, out_png)
