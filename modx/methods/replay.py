"""Experience replay: a reservoir buffer of past pairs mixed into every batch."""

from __future__ import annotations

import numpy as np

from ..data import ReplayBuffer
from .base import Strategy, register


@register
class Replay(Strategy):
    """Experience replay: a reservoir buffer of past pairs, mixed into every batch."""

    name = "replay"
    needs_index = True
    colour = "#ff7f0e"
    knob = "replay_size"

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
