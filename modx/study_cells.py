"""A study's cells as rows: each finished cell's metrics from its run report (checked to be
the cell's) or, where the run is not there, from its compact record (``cell.json``,
:mod:`modx.study_archive`). The metrics are defined in :mod:`modx.study_stats`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from modx.errors import ConfigError
from sdtools.run_report import RunReport
from sdtools.runs import RunDir

from .study_records import (
    CELL_RECORD,
    MODALITIES,
    CellGeometry,
    CellMetrics,
    CellResult,
    read_cell_record,
)


def metric_matrix(rep, metric: str = "r1") -> np.ndarray:
    """The (phase x evaluation set) matrix a study reads: ``r1`` or ``zero_shot:TASK`` (NaN
    where a set does not carry the task); set 0, the old domain, must carry it."""
    if metric == "r1":
        return np.asarray(rep.r1, dtype=np.float64)
    task = metric.removeprefix("zero_shot:")
    if task not in rep.zero_shot:
        raise ConfigError(f"metric {metric}: the run has no zero-shot task {task!r} (it has "
                          f"{', '.join(sorted(rep.zero_shot)) or 'none'}); give one of its "
                          "labelled tasks or metric = \"r1\"")
    m = np.asarray([[np.nan if x is None else x for x in row] for row in rep.zero_shot[task]],
                   dtype=np.float64)
    if np.isnan(m[:, 0]).any():
        raise ConfigError(f"metric {metric}: the first evaluation set ({rep.sets[0]}), the old "
                          "domain, carries no such labels; put a set with them first")
    return m


def cell_metrics(report: RunReport, method: str, metric: str = "r1") -> CellMetrics:
    """A cell's numbers from its run report, read on ``metric`` (:func:`metric_matrix`):
    old-domain retention, new-domain learning (over the sets carrying the metric), final
    average, the old domain's largest drop, phase 0's row, and the geometry of the last phase
    against phase 0 on the old-domain probe (pooled where the report has no per-set
    geometry)."""
    rep = report.methods[method]
    r = metric_matrix(rep, metric)
    last = r.shape[0] - 1
    square = r.shape[0] == r.shape[1]
    new = range(1, r.shape[1])
    if square:
        gains = [r[k, k] - r[0, k] for k in new]
    else:
        gains = list(r[last, 1:] - r[0, 1:])
    gains = [g for g in gains if not np.isnan(g)]
    geometry = None
    if rep.geometry:
        old = rep.geometry[-1].vs_phase0.of_set(rep.sets[0])
        pro = {mod: old.modality(mod).procrustes for mod in MODALITIES}
        top = {mod: old.modality(mod).topology.topology_kept for mod in MODALITIES}
        cross = old.deviation.cross_residual
        geometry = CellGeometry(
            rigidity_image=pro["image"].rigidity, heldout_gain_image=pro["image"].heldout_gain,
            topology_kept_image=top["image"], rigidity_text=pro["text"].rigidity,
            heldout_gain_text=pro["text"].heldout_gain, topology_kept_text=top["text"],
            cross_residual=cross.mean,
            cross_excess=cross.over_null.excess if cross.over_null else None,
            relative_max_angle=old.deviation.relative_rotation.max_angle)
    return CellMetrics(
        phase0_r1=[None if np.isnan(x) else float(x) for x in r[0]],  # after phase 0
        retention=float(r[last, 0] - r[0, 0]),
        learning=float(np.mean(gains)) if gains else None,  # no set after the old carries it
        final_avg=float(np.nanmean(r[last])),
        max_drop=float(np.max(r[0, 0] - r[:, 0])),
        area_old=float(np.mean(r[1:, 0] - r[0, 0])) if last > 0 else 0.0,
        geometry=geometry)


def _collect(plan, out: Path, partial: bool = False) -> list[CellResult]:
    metric = getattr(plan, "metric", "r1")
    rows = []
    for c in plan.cells():
        path = RunDir(c.run_dir(out)).report_path
        kept = c.run_dir(out) / CELL_RECORD  # read where the run itself is not there
        if partial and not c.done(out):
            continue
        recorded = not path.is_file() and kept.is_file()
        where = f"cell {c.index} ({c.run_dir(out)}): its {(kept if recorded else path).name}"
        redo = "delete that cell's folder and run the study again to redo it"
        try:
            if recorded:
                metrics = _recorded(kept, c, where, redo)
            else:
                report = RunReport.read(path)
                _check_cell(plan, c, out, report, where, redo)
                metrics = cell_metrics(report, c.method, metric)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{where} is damaged ({type(exc).__name__}: {exc}); {redo}") \
                from None
        rows.append(CellResult(c.index, c.seed, c.method, c.value, c.name, metrics))
    _same_phase0(rows)
    return rows


def _recorded(path: Path, c, where: str, redo: str) -> CellMetrics:
    """A cell's metrics from its compact record: the record must be the cell's."""
    from sdtools.io import written_by_us

    if not written_by_us(path, "cell"):
        raise ConfigError(f"{where} is not a cell record sdtools wrote; {redo}")
    from sdtools.records import RecordError

    try:
        row = read_cell_record(json.loads(path.read_text()), where)
    except RecordError as exc:
        raise ConfigError(f"{exc} (damaged); {redo}") from None
    if (row.seed, row.method, row.value) != (c.seed, c.method, c.value):
        raise ConfigError(f"{where} records another cell (seed {row.seed}, {row.method} "
                          f"{row.value}); {redo}")
    return row.metrics


def _same_phase0(rows: list[CellResult]) -> None:
    """The cells of a seed start from one phase-0 model: their rows after phase 0 agree (a
    study resumed elsewhere retrains a seed's phase 0; were it to differ, pairs would not be
    paired)."""
    for seed in sorted({r.seed for r in rows}):
        got: dict[tuple, list[str]] = {}
        for r in rows:
            if r.seed == seed and r.metrics.phase0_r1 is not None:
                key = tuple(None if x is None else round(x, 6) for x in r.metrics.phase0_r1)
                got.setdefault(key, []).append(r.name or str(r.cell))
        if len(got) > 1:
            few = min(got.values(), key=len)
            raise ConfigError(f"the cells of seed {seed} started from different phase-0 models "
                              f"(their R@1 after phase 0 differs: {', '.join(few)} against the "
                              f"rest); delete the folders of one group and run the study again")


def _check_cell(plan, c, out, report: RunReport, where: str, redo: str) -> None:
    """A cell's report must be the cell's: trained with the cell's own settings (seed,
    method, knob value, the plan's base), with recalls that are percentages."""
    from .config import TRAINING_KEYS

    want = json.loads(json.dumps(plan.config(c.seed, c.method, c.value,
                                             str(c.run_dir(out))).to_dict()))
    got = report.config if isinstance(report.config, dict) else {}
    differ = [k for k in TRAINING_KEYS if k in want and got.get(k) != want[k]]
    if differ:
        k = differ[0]
        raise ConfigError(f"{where} was trained with other settings than the cell ({k} "
                          f"{got.get(k)!r}, the cell's {want[k]!r}); {redo}")
    rep = report.methods.get(c.method)
    if rep is None:
        raise ConfigError(f"{where} has no results of {c.method}; {redo}")
    for name, m in (("R@1", rep.r1), *((f"i2t R@{k}", v) for k, v in rep.i2t.items()),
                    *((f"t2i R@{k}", v) for k, v in rep.t2i.items())):
        for row in m:
            for x in row:
                if isinstance(x, bool) or not isinstance(x, (int, float)) \
                        or not np.isfinite(x) or not 0 <= x <= 100:
                    raise ConfigError(f"{where} holds {name} = {x!r}, which is not a recall "
                                      f"(a percentage in [0, 100]); {redo}")
