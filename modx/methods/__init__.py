"""Continual-learning methods, one file each, registered by name (see :mod:`.base` for the
hooks, their order and what a method declares)."""

from . import (  # noqa: F401  (importing a method's module registers it)
    cumulative,
    ema,
    ewc,
    finetune,
    joint,
    lwf,
    modx,
    replay,
    rkd,
    wiseft,
    zscl,
)
from .base import METHODS, Strategy, make, register, styles
from .cumulative import Cumulative
from .ema import EMA
from .ewc import EWC
from .finetune import Finetune
from .joint import Joint
from .lwf import LwF
from .modx import ModX
from .replay import Replay
from .rkd import RKD
from .wiseft import WiSEFT
from .zscl import ZSCL

__all__ = ["EMA", "EWC", "METHODS", "RKD", "Cumulative", "Finetune", "Joint", "LwF", "ModX",
           "Replay", "Strategy", "WiSEFT", "ZSCL", "make", "register", "styles"]
