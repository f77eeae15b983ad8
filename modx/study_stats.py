"""A study's statistics: per-cell metrics, per-seed paired differences against fine-tuning
with t intervals, matched-plasticity comparisons, and the claims with their verdicts.

Metrics of a cell (R = mean R@1 of both directions, rows: after phase t, columns: evaluation
sets, set 0 the old/base domain):

- ``retention``: ``R[T][0] - R[0][0]``, the old domain's change over the run (negative:
  forgotten);
- ``learning``: how much the new sets gained: ``mean_k (R[k][k] - R[0][k])`` over k >= 1 when
  the sets are the phases' domains, else ``mean_k (R[T][k] - R[0][k])``;
- ``final_avg``: ``mean_k R[T][k]``;
- ``max_drop``: the old domain's largest drop below its level after phase 0 at any phase.

Intervals are two-sided 95% t intervals over seeds of the per-seed paired differences
(``scipy.stats.t``); a verdict is ``holds`` when the interval lies on the claimed side of its
threshold, ``does not hold`` when it lies on the other side, else ``inconclusive``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats

from sdtools.errors import ConfigError
from sdtools.io import write_json, write_text

LEVEL = 0.95
METRICS = ("retention", "learning", "final_avg", "max_drop")


def t_interval(values, level: float = LEVEL) -> dict:
    """Mean and two-sided t interval of the mean (``ci`` None with fewer than 2 values)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "ci": None, "n_seeds": 0}
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "ci": None, "n_seeds": int(v.size)}
    half = float(stats.t.ppf((1 + level) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return {"mean": mean, "ci": [mean - half, mean + half], "n_seeds": int(v.size)}


def verdict(ci, threshold: float = 0.0, side: str = ">") -> str:
    """``holds`` / ``does not hold`` / ``inconclusive`` for "the quantity is {side} threshold"."""
    if ci is None:
        return "inconclusive"
    lo, hi = ci
    above, below = lo > threshold, hi < threshold
    if side == "<":
        above, below = below, above
    return "holds" if above else "does not hold" if below else "inconclusive"


def cell_metrics(report: dict, method: str) -> dict:
    r = np.asarray(report["methods"][method]["r1"], dtype=np.float64)
    last = r.shape[0] - 1
    square = r.shape[0] == r.shape[1]
    new = range(1, r.shape[1])
    if square:
        learning = float(np.mean([r[k, k] - r[0, k] for k in new])) if r.shape[1] > 1 else 0.0
    else:
        learning = float(np.mean(r[last, 1:] - r[0, 1:])) if r.shape[1] > 1 else 0.0
    geo = report["methods"][method]["geometry"]
    g = geo[-1]["vs_phase0"] if geo else None
    old = (g.get("per_set") or {}).get(report["methods"][method]["sets"][0], g) if g else None
    out = {
        "retention": float(r[last, 0] - r[0, 0]),
        "learning": learning,
        "final_avg": float(r[last].mean()),
        "max_drop": float(np.max(r[0, 0] - r[:, 0])),
    }
    if old is not None:
        for mod in ("image", "text"):
            p = old[mod]["procrustes"]
            out[f"rigidity_{mod}"] = p.get("rigidity")
            out[f"heldout_gain_{mod}"] = (p.get("explained_heldout", 0.0)
                                          - p.get("null_heldout", 0.0))
        out["cross_residual"] = old["deviation"].get("cross_residual", {}).get("mean")
        out["relative_max_angle"] = old["deviation"]["relative_rotation"]["max_angle"]
    return out


def _collect(plan, out: Path) -> list[dict]:
    rows = []
    for c in plan.cells():
        path = c.run_dir(out) / "report.json"
        try:
            rep = json.loads(path.read_text())
            metrics = cell_metrics(rep, c.method)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cell {c.index} ({c.run_dir(out)}): its report.json is damaged "
                              f"({type(exc).__name__}: {exc}); delete that cell's folder and "
                              "run the study again to redo it") from None
        rows.append({"cell": c.index, "seed": c.seed, "method": c.method, "value": c.value,
                     "name": c.name, **metrics})
    return rows


def _by(rows, method, value):
    return {r["seed"]: r for r in rows if r["method"] == method and r["value"] == value}


def _paired(a: dict, b: dict, metric: str) -> list[float]:
    return [a[s][metric] - b[s][metric] for s in sorted(set(a) & set(b))
            if a[s].get(metric) is not None and b[s].get(metric) is not None]


MATCH_POINTS = 3.0  # mean learning within this many R@1 points: plasticity matched


def _matched(rows, plan, method: str, against: str) -> dict | None:
    """The pair (method value, against value) whose mean learning is closest, with its
    paired differences of retention, learning and final average; ``matched`` when the gap is
    at most ``MATCH_POINTS``."""
    best = None
    for va in plan.grid.get(method) or [None]:
        a = _by(rows, method, va)
        for vb in plan.grid.get(against) or [None]:
            b = _by(rows, against, vb)
            gap = abs(np.mean([r["learning"] for r in a.values()])
                      - np.mean([r["learning"] for r in b.values()]))
            if best is None or gap < best["learning_gap"]:
                best = {"method": method, "value": va, "against": against, "against_value": vb,
                        "learning_gap": float(gap),
                        "retention": t_interval(_paired(a, b, "retention")),
                        "learning": t_interval(_paired(a, b, "learning")),
                        "final_avg": t_interval(_paired(a, b, "final_avg"))}
    best["matched"] = best["learning_gap"] <= MATCH_POINTS
    return best


def matched_verdict(m: dict) -> str:
    """At matched plasticity, the retention interval decides. Otherwise a method that learns
    less may forget less for that reason alone: "holds" only when it retains more and learns
    more (both intervals above 0), "does not hold" when it retains less and learns less,
    else "inconclusive" (a trade-off, not a comparison at matched plasticity)."""
    ret = verdict(m["retention"]["ci"], 0.0, ">")
    if m["matched"]:
        return ret
    learn = verdict(m["learning"]["ci"], 0.0, ">")
    if ret == learn and ret in ("holds", "does not hold"):
        return ret
    return "inconclusive"


def claims(rows, plan) -> dict:
    ref = _by(rows, "finetune", plan.reference)
    out = {}
    ret = t_interval([r["retention"] for r in ref.values()])
    out["a_finetune_forgets"] = {
        "claim": "fine-tuning forgets the old domain (retention < 0 R@1 points)",
        "statistic": "retention of finetune at the reference lr", **ret,
        "verdict": verdict(ret["ci"], 0.0, "<")}
    rig = {m: t_interval([r.get(f"rigidity_{m}") for r in ref.values()])
           for m in ("image", "text")}
    v = [verdict(rig[m]["ci"], 0.5, ">") for m in rig]
    out["b_rotation_like"] = {
        "claim": "each modality's change is rotation-like: rigidity (held-out explained share "
                 "against the isotropic-jitter null; 0 jitter, 1 rotation) above 0.5",
        "statistic": "rigidity of finetune, last phase vs phase 0, old-domain probe",
        "image": rig["image"], "text": rig["text"],
        "verdict": v[0] if v[0] == v[1] else "inconclusive"}
    cr = t_interval([r.get("cross_residual") for r in ref.values()])
    out["c_out_of_step"] = {
        "claim": "image and text rotate out of step beyond the null: the cross-applied "
                 "residual (share of one modality's change left when moved by the other's "
                 "rotation) above 0.05 (its value under one shared rotation with jitter is "
                 "below 0.02)",
        "statistic": "cross_residual of finetune, old-domain probe", **cr,
        "verdict": verdict(cr["ci"], 0.05, ">")}
    if "modx" in plan.grid:
        m = _matched(rows, plan, "modx", "finetune")
        d = {"claim": "Mod-X forgets less than fine-tuning at matched plasticity "
                      "(paired retention difference > 0), with joint training above both "
                      "(final average)",
             "statistic": "paired retention difference, modx minus finetune, at the closest "
                          "mean learning", **m, "verdict": matched_verdict(m)}
        if "joint" in plan.grid:
            joint = _by(rows, "joint", None)
            above = [t_interval(_paired(joint, _by(rows, meth, val), "final_avg")) for meth, val
                     in (("modx", m["value"]), ("finetune", m["against_value"]))]
            d["joint_minus_modx_final_avg"], d["joint_minus_finetune_final_avg"] = above
            d["joint_above_both"] = ("holds" if all(verdict(a["ci"]) == "holds" for a in above)
                                     else "does not hold" if any(verdict(a["ci"]) ==
                                                                 "does not hold" for a in above)
                                     else "inconclusive")
        out["d_modx_vs_finetune"] = d
        if "lwf" in plan.grid:
            m = _matched(rows, plan, "modx", "lwf")
            out["e_modx_vs_lwf"] = {
                "claim": "Mod-X forgets less than LwF at matched plasticity",
                "statistic": "paired retention difference, modx minus lwf, at the closest "
                             "mean learning", **m, "verdict": matched_verdict(m)}
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


def aggregate(plan, out) -> dict:
    out = Path(out)
    rows = _collect(plan, out)
    times_path = out / "times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    study = {"plan": plan.to_dict(), "cells": rows, "paired": paired_table(rows, plan),
             "claims": claims(rows, plan), "level": LEVEL,
             "cell_seconds": float(sum(times.values()))}
    write_json(out / "study.json", study)
    write_text(out / "report.md", markdown(study))
    from sdtools.viz.study import plasticity_figure

    curves = _curves(rows, plan)
    plasticity_figure(curves, out / "figures")
    return study


