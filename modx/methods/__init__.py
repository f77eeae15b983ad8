"""Continual-learning methods, one file each, found by discovery (see :mod:`.base` for the
hooks, their order and what a method declares).

Every module of this package is imported once, which registers the methods it defines with
:func:`register`; so are the modules that installed packages name in the ``modx.methods``
entry-point group (``[project.entry-points."modx.methods"] mine = "mypkg.mymethod"``). A new
method is one file: nothing else lists it. ``modx.methods.ModX`` and the like reach a
registered method's class by its class name.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from modx.errors import ConfigError

from .base import METHODS, Features, Strategy, Trainer, make, register, styles

ENTRY_POINTS = "modx.methods"
_loaded: set[str] = set()


def discover() -> dict[str, type]:
    """Import this package's method modules and every ``modx.methods`` entry point not yet
    imported; return the registry (name -> class). A broken plug-in is a one-line error."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and info.name not in _loaded:
            importlib.import_module(f"{__name__}.{info.name}")
            _loaded.add(info.name)
    for ep in entry_points(group=ENTRY_POINTS):
        key = f"{ep.name}={ep.value}"
        if key in _loaded:
            continue
        _loaded.add(key)
        try:
            ep.load()
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"the method plug-in {ep.name!r} ({ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from None
    return METHODS


def __getattr__(name: str):
    for cls in discover().values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


discover()

__all__ = ["ENTRY_POINTS", "METHODS", "Features", "Strategy", "Trainer", "discover", "make",
           "register", "styles"]
