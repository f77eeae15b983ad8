"""A study's statistics: per-cell metrics, per-seed paired differences against fine-tuning
with t intervals, matched-plasticity comparisons, and the claims with their verdicts.

Metrics of a cell (R = mean R@1 of both directions, rows: after phase t, columns: evaluation
sets, set 0 the old/base domain):

- ``retention``: ``R[T][0] - R[0][0]``, the old domain's change over the run (negative:
  forgotten);
- ``learning``: how much the new sets gained: ``mean_k (R[k][k] - R[0][k])`` over k >= 1 when
  the sets are the phases' domains, else ``mean_k (R[T][k] - R[0][k])``;
- ``final_avg``: ``mean_k R[T][k]``;
- ``max_drop``: the old domain's largest drop below its level after phase 0 at any phase;
- ``area_old``: the area under the old domain's curve, ``mean_{t>=1} (R[t][0] - R[0][0])``.

Stability is read three ways (:data:`STABILITY`): end-of-stream ``retention`` (what the
paper's tables read), minus ``max_drop`` (the largest drop, so that higher is better) and
``area_old``; every method is placed against fine-tuning's points on each (per seed:
matched, dominating, dominated or incomparable, with bounds; :mod:`modx.frontier`), and
claims (d) and (e) are computed on each, the headline verdict on ``retention``.

Intervals are two-sided 95% t intervals over seeds of the per-seed paired differences
(``scipy.stats.t``); a verdict is ``holds`` when the interval lies on the claimed side of its
threshold, ``does not hold`` when it lies on the other side, else ``inconclusive``: one alpha,
one-sided 2.5%, for every claim (:data:`modx.frontier.ALPHA`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from modx.errors import ConfigError
from sdtools.io import write_json, write_text
from sdtools.run_report import RunReport
from sdtools.runs import RunDir, environment

from .frontier import (
    LEVEL,
    MIN_SEEDS,
    frontier_gap,
    frontier_verdict,
    t_interval,
    verdict,
)
from .study_records import (
    MODALITIES,
    CellGeometry,
    CellMetrics,
    CellResult,
    FrontierRow,
)
from .study_text import markdown

METRICS = ("retention", "learning", "final_avg", "max_drop", "area_old")
# stability axes, higher is better: a cell's metrics -> value (CellMetrics.stability)
STABILITY = {m: (lambda c, m=m: c.stability(m)) for m in ("retention", "max_drop", "area_old")}


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
        if partial and not path.is_file():
            continue
        where = f"cell {c.index} ({c.run_dir(out)}): its report.json"
        redo = "delete that cell's folder and run the study again to redo it"
        try:
            report = RunReport.read(path)
            _check_cell(plan, c, out, report, where, redo)
            metrics = cell_metrics(report, c.method, metric)
        except ConfigError:
            raise
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{where} is damaged ({type(exc).__name__}: {exc}); {redo}") \
                from None
        rows.append(CellResult(c.index, c.seed, c.method, c.value, c.name, metrics))
    return rows


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


def _by(rows: list[CellResult], method, value) -> dict[int, CellMetrics]:
    """``{seed: metrics}`` of one method and knob value."""
    return {r.seed: r.metrics for r in rows if r.method == method and r.value == value}


PAIRED = {"retention": lambda m: m.retention, "learning": lambda m: m.learning,
          "final_avg": lambda m: m.final_avg}


def _paired(a: dict[int, CellMetrics], b: dict[int, CellMetrics], metric: str) -> list[float]:
    """Per seed both have, ``a``'s metric minus ``b``'s (seeds where either is None left
    out)."""
    get = PAIRED[metric]
    pairs = [(get(a[s]), get(b[s])) for s in sorted(set(a) & set(b))]
    return [x - y for x, y in pairs if x is not None and y is not None]


def _points(rows, method: str, value, measure: str = "retention") -> dict:
    """``{seed: (learning, stability)}`` of one method and knob value."""
    return {s: (m.learning, m.stability(measure))
            for s, m in _by(rows, method, value).items()}


# fine-tuning at lr -> 0 is the phase-0 model: learning 0 and every stability measure 0, exactly
ANCHOR = (0.0, 0.0)
# methods whose cells are points of a baseline's curve (another sweep axis of the same training)
CURVE_OF = {"finetune": ("finetune", "finetune_steps")}


def _front(rows, plan, baseline: str, measure: str = "retention") -> dict:
    """``{seed: [(learning, stability) per knob value]}`` of a swept baseline, every sweep axis
    of it (:data:`CURVE_OF`); fine-tuning's points include :data:`ANCHOR` (the end of its curve
    that needs no run)."""
    out: dict = {}
    for method in CURVE_OF.get(baseline, (baseline,)):
        if method not in plan.grid:
            continue
        for v in plan.grid[method] or [None]:
            for s, pt in _points(rows, method, v, measure).items():
                out.setdefault(s, []).append(pt)
    if baseline == "finetune":
        for pts in out.values():
            pts.append(ANCHOR)
    return out


def frontier_table(rows, plan, baseline: str = "finetune") -> list[dict]:
    """Every other method and knob value against the baseline's points (see
    :mod:`modx.frontier`), on each stability measure: per seed its class and bounds."""
    out = []
    for measure in STABILITY:
        front = _front(rows, plan, baseline, measure)
        for method, values in plan.grid.items():
            if method in CURVE_OF.get(baseline, (baseline,)):
                continue
            for v in values or [None]:
                out.append({"method": method, "knob": v, "against": baseline,
                            "measure": measure,
                            **frontier_gap(_points(rows, method, v, measure), front)})
    return out


def _against_frontier(rows, plan, method: str, baseline: str, claim: str,
                      measure: str = "retention") -> dict:
    front = _front(rows, plan, baseline, measure)
    values = plan.grid.get(method) or [None]
    gaps = {v: frontier_gap(_points(rows, method, v, measure), front) for v in values}
    fv = frontier_verdict(gaps)  # Holm over every planned value
    value = next((v for v in values if str(v) == fv["best"]), None)
    return {"claim": claim, "measure": measure,
            "statistic": f"per-seed lower bound of {method}'s {measure} minus {baseline}'s at "
            f"the same learning (monotone trade-off; t test, Holm over {method}'s planned "
            f"values {values})", **fv, "value": value, "against": baseline,
            "lower": gaps[value]["lower"], "classes": gaps[value]["classes"],
            "by_value": {str(v): g for v, g in gaps.items()}}


def _on_each_measure(rows, plan, method: str, baseline: str, claim: str) -> dict:
    """The claim on end-of-stream retention, with the same claim on the other stability
    measures beside it (``by_measure``: verdict, best value, its lower bound)."""
    out = _against_frontier(rows, plan, method, baseline, claim)
    out["by_measure"] = {}
    for m in STABILITY:
        c = out if m == "retention" else _against_frontier(rows, plan, method, baseline,
                                                           claim, m)
        out["by_measure"][m] = {k: c[k] for k in ("verdict", "value", "lower", "classes",
                                                  "holm_p", "reason")}
    return out


def _verdict_n(interval: dict, threshold: float = 0.0, side: str = ">") -> str:
    """A verdict only with at least ``MIN_SEEDS`` seeds and an interval, else inconclusive."""
    if interval.get("n_seeds", 0) < MIN_SEEDS:
        return "inconclusive"
    return verdict(interval.get("ci"), threshold, side)


def _all(verdicts) -> str:
    v = list(verdicts)
    if all(x == "holds" for x in v):
        return "holds"
    return "does not hold" if any(x == "does not hold" for x in v) else "inconclusive"


def claims(rows, plan) -> dict:
    ref = _by(rows, "finetune", plan.reference)
    out = {}
    ret = t_interval([m.retention for m in ref.values()])
    out["a_finetune_forgets"] = {
        "claim": "fine-tuning forgets the old domain (retention < 0 R@1 points)",
        "statistic": "retention of finetune at the reference lr", **ret,
        "verdict": _verdict_n(ret, 0.0, "<")}
    geo = [m.geometry for m in ref.values()]
    stat = {f"{k}_{mod}": t_interval([None if g is None else getattr(g, k)(mod) for g in geo])
            for k in ("rigidity", "topology_kept") for mod in MODALITIES}
    out["b_rotation_like"] = {
        "claim": "each modality's change is more rotation-like than jitter of its size: "
                 "rigidity (held-out share against the jitter null) and topology_kept (the "
                 "paper's criterion against its null) above their nulls, 0",
        "statistic": "rigidity and topology_kept of finetune at the reference lr, last phase "
                     "vs phase 0, old-domain probe", **stat,
        "mostly_rotation": _all(_verdict_n(stat[f"rigidity_{m}"], 0.5) for m in ("image",
                                                                                  "text")),
        "verdict": _all(_verdict_n(x) for x in stat.values())}
    cr = t_interval([None if g is None else g.cross_excess for g in geo])
    out["c_out_of_step"] = {
        "claim": "image and text turn out of step: the cross-applied residual above its "
                 "calibrated in-step null",
        "statistic": "cross_residual minus its null, finetune at the reference lr, old-domain "
                     "probe", **cr, "verdict": _verdict_n(cr)}
    if "modx" in plan.grid:
        d = _on_each_measure(rows, plan, "modx", "finetune",
                             "Mod-X forgets less than fine-tuning at matched plasticity "
                             "(against fine-tuning's trade-off curve), with joint training "
                             "above both (final average)")
        if "joint" in plan.grid and d["value"] is not None:
            joint = _by(rows, "joint", None)
            above = [t_interval(_paired(joint, _by(rows, meth, val), "final_avg")) for meth, val
                     in (("modx", d["value"]), ("finetune", plan.reference))]
            d["joint_minus_modx_final_avg"], d["joint_minus_finetune_final_avg"] = above
            d["joint_above_both"] = _all(_verdict_n(a) for a in above)
        out["d_modx_vs_finetune"] = d
        if "lwf" in plan.grid:
            out["e_modx_vs_lwf"] = _on_each_measure(
                rows, plan, "modx", "lwf", "Mod-X forgets less than LwF at matched plasticity "
                "(against LwF's trade-off curve over its weight)")
    return out


def paired_table(rows, plan) -> list[dict]:
    ref = _by(rows, "finetune", plan.reference)
    out = []
    for method, values in plan.grid.items():
        for v in values or [None]:
            if method == "finetune" and v == plan.reference:
                continue
            cell = _by(rows, method, v)
            for metric in ("retention", "learning", "final_avg"):
                out.append({"method": method, "knob": v, "metric": metric,
                            **t_interval(_paired(cell, ref, metric))})
    return out


def aggregate(plan, out, partial: bool = False) -> dict:
    """``study.json``, ``report.md`` and the figure from the cells' reports; with ``partial``
    from the cells finished so far (``"partial": true`` in the study)."""
    out = Path(out)
    rows = _collect(plan, out, partial)
    from sdtools.io import tag

    times = read_times(out)
    study = {"written_by": tag(), "kind": "study", "plan": plan.to_dict(),
             "cells": [r.to_dict() for r in rows],
             "paired": paired_table(rows, plan),
             "frontier": frontier_table(rows, plan), "claims": claims(rows, plan),
             "level": LEVEL, "environment": environment(), "partial": partial,
             "cells_done": len(rows), "cells_planned": len(plan.cells()),
             "cell_seconds": float(sum(times.values()))}
    write_json(out / "study.json", study)
    write_text(out / "report.md", markdown(study))
    from sdtools.viz.study import plasticity_figure

    from .methods import styles

    plasticity_figure(_curves(rows, plan), out / "figures", figure_gaps(study["frontier"]),
                      styles=styles(), baseline="finetune")
    return study


def figure_gaps(frontier: list[dict], measure: str = "retention") -> list[dict]:
    """What the figure's verdict panel plots, as plain data: per method and knob value, each
    seed's class and bounds, and the interval over seeds of the lower bound."""
    rows = [FrontierRow.from_dict(g, f"frontier[{i}]") for i, g in enumerate(frontier)]
    return [{"method": g.method, "knob": g.knob, "lower": g.gap.lower.to_dict(),
             "seeds": [{"class": v.class_, "lower": v.lower, "upper": v.upper, "gap": v.gap}
                       for v in g.gap.per_seed.values()]}
            for g in rows if g.measure == measure]


def _curves(rows, plan) -> dict:
    """Per method, per knob value: mean and t interval of learning and retention."""
    out = {}
    for method, values in plan.grid.items():
        pts = []
        for v in values or [None]:
            cell = _by(rows, method, v).values()
            pts.append({"knob": v, "learning": t_interval([m.learning for m in cell]),
                        "retention": t_interval([m.retention for m in cell])})
        out[method] = pts
    return out


def read_times(out: Path) -> dict:
    """``{cell or seed phase 0: seconds}`` from ``DIR/times.json``; empty when there is none
    or the file there is not a study's timings (a user's file, which --force replaces)."""
    import json

    from sdtools.io import written_by_us

    path = Path(out) / "times.json"
    if not written_by_us(path, "times"):
        return {}
    seconds = json.loads(path.read_text()).get("seconds")
    return {k: float(v) for k, v in seconds.items()} if isinstance(seconds, dict) else {}
