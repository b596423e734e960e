"""Matplotlib without a display, and pictures saved atomically (a crash never leaves a torn
PNG)."""

from __future__ import annotations

from pathlib import Path

from .fileio import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, out_png: str | Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``out_png`` atomically, then close it."""
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        pyplot().close(fig)
