"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""


class WordGPTError(Exception):
    """Bad input or a bad request: the message says what went wrong and what to do."""


class DataError(WordGPTError):
    """A data set or text file that cannot be read or used."""


class CheckpointError(WordGPTError):
    """A checkpoint or run folder that is missing, corrupt or does not fit."""


class InterruptError(WordGPTError):
    """Ctrl-C or SIGTERM: the command stopped; what it wrote is whole (exit code 130)."""

    exit_code = 130
