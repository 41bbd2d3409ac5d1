"""Exception types. Every error lmscale raises on bad input is an :class:`LmscaleError`, whose
message says what is wrong and where; the CLI prints it without a traceback."""


class LmscaleError(Exception):
    """Base class of every error lmscale raises deliberately."""


class InputError(LmscaleError, ValueError):
    """A file, table, argument or selection is malformed or inconsistent."""


class FitError(LmscaleError, RuntimeError):
    """A law could not be fitted: too few runs, degenerate data, or no start converged."""


class DownloadError(LmscaleError, OSError):
    """Fetching or verifying a remote file failed."""


class TrainingDiverged(LmscaleError, RuntimeError):
    """Training produced a non-finite loss; the run is stopped and recorded as failed."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step
