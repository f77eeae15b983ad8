"""The CLI's result tables (rich), kept apart from the commands that print them."""

from __future__ import annotations

import typer


def rotation_table(rep, title: str, console) -> None:
    from rich.table import Table

    from .measures.summary import interval_text as _ci

    mods = rep.modalities()
    iv = next(iter(mods.values())).rad.mean_ci
    t = Table(title=title, caption=None if iv is None else
              f"\\[low, high]: {100 * iv.level:.0f}% bootstrap intervals over probe items "
              f"({iv.n_boot} resamples, seed {iv.seed})")
    t.add_column("measure")
    for m in mods:
        t.add_column(m, justify="right")

    def row(label, fn):
        t.add_row(label, *[fn(r) for r in mods.values()])

    row("RAD mean / median (deg)", lambda r: f"{r.rad.mean:.2f} / {r.rad.median:.2f}")
    if all(r.rad.mean_ci is not None for r in mods.values()):
        row("RAD mean 95% CI", lambda r: _ci(r.rad.mean_ci, "{:.2f}").strip())
    row("RAD share > 30 deg", lambda r: f"{100 * r.rad.share_above[30.0]:.1f}%")
    row("SAM drift mean (deg)", lambda r: f"{r.sam_drift.mean:.3f}" + (
        _ci(r.sam_drift.mean_ci, "{:.3f}") if r.sam_drift.exact
        else f" ± {r.sam_drift.stderr:.3f} (est.)"))
    row("SAM drift p95 (deg)", lambda r: f"{r.sam_drift.quantiles[0.95]:.3f}")
    row("Procrustes rank (determined dims)", lambda r: f"{r.procrustes.rank}")
    row("Procrustes max / mean angle", lambda r:
        f"{r.procrustes.max_angle:.2f} / {r.procrustes.mean_angle:.2f}")
    row("reflection (significant)", lambda r: "yes" if r.procrustes.reflection else "no")
    row("rotation explains, in sample", lambda r: f"{100 * r.procrustes.explained:.1f}%"
        + _ci(r.procrustes.explained_ci, "{:.1f}", 100))
    row("rotation explains, held out", lambda r: "– (below precision)"
        if r.procrustes.explained_heldout is None
        else f"{100 * r.procrustes.explained_heldout:.1f}%"
        + _ci(r.procrustes.explained_heldout_ci, "{:.1f}", 100))
    row("rigidity (0 jitter, 1 rotation)", lambda r: "– (below precision)"
        if r.procrustes.rigidity is None else f"{r.procrustes.rigidity:.3f}"
        + _ci(r.procrustes.rigidity_ci, "{:.3f}"))
    row("topology kept (0 jitter, 1 rotation or order kept)", lambda r: "–"
        if r.topology.topology_kept is None else f"{r.topology.topology_kept:.3f}"
        + f" (rank corr {r.topology.rank_corr:.4f} vs null {r.topology.rank_corr_null:.4f})")
    row("topology kept, metric (cone changes read < 0)", lambda r: "–"
        if r.topology.metric_kept is None else f"{r.topology.metric_kept:.3f}"
        + f" (SAM {r.topology.drift:.2f} vs null {r.topology.null:.2f} deg)")
    row("residual angle mean (deg)",
        lambda r: f"{float(r.procrustes.residual_angles_deg.mean()):.2f}")
    row("linear CKA", lambda r: "–" if r.linear_cka is None else f"{r.linear_cka:.4f}")
    row(f"mutual kNN (k={next(iter(mods.values())).knn_k})", lambda r: f"{r.mutual_knn:.3f}")
    console.print(t)
    for m, r in mods.items():
        for w in r.procrustes.warnings:
            typer.echo(f"warning ({m}): {w}", err=True)


def cross_text(c: dict) -> str:
    """The cross-applied residuals beside their in-step null (range over halvings)."""
    if c["mean"] is None:
        return f"– ({c.get('withheld') or 'no direction determined by both'})"

    def num(x):
        return "–" if x is None else f"{x:.3f}"

    out = f"{num(c['text_by_image'])} / {num(c['image_by_text'])}"
    null = c.get("null")
    if null:
        m = null["mean"]
        out += (f" (in-step null {m['value']:.3f}, range {m['low']:.3f}-{m['high']:.3f}: "
                f"{'above' if c['above_null'] else 'within'})")
    return out
