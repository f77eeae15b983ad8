"""LwF-style distillation of the old model's full contrastive distributions."""

from __future__ import annotations

from sdtools.dist import gather

from ..losses import lwf_distillation
from .base import Strategy, register, teacher_feats


@register
class LwF(Strategy):
    """LwF-style: distil the old model's full contrastive distributions (no selection)."""

    name = "lwf"
    colour = "#2ca02c"
    knob = "lwf_weight"
    log_keys = ("distill",)
    teacher = "previous"

    def loss(self, trainer, feats):
        io, to = teacher_feats(feats)
        term = lwf_distillation(gather(feats["img"]), gather(feats["txt"]), io, to,
                                temperature=self.cfg.lwf_temperature, reduction=self.cfg.reduction)
        return self.cfg.lwf_weight * term, {"distill": float(term.detach())}
