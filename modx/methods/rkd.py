"""Relational knowledge distillation: intra-modal distances and angles of the old model."""

from __future__ import annotations

from sdtools.dist import gather

from ..losses import rkd_angle, rkd_distance
from .base import Strategy, register, teacher_feats


@register
class RKD(Strategy):
    """Relational KD: keep intra-modal distances and angles of the old model (both towers)."""

    name = "rkd"
    colour = "#9467bd"
    knob = "rkd_weight"
    log_keys = ("rkd",)
    teacher = "previous"

    def loss(self, trainer, feats):
        io, to = teacher_feats(feats)
        img, txt = gather(feats["img"]), gather(feats["txt"])
        term = (rkd_distance(img, io) + 2.0 * rkd_angle(img, io)
                + rkd_distance(txt, to) + 2.0 * rkd_angle(txt, to))
        return self.cfg.rkd_weight * term, {"rkd": float(term.detach())}
