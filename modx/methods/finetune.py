"""CLIP_ft: plain sequential fine-tuning with the symmetric CLIP loss."""

from __future__ import annotations

from .base import Strategy, register


@register
class Finetune(Strategy):
    """CLIP_ft: plain sequential fine-tuning with the symmetric CLIP loss."""

    name = "finetune"
    colour = "#d62728"
    knob = "lr"
