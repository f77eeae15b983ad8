"""The stability-plasticity figure of a study: old-domain retention against new-domain
learning, one curve per method over its knob (means over seeds), and beside it what a
verdict reads: per seed, each method's bounds on its gap to the baseline's curve and its
class, with the interval over seeds of the lower bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .style import colour, pyplot, save_both, styled

MARKERS = {"matched": "o", "dominating": "^", "dominated": "v", "incomparable": "x"}


def _err(d):
    if not d.get("ci"):
        return 0.0
    return [[max(d["mean"] - d["ci"][0], 0.0)], [max(d["ci"][1] - d["mean"], 0.0)]]


@styled
def plasticity_figure(curves: dict, out, gaps: list | None = None, styles: dict | None = None,
                      baseline: str = "the baseline") -> list[Path]:
    """``curves``: method -> [{"knob", "learning": {mean}, "retention": {mean}}] (left: means
    over seeds, no bars: the verdict does not read absolute intervals); ``gaps``: [{"method",
    "knob", "lower": {mean, ci}, "seeds": [{"class", "lower", "upper", "gap"}]}] (right: per
    seed a segment from the lower to the upper bound of its gap to the ``baseline``'s curve,
    open-ended where a bound is missing, marked by class; in black the mean lower bound with
    its 95% interval over seeds); ``styles``: method -> {"colour"}."""
    plt = pyplot()
    panels = 2 if gaps else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.4), squeeze=False)
    ax = axes[0, 0]
    for method, pts in curves.items():
        pts = [p for p in pts if p["learning"]["mean"] is not None]
        if not pts:
            continue
        pts = sorted(pts, key=lambda p: p["learning"]["mean"])
        x = np.asarray([p["learning"]["mean"] for p in pts])
        y = np.asarray([p["retention"]["mean"] for p in pts])
        c = colour(method, styles)
        ax.plot(x, y, "-", color=c, lw=1.0, label=method, marker="o", ms=3)
    ax.axhline(0, color="#999", lw=0.6)
    ax.set(xlabel="new-domain learning (R@1 points)",
           ylabel="old-domain retention (R@1 points)",
           title="Means over seeds, one point per knob value")
    ax.legend(frameon=False, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if gaps:
        _verdict_panel(axes[0, 1], gaps, styles, baseline)
    fig.tight_layout()
    return save_both(fig, Path(out), "stability_plasticity")


def _verdict_panel(ax, gaps, styles, baseline):
    finite = [x for g in gaps for s in g["seeds"] for x in (s["lower"], s["upper"], s["gap"])
              if x is not None]
    if not finite:
        finite = [0.0]
    lo, hi = min(min(finite), 0.0), max(max(finite), 0.0)
    pad = 0.1 * (hi - lo) or 1.0
    lo, hi = lo - pad, hi + pad
    labels, seen = [], set()
    for i, g in enumerate(gaps):
        c = colour(g["method"], styles)
        labels.append(g["method"] + ("" if g["knob"] is None else f" {g['knob']:g}"))
        n = max(len(g["seeds"]), 1)
        for j, s in enumerate(g["seeds"]):
            x = i - 0.3 + 0.45 * j / max(n - 1, 1)
            a = lo if s["lower"] is None else s["lower"]
            b = hi if s["upper"] is None else s["upper"]
            ax.plot([x, x], [a, b], color=c, lw=0.8, alpha=0.7)
            y = {"dominating": s["lower"], "dominated": s["upper"], "matched": s["gap"]}.get(
                s["class"], s["lower"] if s["lower"] is not None else s["upper"])
            if y is None or s["class"] not in MARKERS:
                continue
            ax.plot([x], [y], MARKERS[s["class"]], color=c, ms=3.5)
            seen.add(s["class"])
        m = g["lower"]
        if m.get("mean") is not None:
            ax.errorbar([i + 0.28], [m["mean"]], yerr=_err(m), color="black", marker="_",
                        ms=6, lw=1.2, capsize=2)
    ax.axhline(0, color="#444", lw=1.0)
    ax.set_ylim(lo, hi)
    ax.set_xticks(range(len(gaps)), labels, rotation=45, ha="right", fontsize=6)
    ax.set(ylabel=f"gap to {baseline}'s curve (R@1 points)",
           title=f"Per seed: bounds on the gap to {baseline} (paired)")
    for k in MARKERS:  # the classes' markers, in grey: colours are the methods'
        if k in seen:
            ax.plot([], [], MARKERS[k], color="#666", ms=3.5, label=k)
    ax.plot([], [], "_", color="black", ms=6, label="mean lower bound, 95% CI")
    ax.legend(frameon=False, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
