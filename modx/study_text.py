"""A study's ``report.md``: the claims with their verdicts, every method against the
baseline's points, and the paired differences, read from ``study.json``'s records
(:mod:`modx.study_records`)."""

from __future__ import annotations

from .frontier import ALPHA, MIN_SEEDS
from .study_records import (
    Claims,
    FrontierClaim,
    FrontierRow,
    IntervalClaim,
    PairedRow,
    RotationClaim,
    TInterval,
)

MEASURE_NAMES = {"retention": "end-of-stream retention", "max_drop": "minus the largest drop",
                 "area_old": "area under the old-domain curve"}


def _f(x, nd=2):
    return "–" if x is None else f"{x:+.{nd}f}"


def _ci(d: TInterval) -> str:
    return "–" if not d.ci else f"[{d.ci[0]:+.2f}, {d.ci[1]:+.2f}]"


def _claim_cells(c: IntervalClaim | RotationClaim | FrontierClaim) -> tuple[str, str, int | str]:
    """Mean, interval and seeds of a claim's headline statistic, as text."""
    if isinstance(c, FrontierClaim):
        return _f(c.lower.mean, 3), _ci(c.lower), c.lower.n_seeds
    if isinstance(c, RotationClaim):
        parts = {"rigidity image": c.rigidity_image, "rigidity text": c.rigidity_text,
                 "topology kept image": c.topology_kept_image,
                 "topology kept text": c.topology_kept_text}
        text = ", ".join(f"{k} {_f(v.mean, 2)} {_ci(v)}" for k, v in parts.items())
        return text, "", min(v.n_seeds for v in parts.values())
    return _f(c.mean, 3), _ci(TInterval(c.mean, c.ci, c.n_seeds)), c.n_seeds


def markdown(study: dict) -> str:
    from sdtools.io import md_tag

    lines = [f"# Study {study['plan']['name']}", "", md_tag("study"), "",
             *([f"**Partial: {study['cells_done']} of {study['cells_planned']} cells "
                "finished.**", ""] if study.get("partial") else []),
             f"Seeds {study['plan']['seeds']}; cells {len(study['cells'])}; intervals: 95% t "
             "over seeds; one alpha, one-sided "
             f"{ALPHA:g}, for every claim. Methods are placed per seed against the baseline's "
             "best trade-off: with E(l) the best stability of a baseline run learning l or "
             "more, the method's gap at its own learning is at least `lower` (its stability "
             "minus E at the baseline learning next below its own) and at most `upper` (minus "
             "E at its own learning; fine-tuning's points include (0, 0), lr -> 0); "
             "dominating when lower > 0, dominated when upper < 0, matched inside the "
             "baseline's learning range, else incomparable. "
             "Claims (d) and (e) test the mean lower bound above 0 (t, Holm over the planned "
             f"values) and need at least {MIN_SEEDS} seeds with spread.", "", "## Claims", "",
             "| claim | statistic | mean | 95% CI | seeds | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c in Claims.from_dict(study["claims"], "study.claims").all():
        mean, ci, n = _claim_cells(c)
        note = ""
        if isinstance(c, FrontierClaim):
            note = f" ({c.reason})" if c.reason else ""
            if c.value is not None:
                note += f" (best value {c.value})"
        lines.append(f"| {c.claim} | {c.statistic} | {mean} | {ci} | {n} | "
                     f"{c.verdict}{note} |")
        if not isinstance(c, FrontierClaim):
            continue
        if c.joint is not None:
            jm, jf = c.joint.joint_minus_modx_final_avg, c.joint.joint_minus_finetune_final_avg
            lines.append(f"| joint training above both (final average) | paired final_avg "
                         f"difference, joint minus modx / minus finetune | {_f(jm.mean, 3)} / "
                         f"{_f(jf.mean, 3)} | {_ci(jm)} / {_ci(jf)} | {jm.n_seeds} | "
                         f"{c.joint.joint_above_both} |")
        for m, b in c.by_measure.items():
            if m != "retention":
                note = f" (best value {b.value})" if b.value is not None else ""
                lines.append(f"| the same, on {MEASURE_NAMES[m]} | lower bound | "
                             f"{_f(b.lower.mean, 3)} | {_ci(b.lower)} | "
                             f"{b.lower.n_seeds} | {b.verdict}{note} |")
    pv = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
    frontier = [FrontierRow.from_dict(g, f"study.frontier[{i}]")
                for i, g in enumerate(study.get("frontier", []))]
    for measure in MEASURE_NAMES:
        rows = [g for g in frontier if g.measure == measure]
        if not rows:
            continue
        lines += ["", f"## Against fine-tuning's points: {MEASURE_NAMES[measure]}", "",
                  "| method | knob | matched / dominating / dominated / incomparable | lower "
                  "bound | 95% CI | p (t) | p (sign-flip) | upper bound | 95% CI | chord gap |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for g in rows:
            lo, up = g.gap.lower, g.gap.upper
            cls = " / ".join(str(n) for n in (g.gap.classes.matched, g.gap.classes.dominating,
                                              g.gap.classes.dominated,
                                              g.gap.classes.incomparable))
            lines.append(f"| {g.method} | {g.knob} | {cls} | {_f(lo.mean)} | "
                         f"{_ci(lo)} | {pv(lo.p)} | {pv(lo.p_sign_flip)} | "
                         f"{_f(up.mean)} | {_ci(up)} | {_f(g.gap.chord.mean)} |")
    lines += ["", "## Per seed, end-of-stream retention against fine-tuning's points", "",
              "| method | knob | seed | class | learning | retention | lower | upper | chord "
              "gap |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for g in frontier:
        if g.measure != "retention":
            continue
        for seed, v in g.gap.per_seed.items():
            lines.append(f"| {g.method} | {g.knob} | {seed} | {v.class_} | "
                         f"{_f(v.learning)} | {_f(v.stability)} | {_f(v.lower)} | "
                         f"{_f(v.upper)} | {_f(v.gap)} |")
    lines += ["", "## Paired differences against finetune at the reference lr", "",
              "| method | knob | metric | mean | 95% CI | seeds |",
              "| --- | --- | --- | --- | --- | --- |"]
    for i, row in enumerate(study["paired"]):
        p = PairedRow.from_dict(row, f"study.paired[{i}]")
        lines.append(f"| {p.method} | {p.knob} | {p.metric} | {_f(p.diff.mean)} | "
                     f"{_ci(p.diff)} | {p.diff.n_seeds} |")
    return "\n".join(lines) + "\n"


__all__ = ["MEASURE_NAMES", "markdown"]
