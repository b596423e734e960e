"""The installed version of wordgpt, from the package metadata (written once: pyproject.toml)."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version


@functools.cache
def package_version() -> str:
    try:
        return version("wordgpt")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
