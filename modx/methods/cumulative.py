"""Continue at each phase on the union of everything seen so far."""

from __future__ import annotations

from sdtools.data.base import ConcatData

from .base import Strategy, register


@register
class Cumulative(Strategy):
    """Continue at each phase t on the union of phases 0..t (a replay of everything)."""

    name = "cumulative"
    needs_index = True
    colour = "#bababa"
    upper_bound = True  # trained on everything: drawn dashed

    def phase_data(self, t, phases):
        seen = [p for p in phases[: t + 1] if p is not None]
        return seen[0] if len(seen) == 1 else ConcatData(seen)
