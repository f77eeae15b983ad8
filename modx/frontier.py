"""Comparisons at matched plasticity against a baseline's trade-off curve, and the right to
say "holds".

A method that learns less also forgets less, so a comparison with fine-tuning at one learning
rate says nothing when the two learn different amounts. The reference is fine-tuning over a
sweep (of learning rates, or anything else that moves it along its trade-off): per seed a set
of (learning, stability) points, where stability is end-of-stream retention, minus the largest
drop, or the area under the old-domain curve (see :mod:`modx.study_stats`).

**The reference** is the baseline's best trade-off: ``F(l)``, the highest stability a
baseline run reaches while learning ``l`` or more, non-increasing by construction. From the
seed's points, ``E(l) = max{r_i : l_i >= l}`` (the observed envelope). **The assumption**:
the sweep sees ``F`` at its own points (no baseline setting learning at least ``l_i`` keeps
more than the best swept one, ``F(l_i) = E(l_i)``). Nothing is assumed about the curve's shape
between points (straight, concave, convex or saturating), so the verdict does not
interpolate: it uses **bounds** (partial identification). For a method at ``(l_m, r_m)``:

- ``lower = r_m - E(l_below)``, ``l_below`` the largest baseline learning ``<= l_m``: since
  ``F(l_m) <= F(l_below)``, the method's gap ``r_m - F(l_m)`` is **at least** ``lower``
  (needs the assumption);
- ``upper = r_m - E(l_m)``: a swept run learns at least ``l_m`` and keeps ``E(l_m)``, so the
  gap is **at most** ``upper`` (needs no assumption).

``below`` and ``above`` name the points these read. A method learning more than every
baseline point has only a lower bound; one learning less than every point only an upper
bound. Each seed is classified:

- ``dominating``: ``lower > 0`` (it learns at least as much as ``below`` and keeps more than
  every point learning that much or more);
- ``dominated``: ``upper < 0`` (``above`` learns at least as much and keeps more);
- ``matched``: neither, inside the baseline's learning range; ``gap`` is read off the chord
  between the neighbouring points (descriptive only: a chord is biased where the curve bends);
- ``incomparable``: neither, outside the range (learns more and keeps less than every point,
  or learns less and keeps more): no bound has the sign to decide.

Ties: points of equal learning are all kept; the envelope takes the best of them, the chord
their mean. A point beaten on both axes is kept as well, and reads through the envelope.

**The verdict** of "the method keeps more than the baseline's curve" over its planned knob
values: per value a one-sided t test that the mean over seeds of ``lower`` exceeds 0; Holm
over every planned value (a value with no lower bound in some seed, fewer than ``MIN_SEEDS``
seeds or no spread enters with p = 1); "holds" when the smallest adjusted p is below
``ALPHA``. "Does not hold" when, for every planned value, the mean of ``upper`` is below 0 at
``ALPHA`` (an intersection-union test: no correction needed). Otherwise "inconclusive", with
the reason per value. Since ``E[lower] <= gap`` whatever the curve's shape, "holds" under no
effect stays at or under ``ALPHA`` (up to noise in the measured learning; see
:mod:`modx.frontier_sim`). An exact sign-flip p is reported beside the t test's; with ``n``
seeds it cannot go below ``2**-n`` (1/32 with 5 seeds, above ``ALPHA``), so the verdict reads
the t test.

One alpha for every claim: ``ALPHA`` = 0.025 one-sided, which is what a two-sided 95%
interval clear of the threshold means.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

LEVEL = 0.95
ALPHA = (1 - LEVEL) / 2  # one-sided, every claim
MIN_SEEDS = 3
CLASSES = ("matched", "dominating", "dominated", "incomparable")


def _spread(v: np.ndarray) -> bool:
    """Values that differ by more than rounding (a spread of 1e-15 is no evidence either)."""
    return v.size >= 2 and v.std(ddof=1) > 1e-9 * max(1.0, float(np.abs(v).max()))


def t_interval(values, level: float = LEVEL) -> dict:
    """Mean and two-sided t interval of the mean (``ci`` None with fewer than 2 values or
    none between them: zero spread is no evidence of certainty)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "ci": None, "n_seeds": 0}
    mean = float(v.mean())
    if not _spread(v):  # one seed, or no spread: no interval to form
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


def t_p(values, side: str = ">") -> float | None:
    """One-sided p of the one-sample t test of "mean {side} 0" (None without spread)."""
    v = np.asarray(values, dtype=np.float64)
    if not _spread(v):
        return None
    t = v.mean() / (v.std(ddof=1) / np.sqrt(v.size))
    return float(stats.t.sf(t if side == ">" else -t, v.size - 1))


def sign_flip_p(values, side: str = ">") -> float | None:
    """Exact one-sided sign-flip p of "mean {side} 0": the share of the ``2**n`` sign patterns
    whose mean is at least the observed one (the observed pattern included, so p >= 2**-n)."""
    v = np.asarray(values, dtype=np.float64) * (1.0 if side == ">" else -1.0)
    if v.size == 0 or v.size > 20:
        return None
    signs = np.asarray(list(itertools.product((1.0, -1.0), repeat=v.size)))
    means = signs @ v
    return float(np.mean(means >= v.sum() - 1e-12 * max(1.0, np.abs(v).sum())))


def _best(points, learning):
    """The point of highest stability among those learning at least ``learning``."""
    return list(max((p for p in points if p[0] >= learning), key=lambda p: (p[1], -p[0])))


