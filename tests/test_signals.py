"""Signals: a Ctrl-C or SIGTERM stops a run after its step as asked (last.pt saved, exit
130), even after the loop's last step or inside a log line; during start-up it is one line."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from wordgpt.use.train_run import train

from .helpers import start_training, wait_for


def test_ctrl_c_after_the_last_step_stops_the_run_as_asked(word_data, tmp_path, monkeypatch):
    """A signal that lands once the loop has ended, here during the final evaluation, is not
    lost: the run stops as one stopped in the loop does (last.pt saved, summary "signal 2",
    the InterruptError that makes exit code 130), instead of ending as if never asked."""
    from wordgpt.errors import InterruptError
    from wordgpt.training import train as train_module

    real = train_module.evaluate_and_save

    def evaluate_then_ctrl_c(trainer, *a, **k):
        if trainer.state.step == 10:  # the final evaluation: the loop has ended
            os.kill(os.getpid(), signal.SIGINT)
        return real(trainer, *a, **k)

    monkeypatch.setattr(train_module, "evaluate_and_save", evaluate_then_ctrl_c)
    with pytest.raises(InterruptError, match="by a signal"):
        train(word_data, tmp_path / "r", "tiny", max_iters=10, eval_interval=100,
              progress=False, tensorboard=False, report=False)  # fmt: skip
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["stopped"] == "signal 2" and (tmp_path / "r" / "last.pt").is_file()


def test_a_signal_that_lands_in_a_log_line_is_not_swallowed(capsys):
    """A Ctrl-C raised while a line is written, which the writer turns into another error
    (tqdm's lock set-up does), still stops the program; a plain write error does not."""
    import logging

    from wordgpt.errors import InterruptError
    from wordgpt.logs import Console

    class Broken:
        def __init__(self, interrupted):
            self.interrupted = interrupted

        def write(self, s):
            try:
                if self.interrupted:
                    raise InterruptError("interrupted", 2)
            finally:
                raise ValueError("release unlocked lock")

        def flush(self):
            pass

    record = logging.LogRecord("wordgpt", logging.INFO, __file__, 1, "a line", None, None)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sys, "stdout", Broken(True))
        with pytest.raises(InterruptError):
            Console().emit(record)
        m.setattr(sys, "stdout", Broken(False))
        Console().emit(record)  # a closed stdout must not stop a run
    assert "Logging error" in capsys.readouterr().err


def test_ctrl_c_during_start_up_is_one_line(word_data, tmp_path):
    """SIGINT as soon as the run folder's lock exists (start-up has begun): one line, exit
    code 130, no traceback, whether it lands in start-up or in the loop."""
    run = tmp_path / "x"
    p = start_training(word_data, run, "--preset", "tiny", "--no-progress", output=True)
    wait_for(lambda: (run / ".lock").exists() or p.poll() is not None)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
