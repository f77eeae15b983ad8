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

from sdtools.io import write_json, write_text
from sdtools.runs import environment

from .frontier import (
    LEVEL,
    MIN_SEEDS,
    frontier_gap,
    frontier_verdict,
    t_interval,
    verdict,
)
from .study_cells import _collect, cell_metrics, metric_matrix  # noqa: F401 (re-exported)
from .study_records import MODALITIES, CellMetrics, CellResult, FrontierRow
from .study_text import markdown

METRICS = ("retention", "learning", "final_avg", "max_drop", "area_old")
# stability axes, higher is better: a cell's metrics -> value (CellMetrics.stability)
STABILITY = {m: (lambda c, m=m: c.stability(m)) for m in ("retention", "max_drop", "area_old")}


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

    times, cpus = read_times(out), read_times(out, "cpu_seconds")
    study = {"written_by": tag(), "kind": "study", "plan": plan.to_dict(),
             "cells": [r.to_dict() for r in rows],
             "paired": paired_table(rows, plan),
             "frontier": frontier_table(rows, plan), "claims": claims(rows, plan),
             "level": LEVEL, "environment": environment(), "partial": partial,
             "cells_done": len(rows), "cells_planned": len(plan.cells()),
             "cell_seconds": float(sum(times.values())),
             "cell_cpu_seconds": float(sum(cpus.values())) if cpus else None}
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


def read_times(out: Path, which: str = "seconds") -> dict:
    """``{cell or seed phase 0: seconds}`` from ``DIR/times.json``, wall time (``seconds``)
    or process time (``cpu_seconds``, absent from studies written before it was recorded);
    empty when there is none or the file there is not a study's timings (a user's file,
    which --force replaces)."""
    return read_all_times(out)[which == "cpu_seconds"]


def read_all_times(out: Path) -> tuple[dict, dict]:
    """``(wall, process)`` seconds from one read of ``DIR/times.json`` (see ``read_times``)."""
    from sdtools.io import written_by_us

    path = Path(out) / "times.json"
    if not written_by_us(path, "times"):
        return {}, {}
    d = json.loads(path.read_text())
    return tuple({k: float(v) for k, v in x.items()} if isinstance(x, dict) else {}
                 for x in (d.get("seconds"), d.get("cpu_seconds")))


def write_times(out: Path, wall: dict, cpu: dict) -> None:
    """``DIR/times.json``: wall and process seconds per cell and per seed's phase 0."""
    from sdtools.io import tag

    write_json(Path(out) / "times.json", {"written_by": tag(), "kind": "times", "seconds": wall,
                                          **({"cpu_seconds": cpu} if cpu else {})})
