"""Continual-learning strategies: each a small object with hooks the trainer calls.

Hooks: ``phase_data`` (what to train on), ``begin_phase`` / ``end_phase``, ``loss`` (an extra
term on the batch's features, on top of the CLIP loss), ``penalty`` (an extra term on the
weights, added once per step), ``extra_batch`` (pairs mixed into a batch) and ``state_dict`` /
``load_state_dict`` for resuming. Select one by name with :func:`make`.
"""

from __future__ import annotations

import numpy as np
import torch

from sdtools.data.base import ConcatData
from sdtools.dist import gather
from sdtools.errors import ConfigError

from .data import ReplayBuffer
from .losses import lwf_distillation, modx_alignment_stats, rkd_angle, rkd_distance


class Strategy:
    name = "base"
    needs_teacher = False
    single_run = False  # True: trains once on everything (joint), not phase by phase

    def __init__(self, cfg):
        self.cfg = cfg

    def phase_data(self, t: int, phases: list):
        return phases[t]

    def begin_phase(self, trainer, t: int) -> None:
        pass

    def end_phase(self, trainer, t: int) -> None:
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


class Finetune(Strategy):
    """CLIP_ft: plain sequential fine-tuning with the symmetric CLIP loss."""

    name = "finetune"


class Cumulative(Strategy):
    """Continue at each phase t on the union of phases 0..t (a replay of everything)."""

    name = "cumulative"

    def phase_data(self, t, phases):
        seen = [p for p in phases[: t + 1] if p is not None]
        return seen[0] if len(seen) == 1 else ConcatData(seen)


class Joint(Cumulative):
    """CLIP_jt, the paper's upper bound: one model trained from the phase-0 initialisation
    (random, or ``init``) on the union of all phases, base data included, with the whole
    budget (phase-0 steps plus every phase's). The run reports it as its single phase 1."""

    name = "joint"
    single_run = True

    def phase_data(self, t, phases):
        return super().phase_data(len(phases) - 1, phases)


def _teacher_feats(feats):
    return gather(feats["img_old"], with_grad=False), gather(feats["txt_old"], with_grad=False)


class ModX(Strategy):
    """Mod-X: CLIP loss + alpha * alignment to the old model's rows it retrieved correctly."""

    name = "modx"
    needs_teacher = True

    def loss(self, trainer, feats):
        io, to = _teacher_feats(feats)
        term, share = modx_alignment_stats(
            gather(feats["img"]), gather(feats["txt"]), io, to,
            temperature=self.cfg.temperature, exclude_diagonal=self.cfg.exclude_diagonal,
            reduction=self.cfg.reduction,
        )
        return self.cfg.alpha * term, {"align": float(term.detach()), "selected_share": share}


class LwF(Strategy):
    """LwF-style: distil the old model's full contrastive distributions (no selection)."""

    name = "lwf"
    needs_teacher = True

    def loss(self, trainer, feats):
        io, to = _teacher_feats(feats)
        term = lwf_distillation(gather(feats["img"]), gather(feats["txt"]), io, to,
                                temperature=self.cfg.temperature, reduction=self.cfg.reduction)
        return self.cfg.lwf_weight * term, {"distill": float(term.detach())}


class RKD(Strategy):
    """Relational KD: keep intra-modal distances and angles of the old model (both towers)."""

    name = "rkd"
    needs_teacher = True

    def loss(self, trainer, feats):
        io, to = _teacher_feats(feats)
        img, txt = gather(feats["img"]), gather(feats["txt"])
        term = (rkd_distance(img, io) + 2.0 * rkd_angle(img, io)
                + rkd_distance(txt, to) + 2.0 * rkd_angle(txt, to))
        return self.cfg.rkd_weight * term, {"rkd": float(term.detach())}


class EWC(Strategy):
    """EWC: quadratic penalty weighted by the diagonal Fisher of the previous phases.

    The Fisher is the empirical one: the mean over pairs of the squared gradient of each
    pair's own contrastive loss term (see :mod:`modx.train.fisher`), so its scale does not
    depend on the batch size and ``ewc_lambda`` keeps its meaning across settings. At the
    start of phase t the Fisher of the starting model on phase t-1's data is added to the
    running sum and the anchor moves to the starting weights, so the penalty is zero at the
    start of every phase and grows as the weights move.
    """

    name = "ewc"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def begin_phase(self, trainer, t):
        if t == 0 or (self.anchor and trainer.resumed_mid_phase):
            return
        if trainer.phases[t - 1] is None:  # phase 0 is a given model (init): no data for it
            self.anchor = {k: p.detach().clone() for k, p in trainer.named_params()}
            return
        fisher = trainer.fisher_diagonal(t - 1, self.cfg.ewc_batches)
        for k, v in fisher.items():
            self.fisher[k] = self.fisher.get(k, torch.zeros_like(v)) + v
        self.anchor = {k: p.detach().clone() for k, p in trainer.named_params()}

    def quadratic(self, trainer) -> torch.Tensor:
        """``sum_k F_k (w_k - w*_k)^2`` over the parameters."""
        total = None
        for k, p in trainer.named_params():
            if k in self.fisher:
                term = (self.fisher[k] * (p - self.anchor[k]) ** 2).sum()
                total = term if total is None else total + term
        return total if total is not None else torch.zeros(())

    def penalty(self, trainer):
        if not self.fisher:
            return None, {}
        pen = self.quadratic(trainer)
        return 0.5 * self.cfg.ewc_lambda * pen, {"ewc": float(pen.detach())}

    def state_dict(self):
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, st):
        self.fisher = dict(st.get("fisher", {}))
        self.anchor = dict(st.get("anchor", {}))


class Replay(Strategy):
    """Experience replay: a reservoir buffer of past pairs, mixed into every batch."""

    name = "replay"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.buffer = ReplayBuffer(cfg.replay_size, seed=cfg.seed)
        self.offered: list[int] = []

    def begin_phase(self, trainer, t):
        # offer every earlier phase not offered yet (phase 0 is trained before this object
        # exists when methods share a phase-0 model); one pair per image, its first caption
        while len(self.offered) < t:
            p = len(self.offered)
            self.offered.append(p)
            if trainer.phases[p] is None:  # phase 0 is a given model (init): nothing to replay
                continue
            pt = trainer.tensors(p)
            caps = np.array([pt.caps_of[i][0] for i in range(pt.data.n_images)])
            self.buffer.add(p, np.arange(pt.data.n_images), caps)

    def extra_batch(self, trainer, t, step):
        # a multiple of the process count, so that every rank gets the same number of rows
        k = int(round(self.cfg.replay_fraction * self.cfg.batch_size))
        return self.buffer.sample(k - k % trainer.world, (t, step))

    def state_dict(self):
        return {"buffer": self.buffer.state_dict(), "offered": list(self.offered)}

    def load_state_dict(self, st):
        self.buffer.load_state_dict(st["buffer"])
        self.offered = [int(x) for x in st["offered"]]


STRATEGIES = {c.name: c for c in (Finetune, Joint, Cumulative, ModX, LwF, RKD, EWC, Replay)}


def make(name: str, cfg) -> Strategy:
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](cfg)
