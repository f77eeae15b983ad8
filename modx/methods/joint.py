"""CLIP_jt, the paper's upper bound: one model on all the data with the whole budget."""

from __future__ import annotations

from .base import register
from .cumulative import Cumulative


@register
class Joint(Cumulative):
    """CLIP_jt, the paper's upper bound: one model trained from the phase-0 initialisation
    (random, or ``init``) on the union of all phases, base data included, with the whole
    budget (phase-0 steps plus every phase's). The run reports it as its single phase 1."""

    name = "joint"
    needs_index = True
    colour = "#7f7f7f"
    upper_bound = True  # trained on everything: drawn dashed
    single_run = True

    def phase_data(self, t, phases):
        return super().phase_data(len(phases) - 1, phases)
