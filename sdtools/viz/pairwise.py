"""Figures of one comparison (checkpoint a against b): rotation and deviation panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .style import MODALITY_COLOURS, pyplot, save, styled


def _bars(ax, summary: dict, colour: str, label: str, offset: float = 0.0, width=0.4):
    """A histogram as steps over its true bin edges (correct on any x scale; ``offset`` and
    ``width`` are kept for the callers' signature)."""
    edges = np.asarray(summary["bin_edges"])
    hist = np.asarray(summary["histogram"], dtype=float)
    share = hist / max(hist.sum(), 1)
    ax.stairs(share, edges, color=colour, fill=True, alpha=0.35, label=label)
    ax.stairs(share, edges, color=colour, lw=1.0)


@styled
def plot_rotation(report, path, title: str = "") -> Path:
    """Three panels: RAD histogram, SAM drift histogram, Procrustes principal-angle spectrum.

    ``report``: a :class:`sdtools.report.RotationReport` (or its ``to_dict()``).

    Parameters
    ----------
    report : RotationReport or dict
        :func:`sdtools.rotation_report`'s result.
    path : str or Path
        The figure file (.png, .pdf or .svg).
    title : str
        A title above the panels.

    Returns
    -------
    Path
        The file written.

    See Also
    --------
    rotation_report : Makes the report drawn here.
    plot_deviation : The inter-modal figure.

    Examples
    --------
    >>> import os, tempfile, numpy as np, sdtools
    >>> V = np.random.default_rng(0).standard_normal((60, 8)).astype(np.float32)
    >>> e = sdtools.Embeddings(V, V, np.arange(60))
    >>> rep = sdtools.rotation_report(e, e, ci=False)
    >>> sdtools.plot_rotation(rep, os.path.join(tempfile.mkdtemp(), "rot.png")).suffix
    '.png'
    """
    if hasattr(report, "to_dict"):
        report = report.to_dict()
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.3))
    mods = [m for m in ("image", "text") if m in report]
    for j, mod in enumerate(mods):
        r = report[mod]
        c = MODALITY_COLOURS[mod]
        _bars(axes[0], r["rad"], c, f"{mod} (mean {r['rad']['mean']:.1f}°)", offset=0.45 * j)
        _bars(axes[1], r["sam_drift"], c, f"{mod} (mean {r['sam_drift']['mean']:.2f}°)",
              offset=0.45 * j)
        ang = np.asarray(r["procrustes"]["angles_deg"], dtype=float)
        axes[2].plot(np.arange(1, ang.size + 1), ang, color=c,
                     label=f"{mod} (explained {r['procrustes']['explained']:.2f})")
    axes[0].set(title="per-sample rotation (RAD)", xlabel="angle (deg)", ylabel="share")
    axes[1].set(title="self-angle drift (SAM)", xlabel="|Δ angle| (deg)")
    axes[1].set_xscale("symlog", linthresh=1.0)
    axes[2].set(title="Procrustes principal angles", xlabel="plane (sorted)",
                ylabel="angle (deg)")
    for ax in axes:
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


@styled
def plot_deviation(dev, path, title: str = "", max_points: int = 3000) -> Path:
    """Image vs text per-sample angle (scatter), positive-pair cosine shift, top-1 changes.

    Parameters
    ----------
    dev : DeviationResult
        :func:`sdtools.deviation`'s result.
    path : str or Path
        The figure file (.png, .pdf or .svg).
    title : str
        A title above the panels.
    max_points : int
        Captions drawn in the scatter at most.

    Returns
    -------
    Path
        The file written.

    See Also
    --------
    deviation, deviation_report : Make the result drawn here.
    plot_rotation : The intra-modal figure.

    Examples
    --------
    >>> import os, tempfile, numpy as np, sdtools
    >>> V = np.random.default_rng(0).standard_normal((60, 8))
    >>> dev = sdtools.deviation(V, V, V, V + 0.1, np.arange(60))
    >>> sdtools.plot_deviation(dev, os.path.join(tempfile.mkdtemp(), "dev.pdf")).suffix
    '.pdf'
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.3))
    n = dev.text_angles.size
    pick = np.random.default_rng(0).choice(n, min(n, max_points), replace=False)
    ax = axes[0]
    ax.scatter(dev.image_angles[pick], dev.text_angles[pick], s=3, alpha=0.4, color="#444")
    hi = float(max(dev.image_angles.max(), dev.text_angles.max(), 1.0))
    ax.plot([0, hi], [0, hi], color="#999", lw=0.8, ls="--")
    ax.set(title="rotation: image vs caption", xlabel="image angle (deg)",
           ylabel="caption angle (deg)")
    shift = dev.pos_shift
    axes[1].hist(shift, bins=40, color="#9467bd", alpha=0.85)
    axes[1].axvline(0, color="#999", lw=0.8, ls="--")
    axes[1].set(title=f"positive-pair cosine shift (mean {shift.mean():+.3f})",
                xlabel="cos_b - cos_a", ylabel="captions")
    top = dev.top1_changes()
    names = ["t2i", "i2t"]
    x = np.arange(2)
    axes[2].bar(x - 0.2, [top[k]["lost"] for k in names], 0.4, label="lost", color="#d62728")
    axes[2].bar(x + 0.2, [top[k]["gained"] for k in names], 0.4, label="gained",
                color="#2ca02c")
    axes[2].set_xticks(x, ["text→image", "image→text"])
    axes[2].set(title="top-1 hits lost / gained", ylabel="queries")
    axes[2].legend(frameon=False)
    for a in axes:
        a.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)