def classify(point, baseline) -> dict:
    """One seed: the method's ``point`` ``(learning, stability)`` against the baseline's
    points ``[(learning, stability), ...]`` (see the module docstring)."""
    lm, rm = point
    pts = [(float(x), float(r)) for x, r in baseline if x is not None and r is not None]
    out = {"class": None, "learning": lm, "stability": rm, "below": None, "above": None,
           "lower": None, "upper": None, "gap": None}
    if lm is None or rm is None or not pts:
        out["class"] = "no data"
        return out
    lows = [x for x, _ in pts if x <= lm]
    highs = [x for x, _ in pts if x >= lm]
    if lows:
        xb = max(lows)
        out["below"] = _best(pts, xb)
        out["lower"] = rm - out["below"][1]
    if highs:
        xa = min(highs)
        out["above"] = _best(pts, lm)
        out["upper"] = rm - out["above"][1]
    if lows and highs:
        mean = lambda x: float(np.mean([r for p, r in pts if p == x]))  # noqa: E731
        ref = mean(xb) if xa == xb else float(np.interp(lm, [xb, xa], [mean(xb), mean(xa)]))
        out["gap"] = rm - ref
    if out["lower"] is not None and out["lower"] > 0:
        out["class"] = "dominating"
    elif out["upper"] is not None and out["upper"] < 0:
        out["class"] = "dominated"
    else:
        out["class"] = "matched" if lows and highs else "incomparable"
    return out


def _test(values: list, side: str) -> dict:
    return {**t_interval(values), "p": t_p(values, side), "p_sign_flip": sign_flip_p(values, side)}


def frontier_gap(method: dict, baseline: dict) -> dict:
    """Per seed, the method against the baseline's points.

    ``method``: ``{seed: (learning, stability)}``; ``baseline``: ``{seed: [(learning,
    stability), ...]}`` (one point per knob value). Returns ``per_seed`` (each seed's
    :func:`classify`), ``classes`` (counts), ``lower`` (t interval, one-sided p of "> 0" and
    its sign-flip p, over the seeds' lower bounds; ``missing``: seeds with none), ``upper``
    (the same for the upper bounds, p of "< 0") and ``chord`` (t interval of the chord gaps
    of the seeds that have one; descriptive)."""
    per_seed = {str(s): classify(pt, baseline.get(s, [])) for s, pt in sorted(method.items())}
    out = {"n_total": len(per_seed),
           "classes": {c: sum(v["class"] == c for v in per_seed.values()) for c in CLASSES}}
    for key, side in (("lower", ">"), ("upper", "<")):
        vals = [v[key] for v in per_seed.values() if v[key] is not None]
        out[key] = {**_test(vals, side),
                    "missing": [s for s, v in per_seed.items() if v[key] is None]}
    out["chord"] = t_interval([v["gap"] for v in per_seed.values()])
    out["per_seed"] = per_seed
    return out


def holm(pvalues: dict) -> dict:
    """Holm's step-down adjusted p values (``{key: p}``; None entries left out)."""
    items = sorted((p, str(k)) for k, p in pvalues.items() if p is not None)
    m, out, run = len(items), {}, 0.0
    for i, (p, k) in enumerate(items):
        run = max(run, min(1.0, (m - i) * p))
        out[k] = run
    return out


def _why(bound: dict, n_total: int, what: str) -> str | None:
    """Why a bound cannot be tested over seeds, or None when it can."""
    if bound["missing"]:
        side = "less" if what == "lower" else "more"
        return (f"no {what} bound in seed(s) {', '.join(bound['missing'])} of {n_total} (the "
                f"method learns {side} than every baseline point)")
    if bound["n_seeds"] < MIN_SEEDS:
        return f"{bound['n_seeds']} seeds; at least {MIN_SEEDS} are needed"
    if bound["p"] is None:
        return f"no spread of the {what} bounds across seeds"
    return None


def frontier_verdict(gaps: dict) -> dict:
    """The verdict of "the method keeps more than the baseline's curve" over its planned knob
    values ``gaps`` (``{value: frontier_gap(...)}``, every planned value, matched or not)."""
    p, notes = {}, {}
    for v, g in gaps.items():
        why = _why(g["lower"], g["n_total"], "lower")
        p[str(v)] = 1.0 if why else g["lower"]["p"]
        if why:
            notes[str(v)] = why
    adjusted = holm(p)
    best = min(adjusted, key=lambda k: (adjusted[k], -(_lower_mean(gaps, k) or -math.inf)),
               default=None)
    below = {str(v): _why(g["upper"], g["n_total"], "upper") is None and g["upper"]["p"] < ALPHA
             for v, g in gaps.items()}
    if best is not None and adjusted[best] < ALPHA:
        result, reason = "holds", None
    elif gaps and all(below.values()):
        result, reason = "does not hold", None
    else:
        result = "inconclusive"
        parts = []
        for v, g in gaps.items():
            k = str(v)
            if k in notes:
                parts.append(f"{k}: {notes[k]}")
            else:
                lo = g["lower"]
                parts.append(f"{k}: lower bound {lo['mean']:+.2f} over {lo['n_seeds']} seeds, "
                             f"Holm p {adjusted[k]:.3f} (not below {ALPHA:g})")
        reason = "; ".join(parts) or "no planned value"
    return {"verdict": result, "best": best, "holm_p": adjusted, "family": [str(v) for v in gaps],
            "alpha": ALPHA, "reason": reason}


def _lower_mean(gaps: dict, key: str):
    for v, g in gaps.items():
        if str(v) == key:
            return g["lower"]["mean"]
    return None
