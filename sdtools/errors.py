"""Errors meant for a user: one base class, :class:`UserError`.

The command lines catch only :class:`UserError` (and its children): they print its message on
one line and exit with code 2. Any other exception is a bug and keeps its traceback.
``UserError`` derives from ``ValueError`` so that code which caught ``ValueError`` from the
Python API keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or a state the user can fix; the message names the problem and the fix.

    See Also
    --------
    sdtools.errors : Its children, one per kind of input (``InputError``, ``DataError``,
        ``CheckpointError``, ``EmbeddingsError``, ``AnalysisError``, ``RunError``,
        ``DeviceError``).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> try:
    ...     sdtools.sample_angles(np.ones((3, 4)), np.ones((2, 4)))
    ... except sdtools.UserError as exc:
    ...     print(type(exc).__name__, isinstance(exc, ValueError))
    InputError True
    """


class InputError(UserError):
    """Arrays handed to a measure that it cannot use (shape, dtype, NaN, ...)."""


class DataError(UserError):
    """A data spec or dataset that cannot be used."""


class CheckpointError(UserError):
    """A checkpoint spec that cannot be loaded."""


class EmbeddingsError(UserError):
    """A file that is not a readable sdtools embeddings file."""


class AnalysisError(UserError):
    """Two sets of embeddings that cannot be compared."""


class RunError(UserError):
    """A run directory that is missing, incomplete or not a run."""


class DeviceError(UserError):
    """A device asked for that this machine does not have."""


class Interrupted(BaseException):
    """Raised by the SIGTERM handler so that a run unwinds like on Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum
