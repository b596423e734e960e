"""The ``wordgpt`` command. Thin: it parses flags and calls the same API a notebook uses.

The flags of ``prepare``, ``train``, ``sample`` and ``embed train`` are generated from the
config dataclasses' fields (:mod:`.flags`); the commands live in :mod:`.commands` and
:mod:`.embed`. Bad input is one ``error:`` line and exit code 2 (3: a run that diverged);
Ctrl-C says what it did and exits with 130.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import click

from ..errors import InterruptError, WordGPTError
from ..logs import console
from .commands import register
from .embed import embed


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "show_default": True,
    }
)
@click.version_option(package_name="wordgpt")
def cli() -> None:
    """Train small GPT language models on a book or any text, and write with them."""


register(cli)
cli.add_command(embed)


def _interrupt(signum, frame):
    raise InterruptError("interrupted; every file written so far is whole", signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (3 for a run that
    diverged); Ctrl-C and SIGTERM outside the training loop stop at once with one line and
    exit code 130 (inside it, the first stops the run cleanly, with a checkpoint)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
    console()
    try:
        # when the command began: a time budget is the wall time from here, imports included
        cli.main(args=argv, prog_name="wordgpt", standalone_mode=False,
                 obj={"started": time.perf_counter()})  # fmt: skip
    except InterruptError as e:
        click.echo(" ".join(str(e).split()), err=True)
        sys.exit(e.exit_code)
    except WordGPTError as e:
        click.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(getattr(e, "exit_code", 2))
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted; every file written so far is whole", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except RuntimeError as e:
        if not lost_peer(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = f"another process of this run stopped ({first[:200]})"
        click.echo(f"error: {why}; the checkpoints saved are whole: --resume goes on", err=True)
        sys.exit(2)


def lost_peer(e: RuntimeError) -> bool:
    """Whether ``e`` is a collective that failed because another process of the run is
    gone (killed, out of memory): torchrun's other ranks then say so in one line."""
    import torch.distributed as dist

    gone = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "gloo")
    return isinstance(e, dist.DistError) or any(s in str(e) for s in gone)


__all__ = ["cli", "main"]
