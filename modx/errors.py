"""Errors of training and studies, children of :class:`sdtools.errors.UserError` (one line,
exit code 2 on the command line)."""

from __future__ import annotations

from sdtools.errors import UserError


class ConfigError(UserError):
    """A training or study configuration with a wrong key, type or value."""


class TrainingError(UserError):
    """A run that cannot go on; the message says why and what was kept."""


__all__ = ["ConfigError", "TrainingError"]
