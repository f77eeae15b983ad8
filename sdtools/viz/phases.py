"""Paper-style figures of a multi-phase report (``report.json`` of a continual run).

Each function takes the report dict (and, where per-sample data is needed, the run
directory) and writes PNG and PDF. One consistent colour per method; sized for a paper column
(3.4 in) or page (7 in).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..measures.summary import Interval
from ..run_report import RunReport, as_report
from .runfig import (
    MOD_STYLE,
    as_float,
    hist_bars,
    is_dashed,
    method_colour,
    method_names,
    panel_grid,
    probe_of,
    reads_report,
)
from .style import pyplot, save_both, styled


@styled
@reads_report
def fig_rad(report, out) -> list[Path]:
    """1. Per-sample rotation angle (RAD) against phase 0: a panel per phase, rows = methods."""
    methods = method_names(report)
    T = max(len(report.methods[m].geometry) for m in methods)
    fig, axes = panel_grid(len(methods), max(T, 1), h_row=1.3)
    for i, m in enumerate(methods):
        geo = report.methods[m].geometry
        for t in range(max(T, 1)):
            ax = axes[i, t]
            if t >= len(geo):
                ax.axis("off")
                continue
            for j, mod in enumerate(("image", "text")):
                r = geo[t].vs_phase0.modality(mod).rad
                hist_bars(ax, r, MOD_STYLE[mod], f"{mod} {r.mean:.0f}°", 0.45 * j)
            ax.legend(frameon=False, fontsize=6)
            if i == 0:
                ax.set_title(f"phase {geo[t].phase} vs 0")
            if t == 0:
                ax.set_ylabel(f"{m}\nshare", color=method_colour(report, m))
            if i == len(methods) - 1:
                ax.set_xlabel("rotation angle (deg)")
    fig.suptitle("Rotation angle distribution (RAD) against phase 0", fontsize=9)
    fig.tight_layout()
    return save_both(fig, Path(out), "fig1_rad")


@styled
@reads_report
def fig_sam(report, out) -> list[Path]:
    """2. SAM drift beside RAD: per phase, mean rotation vs mean self-angle drift."""
    methods = method_names(report)
    fig, axes = panel_grid(1, 2, h_row=2.4)
    for m in methods:
        geo = report.methods[m].geometry
        ph = [g.phase for g in geo]
        for mod, ls in (("image", "-"), ("text", "--")):
            axes[0, 0].plot(ph, [g.vs_phase0.modality(mod).rad.mean for g in geo], ls,
                            marker="o", ms=3, color=method_colour(report, m), label=f"{m} {mod}")
            axes[0, 1].plot(ph, [g.vs_phase0.modality(mod).sam_drift.mean
                                     for g in geo], ls,
                            marker="o", ms=3, color=method_colour(report, m))
    axes[0, 0].set(title="RAD mean vs phase 0 (rotation)", xlabel="phase", ylabel="deg")
    axes[0, 1].set(title="SAM drift mean vs phase 0 (topology)", xlabel="phase", ylabel="deg")
    axes[0, 0].legend(frameon=False, fontsize=6, ncol=2)
    for ax in axes.flat:
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("Rotation versus topology change (solid: images, dashed: captions)",
                 fontsize=9)
    fig.tight_layout()
    return save_both(fig, Path(out), "fig2_sam_vs_rad")


@styled
@reads_report
def fig_procrustes(report, out) -> list[Path]:
    """3. Procrustes principal-angle spectra per phase, with the share a rotation explains."""
    methods = method_names(report)
    fig, axes = panel_grid(1, len(methods), h_row=2.2, sharey=True)
    for i, m in enumerate(methods):
        ax = axes[0, i]
        geo = report.methods[m].geometry
        cmap = pyplot().get_cmap("viridis")
        for k, g in enumerate(geo):
            p = g.vs_phase0.image.procrustes
            ang = np.asarray(p.angles_deg, dtype=float)
            held = 100 * as_float(p.explained_heldout)
            ax.plot(np.arange(1, ang.size + 1), ang, color=cmap(k / max(len(geo) - 1, 1)),
                    label=f"ph {g.phase}: {held:.0f}% held out, "
                          f"rig. {as_float(p.rigidity):.2f}")
        ax.set_title(m, color=method_colour(report, m))
        ax.set_xlabel("plane (sorted)")
        if i == 0:
            ax.set_ylabel("principal angle (deg)")
        if geo:
            ax.legend(frameon=False, fontsize=6)
    fig.suptitle("Procrustes rotation from phase 0 (images): principal angles and share of "
                 "change explained", fontsize=9)
    fig.tight_layout()
    return save_both(fig, Path(out), "fig3_procrustes")


@styled
@reads_report
def fig_deviation(report, out, run_dir=None) -> list[Path]:
    """4. Inter-modal deviation at the last phase: image vs caption angle, pair cosine shift,
    top-1 hits lost and gained per phase."""
    from ..measures.angles import sample_angles

    methods = method_names(report)
    fig, axes = panel_grid(len(methods), 3, h_row=1.6)
    for i, m in enumerate(methods):
        geo = report.methods[m].geometry
        if not geo:
            for ax in axes[i]:
                ax.axis("off")
            continue
        last = geo[-1].vs_phase0.deviation
        ax = axes[i, 0]
        a = probe_of(run_dir, m, 0) if run_dir else None
        b = probe_of(run_dir, m, geo[-1].phase) if run_dir else None
        if a is not None and b is not None:
            va = sample_angles(a.image, b.image)[a.image_of_text]
            ta = sample_angles(a.text, b.text)
            pick = np.random.default_rng(0).choice(len(ta), min(len(ta), 1500), replace=False)
            ax.scatter(va[pick], ta[pick], s=2, alpha=0.35, color=method_colour(report, m))
            hi = float(max(va.max(), ta.max()))
            ax.plot([0, hi], [0, hi], color="#999", lw=0.7, ls="--")
            ax.set(xlabel="image angle (deg)")
        else:
            hist_bars(ax, last.unsync, dict(color=method_colour(report, m)), "image - caption",
                      0.0)
            ax.set(xlabel="unsync (deg)")
        if i == 0:
            ax.set_title("rotation: image vs caption", fontsize=7)
        ax.set_ylabel(f"{m}\ncaption angle", color=method_colour(report, m))
        hist_bars(axes[i, 1], last.pos_shift, dict(color=method_colour(report, m)),
                  f"mean {last.pos_shift.mean:+.3f}", 0.0)
        axes[i, 1].legend(frameon=False, fontsize=6, loc="upper left")
        axes[i, 1].set(xlabel="cos shift of true pairs")
        if i == 0:
            axes[i, 1].set_title("pair cosine shift", fontsize=7)
        ph = [g.phase for g in geo]
        lost = [g.vs_phase0.deviation.top1.t2i.lost for g in geo]
        gained = [g.vs_phase0.deviation.top1.t2i.gained for g in geo]
        x = np.arange(len(ph))
        axes[i, 2].bar(x - 0.2, lost, 0.4, color="#d62728", label="lost")
        axes[i, 2].bar(x + 0.2, gained, 0.4, color="#2ca02c", label="gained")
        axes[i, 2].set_xticks(x, [str(p) for p in ph])
        axes[i, 2].set(xlabel="phase", ylabel="t2i queries")
        if i == 0:
            axes[i, 2].set_title("top-1 hits vs phase 0", fontsize=7)
            axes[i, 2].legend(frameon=False, fontsize=6, loc="upper left",
                              bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save_both(fig, Path(out), "fig4_deviation")


@styled
@reads_report
def fig_retrieval(report, out) -> list[Path]:
    """5. Retrieval matrices R[t][k] per method (heatmaps) and domain-0 forgetting curves."""
    plt = pyplot()
    methods = method_names(report)
    fig = plt.figure(figsize=(7.0, 2.2))
    gs = fig.add_gridspec(1, len(methods) + 1, width_ratios=[1] * len(methods) + [1.4])
    vmax = max(float(np.max(report.methods[m].r1)) for m in methods)
    for i, m in enumerate(methods):
        ax = fig.add_subplot(gs[0, i])
        r = np.asarray(report.methods[m].r1)
        ax.imshow(r, cmap="Blues", vmin=0, vmax=vmax, aspect="auto")
        for (t, k), v in np.ndenumerate(r):
            ax.text(k, t, f"{v:.0f}", ha="center", va="center", fontsize=6,
                    color="white" if v > 0.6 * vmax else "black")
        ax.set_title(m, color=method_colour(report, m))
        ax.set_xlabel("domain k")
        ax.set_xticks(range(r.shape[1]))
        ax.set_yticks(range(r.shape[0]))
        if i == 0:
            ax.set_ylabel("after phase t")
    ax = fig.add_subplot(gs[0, -1])
    for m in methods:
        r = np.asarray(report.methods[m].r1)
        ci = report.methods[m].r1_ci[: r.shape[0]]
        err = None
        if len(ci) == r.shape[0] and all(row[0] is not None for row in ci):
            lo = np.asarray([row[0][0] for row in ci])
            hi = np.asarray([row[0][1] for row in ci])
            err = np.clip(np.stack([r[:, 0] - lo, hi - r[:, 0]]), 0, None)
        ax.errorbar(range(r.shape[0]), r[:, 0], yerr=err, marker="o", ms=3,
                    color=method_colour(report, m), label=m, capsize=2,
                    ls="--" if is_dashed(report, m) else "-")
    ax.set(title="domain-0 R@1", xlabel="phase", ylabel="R@1 (%)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return save_both(fig, Path(out), "fig5_retrieval")


@styled
@reads_report
def fig_methods(report, out) -> list[Path]:
    """6. Methods side by side on the spatial-disorder summaries and retrieval."""
    from ..report import summary_rows

    rows = summary_rows(report)
    panels = [("avg_r1", "final avg R@1 (%)"), ("bwt", "BWT (R@1 points)"),
              ("rad_mean_image", "RAD mean, images (deg)"),
              ("sam_drift_image", "SAM drift mean, images (deg)"),
              ("unsync_abs_mean", "|unsync| mean (deg)"),
              ("relative_rotation_geodesic", "R_V^T R_T geodesic (deg)")]
    fig, axes = panel_grid(2, 3, h_row=1.7)
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        names = [r["method"] for r in rows]
        vals = [np.nan if r[key] is None else r[key] for r in rows]
        ax.bar(range(len(rows)), vals, color=[method_colour(report, n) for n in names])
        ax.set_xticks(range(len(rows)), names, rotation=30, fontsize=6)
        ax.set_title(title)
        ax.axhline(0, color="#999", lw=0.6)
    fig.suptitle("Does the method reduce spatial disorder? (last phase vs phase 0)", fontsize=9)
    fig.tight_layout()
    return save_both(fig, Path(out), "fig6_methods")


@styled
@reads_report
def fig_rotation_picture(report, out, run_dir=None, n_samples: int = 6) -> list[Path]:
    """7. A few samples' image embeddings across phases, projected on phase 0's top-2 PCs."""
    methods = method_names(report)
    fig, axes = panel_grid(1, len(methods), h_row=2.3)
    base = probe_of(run_dir, methods[0], 0) if run_dir else None
    for i, m in enumerate(methods):
        ax = axes[0, i]
        ax.set_title(m, color=method_colour(report, m))
        if base is None:
            ax.text(0.5, 0.5, "needs the run directory", ha="center", transform=ax.transAxes)
            continue
        mu = base.image.mean(0)
        _, _, vt = np.linalg.svd(base.image - mu, full_matrices=False)
        pick = np.random.default_rng(1).choice(base.n_images, n_samples, replace=False)
        T = len(report.methods[m].geometry)
        steps = []
        for t in range(T + 1):
            e = probe_of(run_dir, m, t)
            x = e.image[pick] / np.linalg.norm(e.image[pick], axis=1, keepdims=True)
            steps.append((x - mu) @ vt[:2].T)
        traj = np.stack(steps)  # (T+1, n, 2)
        bg = (base.image - mu) @ vt[:2].T
        ax.scatter(bg[:, 0], bg[:, 1], s=1, color="#ddd")
        for j in range(n_samples):
            ax.plot(traj[:, j, 0], traj[:, j, 1], "-", color=method_colour(report, m), lw=0.8,
                    alpha=0.8)
            ax.scatter(traj[0, j, 0], traj[0, j, 1], s=10, color="black", zorder=3)
            ax.scatter(traj[-1, j, 0], traj[-1, j, 1], s=10, marker="x",
                       color=method_colour(report, m), zorder=3)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Image embeddings of a few samples from phase 0 (dot) to the last phase (x), "
                 "on phase 0's first two principal axes", fontsize=8)
    fig.tight_layout()
    return save_both(fig, Path(out), "fig7_rotation_picture")


def _yerr(values: np.ndarray, cis: list[Interval | None]):
    """Error bars (2, n) from intervals, or None when any is missing."""
    if not cis or any(c is None for c in cis):
        return None
    lo = np.asarray([c.low for c in cis if c is not None])
    hi = np.asarray([c.high for c in cis if c is not None])
    return np.clip(np.stack([values - lo, hi - values]), 0, None)


@styled
@reads_report
def fig_domains(report, out) -> list[Path]:
    """8. Geometry per evaluation set (old domains first): RAD mean of images with its
    bootstrap interval, and the held-out share a rotation explains, after every phase."""
    methods = method_names(report)
    sets = []
    for m in methods:
        for g in report.methods[m].geometry:
            for name in g.vs_phase0.per_set or {}:
                if name not in sets:
                    sets.append(name)
    sets = sets or ["pooled"]
    fig, axes = panel_grid(2, len(sets), h_row=1.7, sharey="row")
    for j, name in enumerate(sets):
        for m in methods:
            geo = report.methods[m].geometry
            found = [(g.phase, g.vs_phase0 if name == "pooled"
                       else (g.vs_phase0.per_set or {}).get(name)) for g in geo]
            ph = [t for t, p in found if p is not None]
            parts = [p for _, p in found if p is not None]
            if not parts:
                continue
            rad = [p.image.rad for p in parts]
            mean = np.asarray([r.mean for r in rad])
            axes[0, j].errorbar(ph, mean, yerr=_yerr(mean, [r.mean_ci for r in rad]),
                                marker="o", ms=3, color=method_colour(report, m), label=m,
                                capsize=2)
            pro = [p.image.procrustes for p in parts]
            held = np.asarray([as_float(p.explained_heldout) for p in pro])
            axes[1, j].errorbar(ph, held, marker="o", ms=3, color=method_colour(report, m),
                                capsize=2,
                                yerr=_yerr(held, [p.explained_heldout_ci for p in pro]))
        axes[0, j].set_title(name, fontsize=7)
        axes[1, j].axhline(0, color="#999", lw=0.6)
        axes[1, j].set_xlabel("phase")
        for ax in axes[:, j]:
            ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0, 0].set_ylabel("RAD mean, images\n(deg, 95% CI)")
    axes[1, 0].set_ylabel("rotation explains,\nheld out (95% CI)")
    axes[0, -1].legend(frameon=False, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Geometry against phase 0 on each evaluation set", fontsize=9)
    fig.tight_layout()
    return save_both(fig, Path(out), "fig8_domains")


def draw_all(report: RunReport | dict, out, run_dir=None, progress: bool = False) -> list[Path]:
    """Every figure of a continual run (PNG and PDF).

    Parameters
    ----------
    report : RunReport or its dict
        The run's report (:func:`sdtools.build_report`; a dict is checked first).
    out : str or Path
        Folder the figures are written into (created).
    run_dir : str or Path, optional
        The run directory: the per-sample figures (4 and 7) read its probe embeddings.
    progress : bool
        A progress bar over the figures.

    Returns
    -------
    list of Path
        The files written (two per figure).

    Raises
    ------
    RunError
        ``report`` is a dict whose shape this version does not read (``ReportShapeError``).
    EmbeddingsError
        A probe file in ``run_dir`` exists but cannot be read.

    See Also
    --------
    build_report : Makes the report drawn here.
    plot_rotation, plot_deviation : Figures of a single pair of checkpoints.

    Examples
    --------
    >>> import tempfile, numpy as np, sdtools
    >>> from sdtools.measures.retrieval import retrieval
    >>> run = sdtools.RunDir(tempfile.mkdtemp())  # a run of a method "sgd": phase 0 and 1
    >>> run.write_config({"data": "synthetic", "methods": ["sgd"], "phases": "domains"})
    >>> rng = np.random.default_rng(0)
    >>> V = rng.standard_normal((60, 8)).astype(np.float32)
    >>> for t in (0, 1):
    ...     moved = V + 0.2 * t * rng.standard_normal(V.shape).astype(np.float32)
    ...     e = sdtools.Embeddings(moved, V, np.arange(60))
    ...     run.phase_dir("sgd", t).mkdir(parents=True)
    ...     run.write_probe("sgd", t, e)
    ...     r = retrieval(e.image, e.text, e.image_of_text).to_dict()
    ...     run.write_eval("sgd", t, ["set0"], [r], {})
    >>> files = sdtools.draw_all(sdtools.build_report(run), run.figures_dir, run_dir=run.path)
    >>> len(files), files[0].name
    (16, 'fig1_rad.png')
    """
    out = Path(out)
    report = as_report(report)
    steps = [lambda: fig_rad(report, out), lambda: fig_sam(report, out),
             lambda: fig_procrustes(report, out), lambda: fig_deviation(report, out, run_dir),
             lambda: fig_retrieval(report, out), lambda: fig_methods(report, out),
             lambda: fig_rotation_picture(report, out, run_dir), lambda: fig_domains(report, out)]
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="figures", unit="fig", leave=False)
    paths = []
    for draw in steps:
        paths += draw()
    return paths


__all__ = ["draw_all", "fig_rad", "fig_sam", "fig_procrustes", "fig_deviation", "fig_domains",
           "fig_retrieval", "fig_methods", "fig_rotation_picture"]
