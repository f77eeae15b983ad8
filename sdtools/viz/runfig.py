"""What every figure of a continual run shares: the report as typed records, each method's
colour and line style as the run report gives them, panel grids and histograms."""

from __future__ import annotations

import functools

import numpy as np

from ..geometry_record import SummaryRecord
from ..run_report import RunReport, as_report
from .style import colour, pyplot

MOD_STYLE = {"image": dict(color="#1f77b4"), "text": dict(color="#d62728")}


def method_names(report: RunReport):
    return list(report.methods)


def reads_report(fn):
    """Figure functions take a RunReport or its dict (checked)."""
    @functools.wraps(fn)
    def wrapper(report, *args, **kwargs):
        return fn(as_report(report), *args, **kwargs)
    return wrapper


def method_colour(report: RunReport, method: str) -> str:
    """The method's colour as its run report gives it, else one from its name."""
    return report.methods[method].style.get("colour") or colour(method)


def is_dashed(report: RunReport, method: str) -> bool:
    """Drawn dashed: a reference the run marks so (an upper bound trained on everything)."""
    return bool(report.methods[method].style.get("dashed"))


def panel_grid(n_rows, n_cols, w=7.0, h_row=1.5, sharey=False):
    plt = pyplot()
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(w, max(h_row * n_rows, 1.8)),
                             squeeze=False, sharey=sharey)
    for ax in axes.flat:
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def hist_bars(ax, summary: SummaryRecord, style, label, offset):
    edges = np.asarray(summary.bin_edges, dtype=float)
    hist = np.asarray(summary.histogram, dtype=float)
    share = hist / max(hist.sum(), 1)
    idx = np.arange(len(share))
    ax.bar(idx + offset, share, width=0.42, align="edge", label=label, alpha=0.9, **style)
    step = max(1, len(edges) // 6)
    ax.set_xticks(np.arange(0, len(edges), step), [f"{e:g}" for e in edges[::step]])


def probe_of(run_dir, method, t):
    from ..runs import RunDir

    rd = RunDir(run_dir)
    from ..models.embeddings import Embeddings

    return Embeddings.load(rd.probe_path(method, t)) if rd.has_probe(method, t) else None


def as_float(x) -> float:
    """A value that may be None (not measurable) as a float for labels: NaN then."""
    return float("nan") if x is None else float(x)
