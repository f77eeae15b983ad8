"""A continual-learning method: hooks the trainer calls, and what a method declares about
itself. Every method is one file in this package, registered by name with :func:`register`.

Hook order (one place, resume included), for each method and phase t = 1..T:

1. the trainer loads the phase's starting weights (phase 0's model, or phase t-1's);
   on ``--resume`` a finished phase is skipped after ``load_state_dict`` of its saved state
   (``strategy.pt``);
2. ``teacher``: the frozen model the method distils from, by its ``teacher`` policy
   (``none``, ``previous``: the phase's starting weights, ``initial``: phase 0's model);
3. mid-phase resume: weights, optimizer and ``load_state_dict`` come from ``last.pt`` and
   ``trainer.resumed_mid_phase`` is True;
4. ``phase_data(t, phases)``: what to train on; ``begin_phase(trainer, t)`` (after a mid-phase
   resume too: a method keeps what it already set up, see ``resumed_mid_phase``);
5. every step: ``extra_batch`` (rows mixed into the batch), the CLIP loss plus ``loss``
   (on the batch's features, per micro-batch with exact accumulation), ``penalty`` (on the
   weights, once per step), then ``after_step(trainer, t, step)``;
6. ``end_phase(trainer, t)``: weight surgery allowed, before the phase's checkpoint is written;
7. ``state_dict()``: saved beside the checkpoint (``strategy.pt``) and in ``last.pt``.

A method declares ``name``, ``knob`` (the setting a study sweeps: a training key such as
``lr``, or one of its own ``options``), ``log_keys`` (what its ``loss``/``penalty`` log),
``teacher``, ``single_run`` (trains once on everything), ``options`` (its own settings
with defaults: the TOML section ``[NAME]``, stored in ``method_options``), and how figures
draw it: ``colour`` and ``upper_bound`` (dashed).
"""

from __future__ import annotations

import numpy as np
import torch

from sdtools.errors import ConfigError

METHODS: dict[str, type] = {}


def register(cls):
    """Register a method class under its ``name`` (a decorator)."""
    if not getattr(cls, "name", None) or cls.name in ("base",):
        raise ValueError(f"{cls.__name__} needs a name")
    METHODS[cls.name] = cls
    return cls


def styles(names=None) -> dict:
    """method -> {"colour", "dashed"} for the run report and the figures (registered methods
    among ``names``, default all)."""
    names = METHODS if names is None else [n for n in names if n in METHODS]
    return {n: {k: v for k, v in (("colour", METHODS[n].colour),
                                  ("dashed", METHODS[n].upper_bound)) if v is not None}
            for n in names}


def make(name: str, cfg):
    if name not in METHODS:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name](cfg)


class Strategy:
    name = "base"
    knob: str | None = None
    log_keys: tuple[str, ...] = ()
    teacher = "none"  # none | previous | initial
    single_run = False  # True: trains once on everything (joint), not phase by phase
    options: dict = {}  # the method's own settings and their defaults ([NAME] in a config)
    # the options that are data SPECs: opened with the run's data, before anything is written,
    # and refused when they are the run's evaluation sets or a phase's training data
    data_options: tuple[str, ...] = ()
    colour: str | None = None  # how figures draw it ("#rrggbb"; None: from the name)
    upper_bound = False  # a reference trained on more data (figures draw it dashed)

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def needs_teacher(self) -> bool:
        return self.teacher != "none"

    def option(self, key: str):
        """One of the method's own settings: the config's ``[NAME]`` value or the default."""
        return (getattr(self.cfg, "method_options", {}) or {}).get(self.name, {}).get(
            key, self.options[key])

    @classmethod
    def check_options(cls, opts: dict) -> None:
        """Refuse settings the method cannot use (a one-line ConfigError)."""

    def phase_data(self, t: int, phases: list):
        return phases[t]

    def begin_phase(self, trainer, t: int) -> None:
        pass

    def end_phase(self, trainer, t: int) -> None:
        pass

    def after_step(self, trainer, t: int, step: int) -> None:
        pass

    def extra_batch(self, trainer, t: int, step: int) -> np.ndarray | None:
        """Extra (phase, image, caption) rows to train on in this step, or None."""
        return None

    def loss(self, trainer, feats: dict) -> tuple[torch.Tensor | None, dict]:
        return None, {}

    def penalty(self, trainer) -> tuple[torch.Tensor | None, dict]:
        return None, {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, st: dict) -> None:
        pass


def teacher_feats(feats):
    from sdtools.dist import gather

    return gather(feats["img_old"], with_grad=False), gather(feats["txt_old"], with_grad=False)
