"""EWC: a quadratic penalty weighted by the diagonal Fisher of the previous phases."""

from __future__ import annotations

import torch

from .base import Strategy, register


@register
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
    needs_index = True
    colour = "#8c564b"
    knob = "ewc_lambda"
    log_keys = ("ewc",)

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
