"""The public API's training call: :func:`wordgpt.training.loop.train`, then the run's report
(``RUN/report.html`` and ``report.md``, :mod:`wordgpt.use.report`) when the run ends on rank
0 (each stage does its own job; this is where they meet)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def train(data_dir: str | Path, out: str | Path, *args: Any, **kw: Any):
    """Train (see :func:`wordgpt.training.loop.train` for every argument), then write the
    run's report unless ``report=False``."""
    from .training.loop import train as _train

    report = kw.pop("report", True)
    log = kw.get("log", print)
    result = _train(data_dir, out, *args, **kw)
    if report and int(os.environ.get("RANK", "0")) == 0:
        from .errors import WordGPTError
        from .use.report import write_report

        try:
            page, _ = write_report(result.run_dir)
            log(f"report: {page}")
        except WordGPTError as e:  # the run is complete; only its report is missing
            log(f"warning: no report written ({e}); `wordgpt report RUN` writes it later")
    return result
