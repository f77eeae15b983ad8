"""Mod-X: the CLIP loss plus alignment to the old model's rows it retrieved correctly."""

from __future__ import annotations

from sdtools.dist import gather

from ..losses import modx_alignment_stats
from .base import Strategy, register, teacher_feats


@register
class ModX(Strategy):
    """Mod-X: CLIP loss + alpha * alignment to the old model's rows it retrieved correctly."""

    name = "modx"
    colour = "#1f77b4"
    knob = "alpha"
    log_keys = ("align", "selected_share")
    extras_keys = ("selected_share",)
    teacher = "previous"

    def loss(self, trainer, feats):
        io, to = teacher_feats(feats)
        term, share = modx_alignment_stats(
            gather(feats["img"]), gather(feats["txt"]), io, to,
            temperature=self.cfg.temperature, exclude_diagonal=self.cfg.exclude_diagonal,
            reduction=self.cfg.reduction,
        )
        return self.cfg.alpha * term, {"align": float(term.detach()), "selected_share": share}
