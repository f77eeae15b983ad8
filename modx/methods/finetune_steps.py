"""Fine-tuning swept along a second axis: steps per phase at the plan's learning rate.

The same training as ``finetune``; a study sweeps its steps instead of its learning rate, and
its points join fine-tuning's trade-off curve (:mod:`modx.study_stats`): fewer or more steps
reach learning levels that learning rates do not (on ``shift`` fine-tuning's learning
saturates in the rate; on ``domains`` slower rates do not give lower-learning,
higher-retention points)."""

from __future__ import annotations

from .base import register
from .finetune import Finetune


@register
class FinetuneSteps(Finetune):
    """Fine-tuning, swept over steps per phase: a second axis of fine-tuning's curve."""

    name = "finetune_steps"
    colour = "#ff9896"
    knob = "steps"