def _curves(rows, plan) -> dict:
    """Per method, per knob value: mean and t interval of learning and retention."""
    out = {}
    for method, values in plan.grid.items():
        pts = []
        for v in values or [None]:
            cell = _by(rows, method, v).values()
            pts.append({"knob": v, "learning": t_interval([r["learning"] for r in cell]),
                        "retention": t_interval([r["retention"] for r in cell])})
        out[method] = pts
    return out


def _f(x, nd=2):
    return "–" if x is None else f"{x:+.{nd}f}"


def _ci(d):
    return "–" if not d.get("ci") else f"[{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]"


def markdown(study: dict) -> str:
    lines = [f"# Study {study['plan']['name']}", "",
             f"Seeds {study['plan']['seeds']}; cells {len(study['cells'])}; intervals: 95% t "
             "over seeds of per-seed paired differences against finetune at the reference lr "
             f"({study['plan']['reference']}).", "", "## Claims", "",
             "| claim | statistic | mean | 95% CI | verdict |", "| --- | --- | --- | --- | --- |"]
    for c in study["claims"].values():
        if "retention" in c and isinstance(c["retention"], dict):
            mean, ci = c["retention"]["mean"], _ci(c["retention"])
        elif "image" in c:
            mean = c["image"]["mean"]
            ci = f"image {_ci(c['image'])}, text {_ci(c['text'])}"
        else:
            mean, ci = c.get("mean"), _ci(c)
        note = ("" if c.get("matched", True) else
                f" (plasticity not matched: learning gap {c['learning_gap']:.1f} points)")
        lines.append(f"| {c['claim']} | {c['statistic']} | {_f(mean, 3)} | {ci} | "
                     f"{c['verdict']}{note} |")
        if "joint_above_both" in c:
            jm, jf = c["joint_minus_modx_final_avg"], c["joint_minus_finetune_final_avg"]
            lines.append(f"| joint training above both (final average) | paired final_avg "
                         f"difference, joint minus modx / minus finetune | {_f(jm['mean'], 3)} / "
                         f"{_f(jf['mean'], 3)} | {_ci(jm)} / {_ci(jf)} | "
                         f"{c['joint_above_both']} |")
    lines += ["", "## Paired differences against finetune", "",
              "| method | knob | metric | mean | 95% CI | seeds |",
              "| --- | --- | --- | --- | --- | --- |"]
    for p in study["paired"]:
        lines.append(f"| {p['method']} | {p['knob']} | {p['metric']} | {_f(p['mean'])} | "
                     f"{_ci(p)} | {p['n_seeds']} |")
    return "\n".join(lines) + "\n"
