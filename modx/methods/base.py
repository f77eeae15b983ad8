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
``extras_keys`` (those of its log keys averaged over each phase into the run's per-method
``extras``, which reports and figures pass through),
``teacher``, ``single_run`` (trains once on everything), ``needs_index`` (reads a phase's
items by index), ``uses_teacher_features`` (its loss reads the teacher's features of each
batch; False for a method whose teacher sees other data, so no cache is built),
``options`` (its own settings with defaults: the TOML section ``[NAME]``, stored in
``method_options``), and how figures draw it: ``colour`` and ``upper_bound`` (dashed).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np
import torch

from modx.errors import ConfigError

METHODS: dict[str, type] = {}


@dataclasses.dataclass(frozen=True)
class Features:
    """One micro-batch's features as :meth:`Strategy.loss` receives them: this rank's rows,
    L2-normalised, ``(B, D)``. ``img``/``txt``: the model being trained (with gradient);
    ``img_old``/``txt_old``: the method's teacher on the same rows (no gradient), None when the
    method has no teacher or declares ``uses_teacher_features = False``. ``feats["img"]``
    still reads a field, for methods written against the earlier dict."""

    img: torch.Tensor
    txt: torch.Tensor
    img_old: torch.Tensor | None = None
    txt_old: torch.Tensor | None = None

    def __getitem__(self, key: str) -> torch.Tensor:
        value = getattr(self, key, None) if key in self.__dataclass_fields__ else None
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: str) -> bool:
        return key in self.__dataclass_fields__ and getattr(self, key) is not None


class Trainer(Protocol):
    """What a method's hooks may use of the trainer (``modx.train.Trainer`` provides it).

    ``model``: the model being trained; ``device``; ``world``: processes under torchrun;
    ``phases``: the phases' data (None for a phase 0 given by ``init``);
    ``resumed_mid_phase``: this phase continues from ``last.pt``; during a phase's steps,
    ``phase_t`` (the phase), ``phase_forward(x, tokens) -> (img, txt, logit_scale)`` (the
    forward pass, synchronised under torchrun) and ``phase_teacher`` (the frozen teacher or
    None); ``named_params()``: the trainable parameters by name; ``tensors(t[, data])``: a
    phase's (or any data's) images and tokens by index; ``fisher_diagonal(t, batches)``: the
    diagonal Fisher information on phase t's data.
    """

    model: torch.nn.Module
    device: torch.device
    world: int
    phases: list
    resumed_mid_phase: bool
    phase_t: int
    phase_teacher: torch.nn.Module | None

    def phase_forward(self, x: torch.Tensor, tokens: torch.Tensor) -> Any: ...

    def named_params(self) -> Any: ...

    def tensors(self, t: int, data: Any = None) -> Any: ...

    def fisher_diagonal(self, t: int, batches: int) -> dict: ...


def register(cls):
    """Register a method class under its ``name`` (a decorator). A name already taken by
    another class is refused: a plug-in cannot silently replace a method."""
    if not getattr(cls, "name", None) or cls.name in ("base",):
        raise ConfigError(f"method class {cls.__name__} needs a name (name = \"...\")")
    old = METHODS.get(cls.name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__,
                                                                 cls.__qualname__):
        raise ConfigError(f"method name {cls.name!r} of {cls.__module__}.{cls.__qualname__} is "
                          f"taken by {old.__module__}.{old.__qualname__}; choose another name")
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
    extras_keys: tuple[str, ...] = ()  # log keys averaged over a phase into the run's extras
    teacher = "none"  # none | previous | initial
    single_run = False  # True: trains once on everything (joint), not phase by phase
    needs_index = False  # reads a phase's items by index (streamed phases cannot serve it)
    uses_teacher_features = True  # with a teacher: its loss reads the teacher's batch features
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
        """What phase t trains on (default: its own data; cumulative: the union so far)."""
        return phases[t]

    def begin_phase(self, trainer: Trainer, t: int) -> None:
        """Before phase t's first step (after a mid-phase resume too: keep what is set up)."""

    def end_phase(self, trainer: Trainer, t: int) -> None:
        """After phase t's last step, before its checkpoint is written: weight surgery here."""

    def after_step(self, trainer: Trainer, t: int, step: int) -> None:
        """After each optimizer step of phase t (running averages, buffers)."""

    def extra_batch(self, trainer: Trainer, t: int, step: int) -> np.ndarray | None:
        """Extra ``(phase, image, caption)`` index rows mixed into this step's batch (replay),
        or None."""
        return None

    def loss(self, trainer: Trainer, feats: Features) -> tuple[torch.Tensor | None, dict]:
        """A term added to the CLIP loss of each micro-batch (exact under accumulation), and
        the values to log (``log_keys``); ``(None, {})`` for none."""
        return None, {}

    def penalty(self, trainer: Trainer) -> tuple[torch.Tensor | None, dict]:
        """A term on the weights added once per step (EWC), and the values to log."""
        return None, {}

    def state_dict(self) -> dict:
        """What later phases or a resume need (saved as ``strategy.pt`` and in ``last.pt``)."""
        return {}

    def load_state_dict(self, st: dict) -> None:
        """Restore :meth:`state_dict`'s output (on ``--resume``)."""


def teacher_feats(feats: Features):
    from sdtools.dist import gather

    return gather(feats["img_old"], with_grad=False), gather(feats["txt_old"], with_grad=False)
