"""WiSE-FT: each phase's fine-tuned weights interpolated with the phase's starting weights."""

from __future__ import annotations

import torch

from modx.errors import ConfigError

from .base import Strategy, register


@register
class WiSEFT(Strategy):
    """Fine-tune the phase, then replace the weights by ``(1 - ratio) w_start + ratio w_ft``
    (Wortsman et al. 2022, applied at every phase): ratio 1 is fine-tuning, 0 keeps the
    previous phase's model. The interpolation is end-of-phase weight surgery, done before the
    phase's checkpoint is written; ``logit_scale`` is interpolated like every weight."""

    name = "wiseft"
    colour = "#17becf"
    knob = "ratio"
    options = {"ratio": 0.5}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.start: dict[str, torch.Tensor] = {}

    @classmethod
    def check_options(cls, opts):
        r = opts.get("ratio", cls.options["ratio"])
        if not 0.0 <= r <= 1.0:
            raise ConfigError(f"[wiseft] ratio must be in [0, 1], got {r}")

    def begin_phase(self, trainer, t):
        if self.start and trainer.resumed_mid_phase:
            return  # the start of this phase, restored from last.pt
        self.start = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    def end_phase(self, trainer, t):
        r = float(self.option("ratio"))
        with torch.no_grad():
            for k, v in trainer.model.state_dict().items():
                if v.is_floating_point():
                    v.copy_((1.0 - r) * self.start[k] + r * v)

    def state_dict(self):
        return {"start": self.start}

    def load_state_dict(self, st):
        self.start = dict(st.get("start", {}))
