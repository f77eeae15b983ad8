"""The stability-plasticity figure of a study: old-domain retention against new-domain
learning, one curve per method over its knob, with interval bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .style import colour, pyplot, save_both, styled


def _err(d):
    if not d.get("ci"):
        return 0.0
    return [[max(d["mean"] - d["ci"][0], 0.0)], [max(d["ci"][1] - d["mean"], 0.0)]]


@styled
def plasticity_figure(curves: dict, out, gaps: list | None = None, styles: dict | None = None,
                      baseline: str = "the baseline") -> list[Path]:
    """``curves``: method -> [{"knob", "learning": {mean, ci}, "retention": {mean, ci}}];
    ``gaps``: [{"method", "knob", "learning", "mean", "ci"}], each method's retention minus
    the ``baseline`` frontier's at its own learning (a second panel: the frontier is the 0
    line); ``styles``: method -> {"colour"} (else colours from the names)."""
    plt = pyplot()
    panels = 2 if gaps else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.2), squeeze=False)
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
        for p, xi, yi in zip(pts, x, y, strict=True):
            ax.errorbar([xi], [yi], xerr=_err(p["learning"]), yerr=_err(p["retention"]),
                        color=c, lw=0.7, capsize=2)
            if p["knob"] is not None:
                ax.annotate(f"{p['knob']:g}", (xi, yi), textcoords="offset points",
                            xytext=(3, 3), fontsize=5, color=c)
    ax.axhline(0, color="#999", lw=0.6)
    ax.set(xlabel="new-domain learning (R@1 points)",
           ylabel="old-domain retention (R@1 points)",
           title="Stability against plasticity (95% t intervals over seeds)")
    ax.legend(frameon=False, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if gaps:
        ax = axes[0, 1]
        ax.axhline(0, color="#444", lw=1.0, label=f"{baseline}'s frontier")
        for g in gaps:
            if g["mean"] is None or g["learning"] is None:
                continue
            c = colour(g["method"], styles)
            ax.errorbar([g["learning"]], [g["mean"]], yerr=_err(g), color=c, marker="o", ms=3,
                        lw=0.8, capsize=2)
            label = g["method"] + ("" if g["knob"] is None else f" {g['knob']:g}")
            ax.annotate(label, (g["learning"], g["mean"]), textcoords="offset points",
                        xytext=(3, 3), fontsize=5, color=c)
        ax.set(xlabel="new-domain learning (R@1 points)",
               ylabel="retention above the frontier (R@1 points)",
               title=f"Against {baseline} at the same learning (paired)")
        ax.legend(frameon=False, fontsize=6)
    fig.tight_layout()
    return save_both(fig, Path(out), "stability_plasticity")
