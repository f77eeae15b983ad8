"""The run report as text: the README-style summary rows and ``report.md``."""

from __future__ import annotations

import numpy as np

from .geometry_record import CrossNullRecord
from .measures.summary import interval_text
from .run_report import MethodReport, RunReport, as_report


def summary_rows(report: RunReport | dict) -> list[dict]:
    """One row per method: the numbers the README's results table shows.

    Parameters
    ----------
    report : RunReport or its dict
        A continual run's report (a dict is checked first).

    Returns
    -------
    list of dict
        Per method: final average R@1, BWT, domain-0 R@1 at phase 0 and last, the last
        phase's geometry against phase 0 (None where there is no later phase), and
        ``extras_mean``: the mean over phases 1.. of each of the method's extras.
    """
    rows = []
    for m, r in as_report(report).methods.items():
        last = r.geometry[-1].vs_phase0 if r.geometry else None
        rows.append({
            "method": m,
            "avg_r1": r.avg,
            "bwt": r.bwt,
            "domain0_r1_last": r.r1[-1][0],
            "domain0_r1_phase0": r.r1[0][0],
            "rad_mean_image": last.image.rad.mean if last else None,
            "rad_mean_text": last.text.rad.mean if last else None,
            "sam_drift_image": last.image.sam_drift.mean if last else None,
            "sam_drift_text": last.text.sam_drift.mean if last else None,
            "explained_image": last.image.procrustes.explained if last else None,
            "heldout_image": last.image.procrustes.explained_heldout if last else None,
            "rigidity_image": last.image.procrustes.rigidity if last else None,
            "unsync_abs_mean": last.deviation.unsync_abs_mean if last else None,
            "relative_rotation_geodesic":
                last.deviation.relative_rotation.geodesic_deg if last else None,
            "extras_mean": {k: _mean(v[1:]) for k, v in r.extras.items()},
        })
    return rows


def _extras_text(extras: dict) -> str:
    return ", ".join(f"{k} {_fmt(v, 3)}" for k, v in extras.items()) or "–"


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def markdown(report: RunReport | dict) -> str:
    """A Markdown report: summary table and every method's retrieval matrix."""
    f = _fmt
    report = as_report(report)

    lines = ["# Continual run report", "", "<!-- written by sdtools -->", ""]
    cfg = report.config
    lines.append(f"Data `{cfg.get('data')}`, phases `{cfg.get('phases')}`, methods "
                 f"{', '.join(report.methods)}.")
    lines += ["", "## Summary (after the last phase; geometry against phase 0)", "",
              "| method | avg R@1 | BWT | domain-0 R@1 (phase 0 → last) | RAD image / text (deg) "
              "| SAM drift image / text (deg) | rotation explains in / held out (image) "
              "| rigidity (image) | unsync mean (deg) | method's extras (mean over phases) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary_rows(report):
        lines.append(
            f"| {row['method']} | {f(row['avg_r1'])} | {f(row['bwt'])} | "
            f"{f(row['domain0_r1_phase0'])} → {f(row['domain0_r1_last'])} | "
            f"{f(row['rad_mean_image'])} / {f(row['rad_mean_text'])} | "
            f"{f(row['sam_drift_image'], 3)} / {f(row['sam_drift_text'], 3)} | "
            f"{f(row['explained_image'], 3)} / {f(row['heldout_image'], 3)} | "
            f"{f(row['rigidity_image'], 2)} | {f(row['unsync_abs_mean'])} | "
            f"{_extras_text(row['extras_mean'])} |")
    for m, r in report.methods.items():
        sets = r.sets
        lines += ["", f"## {m}: R@1 (mean of both directions), row = after phase t", "",
                  "| phase | " + " | ".join(sets) + " |",
                  "| --- | " + " | ".join("---" for _ in sets) + " |"]
        for t, r1_row in enumerate(r.r1):
            lines.append(f"| {t} | " + " | ".join(f"{x:.1f}" for x in r1_row) + " |")
        if r.max_drop:
            lines.append("| largest drop | " + " | ".join(
                "–" if x is None else f"{x:.1f}" for x in r.max_drop) + " |")
        lines += _classification_lines(r)
        lines += _geometry_lines(r)
    return "\n".join(lines) + "\n"


def _classification_lines(r: MethodReport) -> list[str]:
    """Zero-shot and linear-probe accuracy per evaluation set, phase 0 -> last phase."""
    if not r.zero_shot:
        return []
    lines = ["", "Classification accuracy (%), phase 0 → last phase, per evaluation set:", "",
             "| task | " + " | ".join(r.sets) + " |",
             "| --- | " + " | ".join("---" for _ in r.sets) + " |"]
    for kind, label in (("zero_shot", "zero-shot"), ("linear_probe", "linear probe")):
        for task, rows in getattr(r, kind).items():
            cells = [f"{_fmt(a, 1)} → {_fmt(b, 1)}" for a, b in zip(rows[0], rows[-1],
                                                                    strict=True)]
            lines.append(f"| {task} {label} | " + " | ".join(cells) + " |")
    lines += ["", "Zero-shot MTIL metrics (%; Transfer: sets before their own phase, Avg: all "
              "phases, Last: after the last phase):", "",
              "| task | Transfer | Avg | Last |", "| --- | --- | --- | --- |"]
    for task, m in r.mtil.items():
        lines.append(f"| {task} | {_fmt(m['transfer'], 1)} | {_fmt(m['avg'], 1)} | "
                     f"{_fmt(m['last'], 1)} |")
    lines += _zero_shot_matrix(r)
    return lines


def _zero_shot_matrix(r: MethodReport) -> list[str]:
    """The zero-shot accuracy matrix of every task, row = after phase t (beside R[t][k])."""
    lines = []
    for task, rows in r.zero_shot.items():
        lines += ["", f"Zero-shot top-1 (%), {task}, row = after phase t:", "",
                  "| phase | " + " | ".join(r.sets) + " |",
                  "| --- | " + " | ".join("---" for _ in r.sets) + " |"]
        lines += [f"| {t} | " + " | ".join(_fmt(x, 1) for x in row) + " |"
                  for t, row in enumerate(rows)]
    return lines


def _geometry_lines(r: MethodReport) -> list[str]:
    """Geometry of the last phase against phase 0, pooled and per evaluation set."""
    if not r.geometry:
        return []
    g = r.geometry[-1].vs_phase0
    parts = {"pooled": g, **(g.per_set or {})}
    lines = ["", "Last phase against phase 0 (images; [low, high]: 95% bootstrap intervals "
             "over probe items):", "", "| probe | RAD mean (deg) | rank | explained in / held "
             "out | rigidity | topology kept | cross-applied residual (in-step null) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, p in parts.items():
        rad, pro = p.image.rad, p.image.procrustes
        cross = p.deviation.cross_residual
        lines.append(
            f"| {name} | {rad.mean:.1f}{interval_text(rad.mean_ci, '{:.1f}')} | "
            f"{pro.rank} | "
            f"{pro.explained:.2f} / {_fmt(pro.explained_heldout)}"
            f"{interval_text(pro.explained_heldout_ci)} | "
            f"{_fmt(pro.rigidity)}{interval_text(pro.rigidity_ci)} | "
            f"{_fmt(p.image.topology.topology_kept)} | "
            f"{_fmt(cross.mean, 3)}{_null_text(cross.null)} |")
    lines += [f"| {name} | not measured: {why} | | | | | |"
              for name, why in (g.per_set_skipped or {}).items()]
    return lines


def _fmt(x, nd: int = 2) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _null_text(null: CrossNullRecord | None) -> str:
    return "" if null is None else f" ({null.mean.value:.3f})"
