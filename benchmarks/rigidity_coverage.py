"""How often ``rigidity_ci`` covers the planted share, and the bias of ``rigidity``, for a global
rotation (two planes, 30 and 20 degrees) with 10-degree jitter: independent per item, or
shared by each of 20 classes (given as ``groups``). N = 3 D on power-law data.

    python -m benchmarks.rigidity_coverage [--probes 20] [--dims 48 256 1024] [--record]

``--record`` appends the table to ``benchmarks/RESULTS.md`` with the date, commit and machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sdtools
from sdtools.measures.planted import clip_like, jitter, plane_rotation, unit


def probe(kind: str, seed: int, d: int, ratio: int = 3, classes: int = 20,
          deg: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """``(A, B, groups, share)``: jitter (``indep``) or a drift per class (``class``), then the
    rotation; ``share`` = 1 - ||A R - B||^2 / ||A - B||^2, the rotation's share of the change."""
    rng = np.random.default_rng(seed)
    n = ratio * d
    X, basis = clip_like(rng, n, d, "power")
    R = plane_rotation(basis, [30.0, 20.0])
    lab = None
    if kind == "indep":
        A = X
        B = jitter(A, deg, rng) @ R
    else:
        lab = rng.integers(0, classes, n)
        A = unit(unit(rng.standard_normal((classes, d)))[lab] + 0.5 * X)
        E = unit(rng.standard_normal((classes, d)))[lab]
        E = unit(E - (E * A).sum(1, keepdims=True) * A)
        B = (np.cos(np.radians(deg)) * A + np.sin(np.radians(deg)) * E) @ R
    share = 1.0 - float(np.sum((A @ R - B) ** 2) / np.sum((A - B) ** 2))
    return A, B, lab, share


def row(kind: str, d: int, probes: int) -> str:
    covered, errs, t0 = 0, [], time.perf_counter()
    for s in range(probes):
        A, B, lab, share = probe(kind, s, d)
        fit = sdtools.procrustes(A, B, groups=lab, n_boot=300)
        ci = fit.rigidity_ci
        covered += int(ci.low <= share <= ci.high)
        errs.append(fit.rigidity - share)
        width = ci.high - ci.low
    what = "20 classes drifting (groups)" if kind == "class" else "independent jitter"
    e = np.asarray(errs)
    return (f"| {what} | {d} | {3 * d} | {probes} | {covered}/{probes} | {e.mean():+.3f} | "
            f"{e.std():.3f} | {width:.3f} | {time.perf_counter() - t0:.0f} s |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--dims", type=int, nargs="+", default=[48, 256, 1024])
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args(argv)
    lines = ["| change | D | N | probes | covered | bias | sd | last width | time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in ("class", "indep"):
        for d in args.dims:
            lines.append(row(kind, d, args.probes if d < 1024 else max(args.probes // 2, 1)))
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    if args.record:
        from .harness import ROOT, commit, machine, today

        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(f"\n## {today()} · commit {commit()} · {machine()} · rigidity_ci coverage, "
                     f"rotation plus jitter, N = 3 D\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
