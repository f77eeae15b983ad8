"""A study's rows as typed records (:mod:`sdtools.records`): one :class:`CellResult` per cell
of ``study.json``'s ``cells``, read and written key for key.

Values a cell may legitimately lack are typed ``... | None`` and say when; nothing is read
from a default (a missing key is refused in one line naming it).
"""

from __future__ import annotations

import dataclasses

from sdtools.records import Record, absent, flat, spec

MODALITIES = ("image", "text")
CELL_RECORD = "cell.json"  # a finished cell's row kept without its run (modx.study_archive)


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
    phase 0 (None where a set does not carry the metric; the key is absent, None, from studies
    written before it was recorded, as ``area_old`` is); ``learning`` None where no set
    after the old domain carries the metric (nothing to read learning from; such a cell is
    "no data" against a trade-off curve, never a learning of 0); ``geometry`` None where the
    run has no phase after phase 0."""

    phase0_r1: list[float | None] | None = absent()
    retention: float = spec()
    learning: float | None = spec()
    final_avg: float = spec()
    max_drop: float = spec()
    area_old: float | None = absent()
    geometry: CellGeometry | None = flat()

    def stability(self, measure: str) -> float | None:
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
    None for a method without a knob, and its folder ``name``, absent, None, from studies
    written before it was recorded) and its metrics."""

    cell: int
    seed: int
    method: str
    value: float | None
    name: str | None = absent()
    metrics: CellMetrics = flat()


def cell_record(row: CellResult, tag: str, environment: dict | None = None) -> dict:
    """A cell's compact record (``cell.json``): its row, tagged ``kind: cell``, with the
    environment its run was trained in where known."""
    return {"written_by": tag, "kind": "cell",
            **({"environment": environment} if environment else {}), **row.to_dict()}


def read_cell_record(obj, where: str) -> CellResult:
    """The row of a ``cell.json`` object (its tag checked by the caller)."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return CellResult.from_dict({k: v for k, v in obj.items()
                                 if k not in ("written_by", "kind", "environment")}, where)


@dataclasses.dataclass(frozen=True)
class TInterval(Record):
    """Mean and two-sided t interval over seeds (:func:`modx.frontier.t_interval`): ``mean``
    None with no value, ``ci`` None with fewer than two values or no spread."""

    mean: float | None
    ci: list[float] | None
    n_seeds: int


@dataclasses.dataclass(frozen=True)
class BoundTest(TInterval):
    """A bound's t interval over seeds with its one-sided p values (None without spread)
    and the seeds that have no such bound (``missing``)."""

    p: float | None
    p_sign_flip: float | None
    missing: list[str]


@dataclasses.dataclass(frozen=True)
class PairedRow(Record):
    """One row of ``study.json``'s ``paired``: a method and knob value (None for a method
    without one) minus fine-tuning at the reference, per seed, on ``metric``."""

    method: str
    knob: float | None
    metric: str
    diff: TInterval = flat()


@dataclasses.dataclass(frozen=True)
class Classes(Record):
    """Seeds per class against the baseline's points."""

    matched: int
    dominating: int
    dominated: int
    incomparable: int


@dataclasses.dataclass(frozen=True)
class SeedClass(Record):
    """One seed against the baseline's points (:func:`modx.frontier.classify`): ``learning``
    and ``stability`` None with no data; ``below``/``lower`` None where the method learns
    less than every point, ``above``/``upper`` None where it learns more; ``gap`` (the chord)
    None outside the baseline's learning range."""

    class_: str = spec(key="class")
    learning: float | None = spec()
    stability: float | None = spec()
    below: list[float] | None = spec()
    above: list[float] | None = spec()
    lower: float | None = spec()
    upper: float | None = spec()
    gap: float | None = spec()


@dataclasses.dataclass(frozen=True)
class FrontierGap(Record):
    """A method and knob value against the baseline's points, per seed and over seeds
    (:func:`modx.frontier.frontier_gap`)."""

    n_total: int
    classes: Classes
    lower: BoundTest
    upper: BoundTest
    chord: TInterval
    per_seed: dict[str, SeedClass]


@dataclasses.dataclass(frozen=True)
class FrontierRow(Record):
    """One row of ``study.json``'s ``frontier``: ``knob`` None for a method without one."""

    method: str
    knob: float | None
    against: str
    measure: str
    gap: FrontierGap = flat()


@dataclasses.dataclass(frozen=True)
class IntervalClaim(Record):
    """A claim read from one interval over seeds (claims (a) and (c))."""

    claim: str
    statistic: str
    mean: float | None
    ci: list[float] | None
    n_seeds: int
    verdict: str


@dataclasses.dataclass(frozen=True)
class RotationClaim(Record):
    """Claim (b): rigidity and topology_kept per modality against their nulls."""

    claim: str
    statistic: str
    rigidity_image: TInterval
    rigidity_text: TInterval
    topology_kept_image: TInterval
    topology_kept_text: TInterval
    mostly_rotation: str
    verdict: str


@dataclasses.dataclass(frozen=True)
class MeasureVerdict(Record):
    """A frontier claim on one stability measure: ``value`` (the best knob value) None where
    no planned value was tested; ``reason`` None unless inconclusive."""

    verdict: str
    value: float | None
    lower: BoundTest
    classes: Classes
    holm_p: dict[str, float]
    reason: str | None


@dataclasses.dataclass(frozen=True)
class JointAbove(Record):
    """Joint training against both (paired final average), where the plan has joint."""

    joint_minus_modx_final_avg: TInterval
    joint_minus_finetune_final_avg: TInterval
    joint_above_both: str


@dataclasses.dataclass(frozen=True)
class FrontierClaim(Record):
    """Claims (d) and (e): a method against a baseline's trade-off curve
    (:func:`modx.frontier.frontier_verdict`), on retention with ``by_measure`` beside it;
    ``best`` and ``value`` None where no value was tested, ``reason`` None unless
    inconclusive; ``joint`` None where the plan has no joint training or no best value."""

    claim: str
    measure: str
    statistic: str
    verdict: str
    best: str | None
    holm_p: dict[str, float]
    family: list[str]
    alpha: float
    reason: str | None
    value: float | None
    against: str
    lower: BoundTest
    classes: Classes
    by_value: dict[str, FrontierGap]
    by_measure: dict[str, MeasureVerdict]
    joint: JointAbove | None = flat()


@dataclasses.dataclass(frozen=True)
class Claims(Record):
    """``study.json``'s ``claims``: (d) absent where the plan has no modx, (e) absent where it
    has no modx or no lwf."""

    a_finetune_forgets: IntervalClaim
    b_rotation_like: RotationClaim
    c_out_of_step: IntervalClaim
    d_modx_vs_finetune: FrontierClaim | None = absent()
    e_modx_vs_lwf: FrontierClaim | None = absent()

    def all(self) -> list[IntervalClaim | RotationClaim | FrontierClaim]:
        """The claims there, in order."""
        return [c for c in (self.a_finetune_forgets, self.b_rotation_like, self.c_out_of_step,
                            self.d_modx_vs_finetune, self.e_modx_vs_lwf) if c is not None]


__all__ = ["BoundTest", "CellGeometry", "CellMetrics", "CellResult", "Claims", "FrontierClaim",
           "FrontierGap", "FrontierRow", "IntervalClaim", "PairedRow", "RotationClaim", "SeedClass",
           "TInterval"]
