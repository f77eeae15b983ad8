"""Model averaging: an exponential moving average of the weights along the steps."""

from __future__ import annotations

import torch

from modx.errors import ConfigError

from .base import Strategy, register


@register
class EMA(Strategy):
    """Fine-tune while keeping ``w_ema <- decay w_ema + (1 - decay) w`` after every step; the
    average, carried across phases, becomes the phase's model at its end (before the
    checkpoint is written), so each phase continues from the average. ``decay`` near 1
    averages over more steps, keeping more of the past."""

    name = "ema"
    colour = "#bcbd22"
    knob = "decay"
    options = {"decay": 0.99}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.avg: dict[str, torch.Tensor] = {}

    @classmethod
    def check_options(cls, opts):
        d = opts.get("decay", cls.options["decay"])
        if not 0.0 <= d < 1.0:
            raise ConfigError(f"[ema] decay must be in [0, 1), got {d}")

    def begin_phase(self, trainer, t):
        if not self.avg:  # the average starts at the first phase's starting weights
            self.avg = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()
                        if v.is_floating_point()}

    def after_step(self, trainer, t, step):
        d = float(self.option("decay"))
        with torch.no_grad():
            for k, v in trainer.model.state_dict().items():
                if k in self.avg:
                    self.avg[k].mul_(d).add_(v, alpha=1.0 - d)

    def end_phase(self, trainer, t):
        with torch.no_grad():
            for k, v in trainer.model.state_dict().items():
                if k in self.avg:
                    v.copy_(self.avg[k])

    def state_dict(self):
        return {"avg": self.avg}

    def load_state_dict(self, st):
        self.avg = dict(st.get("avg", {}))
