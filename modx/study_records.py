"""A study's rows as typed records (:mod:`sdtools.records`): one :class:`CellResult` per cell
of ``study.json``'s ``cells``, read and written key for key.

Values a cell may legitimately lack are typed ``... | None`` and say when; nothing is read
from a default (a missing key is refused in one line naming it).
"""

from __future__ import annotations

import dataclasses

from sdtools.records import Record, flat

MODALITIES = ("image", "text")


@dataclasses.dataclass(frozen=True)
class CellGeometry(Record):
    """The geometry of a cell's last phase against phase 0 on the old-domain probe.

    ``rigidity_*`` and ``heldout_gain_*`` (the held-out share over its jitter null) are None
    where the report withheld them (a change below the precision floor, a collapsed space);
    never averaged as 0. ``topology_kept_*`` None where nothing moved beyond rounding;
    ``cross_residual`` None where withheld, ``cross_excess`` (over its in-step null) None
    where the residual or its null is missing."""

    rigidity_image: float | None
    heldout_gain_image: float | None
    topology_kept_image: float | None
    rigidity_text: float | None
    heldout_gain_text: float | None
    topology_kept_text: float | None
    cross_residual: float | None
    cross_excess: float | None
    relative_max_angle: float

    def rigidity(self, mod: str) -> float | None:
        return self.rigidity_image if mod == "image" else self.rigidity_text

    def topology_kept(self, mod: str) -> float | None:
        return self.topology_kept_image if mod == "image" else self.topology_kept_text


@dataclasses.dataclass(frozen=True)
class CellMetrics(Record):
    """A cell's numbers (:func:`modx.study_stats.cell_metrics`): ``phase0_r1`` per set after
    phase 0 (None where a set does not carry the metric); ``learning`` None where no set
    after the old domain carries the metric (nothing to read learning from; such a cell is
    "no data" against a trade-off curve, never a learning of 0); ``geometry`` None where the
    run has no phase after phase 0."""

    phase0_r1: list[float | None]
    retention: float
    learning: float | None
    final_avg: float
    max_drop: float
    area_old: float
    geometry: CellGeometry | None = flat()

    def stability(self, measure: str) -> float:
        """The stability measure (higher is better): ``retention``, ``max_drop`` (minus the
        largest drop) or ``area_old``."""
        if measure == "retention":
            return self.retention
        if measure == "max_drop":
            return -self.max_drop
        if measure == "area_old":
            return self.area_old
        raise ValueError(f"unknown stability measure {measure!r}")


@dataclasses.dataclass(frozen=True)
class CellResult(Record):
    """One row of ``study.json``'s ``cells``: the cell (index, seed, method, knob ``value``,
    None for a method without a knob, and its folder ``name``) and its metrics."""

    cell: int
    seed: int
    method: str
    value: float | None
    name: str
    metrics: CellMetrics = flat()


__all__ = ["CellGeometry", "CellMetrics", "CellResult"]
