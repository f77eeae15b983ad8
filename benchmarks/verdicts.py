"""Calibration of the study verdicts over trade-off shapes (:mod:`modx.frontier_sim`).

    python -m benchmarks.verdicts            # the full table, appended to RESULTS.md
    python -m benchmarks.verdicts --quick    # fewer studies per row, printed only

Per row (shape x spacing x noise): over N simulated studies of a method lying on fine-tuning's
curve, how often the rule said "holds" (must be at most 5%) and "does not hold", how often the
earlier chord rule said "holds" in the same studies, and with a planted +2-point effect how
often the rule said "holds" (power) and how the seeds were classified. Spacings: the
fine-tuning sweeps of the presets (``modx.demo.STUDY_PRESETS``) mapped to learning, and
``dense`` (the domains range every 2 learning points: what bracketing would give). A
20-point retention drop over the sweep; noise in retention points (half of it on learning).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from modx.frontier import ALPHA
from modx.frontier_sim import DENSE, SHAPES, rates

SPACINGS = ("domains", "shift", "quick", DENSE)
NOISES = (0.5, 1.0, 2.0)


def table(n: int, seed: int = 0, drop: float = 20.0):
    rng = np.random.default_rng(seed)
    rows = []
    for shape in SHAPES:
        for spacing in SPACINGS:
            for noise in NOISES:
                null = rates(rng, shape, spacing, noise, 0.0, n, drop)
                real = rates(rng, shape, spacing, noise, 2.0, n, drop)
                rows.append({"shape": shape, "spacing": spacing, "noise": noise, "null": null,
                             "real": real})
    return rows


def markdown(rows, n: int) -> str:
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    lines = [f"{n} simulated studies per cell and row; \"holds\" at one-sided {ALPHA:g} "
             "(Holm over one planned value).", "",
             "| shape | largest null \"holds\" (any spacing, noise) | power, +2 points: "
             "domains / shift / quick / dense (noise 0.5 .. 2) |", "| --- | --- | --- |"]
    for shape in SHAPES:
        sub = [r for r in rows if r["shape"] == shape]
        worst = max(r["null"]["holds"] for r in sub)
        power = " / ".join(
            f"{pct(max(r['real']['holds'] for r in sub if r['spacing'] == s))} .. "
            f"{pct(min(r['real']['holds'] for r in sub if r['spacing'] == s))}"
            for s in SPACINGS)
        lines.append(f"| {shape} | {pct(worst)} | {power} |")
    lines += ["", "| shape | spacing | noise | null: holds | null: does not hold | null: chord "
              "rule holds | +2: holds | +2 seeds: matched / dominating / dominated / "
              "incomparable |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        c = r["real"]["classes"]
        cls = " / ".join(pct(c[k]) for k in ("matched", "dominating", "dominated",
                                               "incomparable"))
        lines.append(f"| {r['shape']} | {r['spacing']} | {r['noise']:g} | "
                     f"{pct(r['null']['holds'])} | {pct(r['null']['does not hold'])} | "
                     f"{pct(r['null']['chord_holds'])} | {pct(r['real']['holds'])} | {cls} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int, default=None, help="studies per cell (default 400; 60 quick)")
    args = ap.parse_args(argv)
    n = args.n or (60 if args.quick else 400)
    t0 = time.time()
    rows = table(n)
    text = markdown(rows, n)
    worst = max(r["null"]["holds"] for r in rows)
    print(text)
    print(f"\nlargest null holds rate {100 * worst:.1f}% ({time.time() - t0:.0f} s)")
    if not args.quick:
        from .harness import ROOT, commit, machine, today

        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(f"\n## {today()} · commit {commit()} · {machine()} · verdict calibration "
                     f"over trade-off shapes ({time.time() - t0:.0f} s)\n\n{text}\n")
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
