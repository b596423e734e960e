"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""


class WordGPTError(Exception):
    """Bad input or a bad request: the message says what went wrong and what to do."""


class DataError(WordGPTError):
    """A data set or text file that cannot be read or used."""


class CheckpointError(WordGPTError):
    """A checkpoint or run folder that is missing, corrupt or does not fit."""


class InterruptError(BaseException):
    """Ctrl-C or SIGTERM: the command stopped; what it wrote is whole. The exit code is the
    shell's for the signal: 130 for Ctrl-C (SIGINT), 143 for SIGTERM. Like KeyboardInterrupt
    it is not an Exception, so that no ``except Exception`` on its way (a logging handler's,
    a step that turns errors into warnings) can swallow a signal raised inside it."""

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.exit_code = 128 + signum
