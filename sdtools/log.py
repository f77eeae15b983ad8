"""Messages of the library: ``logging`` loggers named after their modules.

Library code logs through :func:`get_logger` (``logging.getLogger(__name__)`` with a filter
that drops records on every rank but 0 under ``torchrun``). Used as a library, nothing is
configured here: warnings reach stderr through logging's last resort when the application
configures no logging, and informational messages are dropped unless it does (for example
``logging.basicConfig(level=logging.INFO)``). The command lines install
:func:`cli_messages`: plain messages on stderr at INFO; under ``-q``, :data:`NOTICE` and above
(notices and warnings).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

NOTICE = 25  # between INFO and WARNING: one line before a long step with nothing else to show
logging.addLevelName(NOTICE, "NOTICE")


def process_rank() -> int:
    """This process's rank under ``torchrun`` (the process group's, else ``$RANK``); 0 alone."""
    dist = sys.modules.get("torch.distributed")  # initialised only if torch was imported
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class RankZero(logging.Filter):
    """Passes records on rank 0 only: one message per job, not one per process."""

    def filter(self, record: logging.LogRecord) -> bool:
        return process_rank() == 0


_RANK_ZERO = RankZero()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, its records emitted on rank 0 only."""
    logger = logging.getLogger(name)
    if _RANK_ZERO not in logger.filters:
        logger.addFilter(_RANK_ZERO)
    return logger


class _Plain(logging.Formatter):
    """The message alone; warnings and errors prefixed as the command lines' own are."""

    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"warning: {msg}"
        return msg


class _Stderr(logging.Handler):
    """Writes to ``sys.stderr`` as it is when a record is emitted (a test or an in-process
    caller may have replaced it since the handler was made)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Plain("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


_cli: tuple[str, ...] | None = None  # the loggers the command line being run shows


@contextlib.contextmanager
def cli_messages(packages: Sequence[str] = ("sdtools",),
                 level: int = logging.INFO) -> Iterator[None]:
    """The command lines' messages while inside: the loggers of ``packages`` at ``level``
    (INFO), plain lines on stderr (``warning:`` / ``error:`` before those levels); undone on
    exit, so an in-process caller's logging is left as it was."""
    global _cli
    handler = _Stderr()
    saved = []
    # a root handler that already prints to the terminal (``logging.basicConfig`` in the
    # calling process) would print every message a second time: stop them at the package
    twice = any(isinstance(h, logging.StreamHandler)
                and getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__,
                                                   sys.__stdout__)
                for h in logging.getLogger().handlers)
    for name in packages:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(level)
        logger.addHandler(handler)
        if twice:
            logger.propagate = False
    outer, _cli = _cli, tuple(packages)
    try:
        yield
    finally:
        _cli = outer
        for logger, old, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(old)
            logger.propagate = propagate


def quiet_messages(quiet: bool) -> bool:
    """The command lines' ``-q/--quiet`` (an option callback): no progress lines, only
    notices (:data:`NOTICE`: one line before a long step, such as a run's report being built),
    warnings and errors."""
    if quiet and _cli is not None:
        for name in _cli:
            logging.getLogger(name).setLevel(NOTICE)
    return quiet
