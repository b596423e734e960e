"""What a run folder holds beside its own checkpoints: the further members of its ensemble
(``RUN/members/K``, each a run folder of its own) and its n-gram partner
(``RUN/partner.json``: the order and the GPT's weight in the mixture).

A member stopped by a signal or a divergence is left out of the ensemble; a partner file that
does not say a valid order and weight is refused in one line, as a checkpoint is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..config import NGRAM_MAX
from ..errors import CheckpointError
from ..fileio import atomic_write, read_json_object

PARTNER = "partner.json"


def member_dir(run_dir: str | Path, k: int) -> Path:
    """The folder of the run's member ``k`` (2, 3, ...; the run itself is member 1)."""
    return Path(run_dir) / "members" / str(k)


def member_checkpoints(run_dir: str | Path) -> list[Path]:
    """The ``best.pt`` of each further member the run trained to its end, in order (one
    stopped by a signal or a divergence is left out, and so is a link: members are the
    run's own folders, never a model from elsewhere)."""
    found = []
    for best in (Path(run_dir) / "members").glob("*/best.pt"):
        if best.is_symlink() or best.parent.is_symlink():
            continue
        stopped = str(read_json_object(best.parent / "summary.json").get("stopped", "signal"))
        if not stopped.startswith(("signal", "diverged")):
            found.append(best)
    return sorted(found, key=lambda p: (len(p.parent.name), p.parent.name))


def read_partner(run_dir: str | Path) -> dict | None:
    """RUN/partner.json, checked (an order from 1 to NGRAM_MAX, the GPT's weight from 0 to
    1), or None when the run has no partner file (a link is none)."""
    path = Path(run_dir) / PARTNER
    if not path.is_file() or path.is_symlink():  # the run's own file, never a link
        return None
    fit = read_json_object(path)
    order, weight = fit.get("order"), fit.get("gpt_weight")
    if not (isinstance(order, int) and not isinstance(order, bool) and 1 <= order <= NGRAM_MAX):
        raise CheckpointError(f"{path}: its order must be a whole number from 1 to {NGRAM_MAX}, "
                              f"got {order!r}; delete the file to use the GPT alone")  # fmt: skip
    ok = isinstance(weight, int | float) and not isinstance(weight, bool)
    if not (ok and math.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise CheckpointError(f"{path}: the GPT's weight must be a number from 0 to 1, got "
                              f"{weight!r}; delete the file to use the GPT alone")  # fmt: skip
    return fit


def write_partner(run_dir: str | Path, fit: dict) -> None:
    atomic_write(Path(run_dir) / PARTNER, json.dumps(fit, indent=2) + "\n")
