"""Comparisons at matched plasticity against a baseline's frontier, and the right to say
"holds".

A method that learns less also forgets less, so a comparison with fine-tuning at one learning
rate says nothing when the two learn different amounts. The reference is fine-tuning over a
sweep of learning rates: per seed its (learning, retention) points are reduced to their
**frontier** (points another point beats on both axes are dropped, and of points with equal
learning the one that retains more is kept; what is left retains less as it learns more),
and fine-tuning's retention is read off that frontier at the method's own learning by linear
interpolation between the neighbouring points. The statistic is the method's retention minus
that, per seed, with a t interval over seeds. A seed where the method's learning lies outside
the frontier's range is **not matched**: no extrapolation.

The right to say "holds": at least ``MIN_SEEDS`` matched seeds with non-zero spread, every
seed matched, and, when the claim picks the best of several knob values, a one-sided t test
per value with Holm's correction over them at level ``ALPHA``. "Does not hold" when every
usable value's interval lies below 0; otherwise "inconclusive", with the reason.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

LEVEL = 0.95
ALPHA = 0.05
MIN_SEEDS = 3


def t_interval(values, level: float = LEVEL) -> dict:
    """Mean and two-sided t interval of the mean (``ci`` None with fewer than 2 values or
    none between them: zero spread is no evidence of certainty)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "ci": None, "n_seeds": 0}
    mean = float(v.mean())
    if v.size < 2 or not v.std(ddof=1) > 0:  # one seed, or no spread: no interval to form
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


def frontier(points) -> list[tuple[float, float]]:
    """One seed's baseline points ``(learning, retention)`` reduced to the frontier, sorted by
    learning (see the module docstring)."""
    best: dict[float, float] = {}
    for learning, retention in points:
        if learning is None or retention is None:
            continue
        best[float(learning)] = max(float(retention), best.get(float(learning), -np.inf))
    out = []
    for learning in sorted(best, reverse=True):  # keep a point only if it retains more than
        if not out or best[learning] > out[-1][1]:  # every point that learns more
            out.append((learning, best[learning]))
    return out[::-1]


def retention_at(front, learning: float) -> float | None:
    """The frontier's retention at ``learning`` (linear between points; None outside)."""
    if not front or learning is None or not front[0][0] <= learning <= front[-1][0]:
        return None
    xs = [p[0] for p in front]
    ys = [p[1] for p in front]
    return float(np.interp(learning, xs, ys))


def frontier_gap(method: dict, baseline: dict) -> dict:
    """Per seed, the method's retention minus the baseline frontier's at its learning.

    ``method``: ``{seed: (learning, retention)}``; ``baseline``: ``{seed: [(learning,
    retention), ...]}`` (one point per knob value). Returns the t interval of the differences
    over matched seeds, ``n_seeds`` (matched), ``n_total``, ``matched`` (every seed), the
    one-sided p value of "greater than 0" (None without spread or with fewer than 2 seeds)
    and the per-seed values."""
    diffs, per_seed = [], {}
    for seed, (learning, retention) in sorted(method.items()):
        ref = retention_at(frontier(baseline.get(seed, [])), learning)
        per_seed[seed] = None if ref is None or retention is None else retention - ref
        if per_seed[seed] is not None:
            diffs.append(per_seed[seed])
    out = t_interval(diffs)
    v = np.asarray(diffs)
    p = None
    if v.size >= 2 and v.std(ddof=1) > 0:
        t = v.mean() / (v.std(ddof=1) / np.sqrt(v.size))
        p = float(stats.t.sf(t, v.size - 1))
    return {**out, "n_total": len(method), "matched": len(diffs) == len(method), "p": p,
            "per_seed": {str(k): x for k, x in per_seed.items()}}


def holm(pvalues: dict) -> dict:
    """Holm's step-down adjusted p values (``{key: p}``; None entries left out)."""
    items = sorted((p, k) for k, p in pvalues.items() if p is not None)
    m, out, run = len(items), {}, 0.0
    for i, (p, k) in enumerate(items):
        run = max(run, min(1.0, (m - i) * p))
        out[k] = run
    return out


def usable(gap: dict) -> str | None:
    """Why a comparison cannot support a verdict, or None when it can."""
    if not gap["matched"]:
        return (f"not matched: the method's learning lies outside the baseline frontier in "
                f"{gap['n_total'] - gap['n_seeds']} of {gap['n_total']} seeds")
    if gap["n_seeds"] < MIN_SEEDS:
        return f"{gap['n_seeds']} seeds; at least {MIN_SEEDS} are needed"
    if gap["p"] is None:
        return "no spread across seeds: an interval cannot be formed"
    return None


def frontier_verdict(gaps: dict) -> dict:
    """The verdict of "the method retains more than the baseline frontier" over its knob
    values ``gaps`` (``{value: frontier_gap(...)}``): Holm over the usable values."""
    reasons = {str(v): usable(g) for v, g in gaps.items()}
    ok = {v: g for v, g in gaps.items() if reasons[str(v)] is None}
    if not ok:
        why = "; ".join(f"{v}: {r}" for v, r in reasons.items())
        return {"verdict": "inconclusive", "reason": why, "holm_p": {}, "best": None}
    adjusted = holm({v: g["p"] for v, g in ok.items()})
    best = min(adjusted, key=adjusted.get)
    if adjusted[best] < ALPHA:
        result = "holds"
    elif all(verdict(g["ci"]) == "does not hold" for g in ok.values()):
        result = "does not hold"
    else:
        result = "inconclusive"
    skipped = {v: r for v, r in reasons.items() if r is not None}
    return {"verdict": result, "best": best, "holm_p": {str(v): p for v, p in adjusted.items()},
            "reason": "; ".join(f"{v}: {r}" for v, r in skipped.items()) or None}
