"""The geometry a run report records per phase, as typed records (:mod:`sdtools.records`).

:func:`sdtools.report.geometry` measures it; ``report.json`` holds it per method and phase
(``geometry[i].vs_phase0`` and ``vs_prev``). Each record reads its object key for key: a
missing, unknown or mistyped key is refused in one line naming it. Keys that a report may lack
are typed ``... | None`` and said so below; nothing else is read from a default.
"""

from __future__ import annotations

import dataclasses

from .measures.summary import Interval
from .records import Record, absent, flat

MODALITIES = ("image", "text")


@dataclasses.dataclass(frozen=True)
class SummaryIntervals(Record):
    """95% bootstrap intervals of a :class:`SummaryRecord` (written with ``ci=True``)."""

    mean_ci: Interval
    share_above_ci: dict[str, Interval]


@dataclasses.dataclass(frozen=True)
class SummaryRecord(Record):
    """A distribution's summary (:class:`sdtools.Summary`): thresholds and quantiles keyed
    as the file holds them (``"45.0"``); ``intervals``: None where it was summarised without
    bootstrap intervals (the unsync and residual angles)."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    median: float
    quantiles: dict[str, float]
    bin_edges: list[float]
    histogram: list[int]
    share_above: dict[str, float]
    intervals: SummaryIntervals | None = flat()

    @property
    def mean_ci(self) -> Interval | None:
        return self.intervals.mean_ci if self.intervals else None


@dataclasses.dataclass(frozen=True)
class SamDriftRecord(Record):
    """SAM drift (:class:`sdtools.measures.sam.SamDriftResult`); ``mean_ci`` None where it
    was estimated from sampled pairs."""

    n_samples: int
    n_pairs: int
    exact: bool
    mean: float
    std: float
    stderr: float
    median: float
    max: float
    quantiles: dict[str, float]
    bin_edges: list[float]
    histogram: list[int]
    mean_ci: Interval | None


@dataclasses.dataclass(frozen=True)
class ProcrustesIntervals(Record):
    """Bootstrap intervals of the Procrustes shares: ``explained_heldout_ci`` and
    ``rigidity_ci`` None where those values are withheld."""

    explained_ci: Interval
    rigidity_ci: Interval | None
    explained_heldout_ci: Interval | None
    ci_groups: int


@dataclasses.dataclass(frozen=True)
class ProcrustesRecord(Record):
    """The Procrustes fit (:class:`sdtools.measures.procrustes.ProcrustesResult`):
    ``explained_heldout`` and ``rigidity`` None where withheld (below the precision floor, a
    collapsed space); ``intervals`` None without bootstrap intervals; ``residual`` None
    without per-sample residuals."""

    det: float
    reflection: bool
    centered: bool
    rank: int
    n: int
    angles_deg: list[float]
    max_angle: float
    mean_angle: float
    rms_angle: float
    geodesic_deg: float
    explained: float
    explained_heldout: float | None
    null_heldout: float
    rigidity: float | None
    folds: int
    warnings: list[str]
    precision: str
    precision_floor_deg: float
    intervals: ProcrustesIntervals | None = flat()
    residual: SummaryRecord | None = absent()

    @property
    def heldout_gain(self) -> float | None:
        """``explained_heldout`` over its jitter null; None where it is withheld."""
        return None if self.explained_heldout is None else (self.explained_heldout
                                                            - self.null_heldout)

    @property
    def explained_heldout_ci(self) -> Interval | None:
        return self.intervals.explained_heldout_ci if self.intervals else None

    @property
    def rigidity_ci(self) -> Interval | None:
        return self.intervals.rigidity_ci if self.intervals else None


@dataclasses.dataclass(frozen=True)
class TopologyRankReading(Record):
    """The rank reading of topology_kept and its counts (absent from reports written before
    it); ``n_items`` and ``warnings`` absent from reports written before repeated items were
    counted once."""

    metric_kept: float | None
    rank_corr: float
    rank_corr_null: float
    n_moved: int
    groups: int
    n_items: int | None = absent()
    warnings: list[str] | None = absent()


@dataclasses.dataclass(frozen=True)
class TopologyRecord(Record):
    """The paper's criterion against its null (:class:`sdtools.measures.topology.
    TopologyResult`); ``topology_kept`` None where nothing moved beyond rounding."""

    drift: float
    null: float
    topology_kept: float | None
    n_pairs: int
    exact: bool
    seed: int
    rank_reading: TopologyRankReading | None = flat()


@dataclasses.dataclass(frozen=True)
class ModalityGeometry(Record):
    """Every intra-modal measure of one modality (:class:`sdtools.report.ModalityRotation`);
    ``linear_cka`` None where it is undefined (a collapsed space)."""

    n: int
    rad: SummaryRecord
    sam_drift: SamDriftRecord
    procrustes: ProcrustesRecord
    topology: TopologyRecord
    linear_cka: float | None
    mutual_knn: float
    knn_k: int
    knn_n: int


@dataclasses.dataclass(frozen=True)
class NullRange(Record):
    """A null's mean over halvings and its range."""

    value: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class NullRanges(Record):
    """Per relative angle: the null's mean over halvings and its range."""

    value: list[float]
    low: list[float]
    high: list[float]


@dataclasses.dataclass(frozen=True)
class CrossNullRecord(Record):
    """The in-step null of the cross-applied residual (:func:`sdtools.measures.crossnull.
    cross_null`); ``relative_angles`` absent with fewer than two shared directions, and with
    ``tolerance`` from reports written before either was recorded."""

    text_by_image: NullRange
    image_by_text: NullRange
    mean: NullRange
    splits: int
    groups: int
    tolerance: float | None = absent()
    relative_angles: NullRanges | None = absent()


@dataclasses.dataclass(frozen=True)
class Excess(Record):
    """The cross-applied residual over its in-step null (where both are there)."""

    excess: float
    above_null: bool


@dataclasses.dataclass(frozen=True)
class CrossResidual(Record):
    """The cross-applied residual: per direction and their mean, None where withheld
    (``withheld`` says why, absent otherwise); ``null`` None where the probe is too small for
    it; ``over_null`` None where the mean or the null is None."""

    text_by_image: float | None
    image_by_text: float | None
    mean: float | None
    null: CrossNullRecord | None
    withheld: str | None = absent()
    over_null: Excess | None = flat()


@dataclasses.dataclass(frozen=True)
class RelativeNull(Record):
    """Each relative angle beside its in-step null (where the null has angles)."""

    null_angles_deg: list[float]
    null_high_deg: list[float]
    above_null: list[bool]
    max_above_null: bool


@dataclasses.dataclass(frozen=True)
class RelativeRotation(Record):
    """Principal angles of ``R_V^T R_T`` in the shared determined subspace."""

    angles_deg: list[float]
    max_angle: float
    mean_angle: float
    geodesic_deg: float
    reflection: bool
    rank: int
    against_null: RelativeNull | None = flat()


@dataclasses.dataclass(frozen=True)
class Top1Changes(Record):
    lost: int
    gained: int
    kept: int
    queries: int


@dataclasses.dataclass(frozen=True)
class Top1(Record):
    """Top-1 hits lost, gained and kept per direction."""

    t2i: Top1Changes
    i2t: Top1Changes


@dataclasses.dataclass(frozen=True)
class DeviationGeometry(Record):
    """The inter-modal deviation (:meth:`sdtools.measures.intermodal.DeviationResult.
    to_dict`, the keys a report keeps)."""

    pos_shift: SummaryRecord
    unsync: SummaryRecord
    unsync_abs_mean: float
    unsync_abs_mean_ci: Interval
    relative_rotation: RelativeRotation
    cross_residual: CrossResidual
    top1: Top1
    modality_gap_a: float
    modality_gap_b: float
    pos_sim_a_mean: float
    pos_sim_b_mean: float


DEVIATION_KEYS = tuple(f.name for f in dataclasses.fields(DeviationGeometry))


@dataclasses.dataclass(frozen=True)
class SetGeometry(Record):
    """Both modalities' rotation measures and the inter-modal deviation on one probe."""

    image: ModalityGeometry
    text: ModalityGeometry
    deviation: DeviationGeometry

    def modality(self, mod: str) -> ModalityGeometry:
        """``image`` or ``text``."""
        if mod not in MODALITIES:
            raise ValueError(f"modality must be image or text, got {mod!r}")
        return self.image if mod == "image" else self.text


@dataclasses.dataclass(frozen=True)
class Geometry(SetGeometry):
    """The pooled probe's geometry, with ``per_set``: {evaluation set: its geometry} (None
    where the probe has no sets) and ``per_set_skipped``: {set: why it was not measured}
    (None where every set was)."""

    per_set: dict[str, SetGeometry] | None = absent()
    per_set_skipped: dict[str, str] | None = absent()

    def of_set(self, name: str) -> SetGeometry:
        """The named set's geometry, or the pooled one where the report has no such set."""
        return (self.per_set or {}).get(name, self)


__all__ = ["DEVIATION_KEYS", "DeviationGeometry", "Geometry", "ModalityGeometry",
           "ProcrustesRecord", "SetGeometry", "SummaryRecord", "TopologyRecord"]
