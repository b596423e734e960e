"""``python -m wordgpt.cli``: the ``wordgpt`` command."""

from . import main

main()
