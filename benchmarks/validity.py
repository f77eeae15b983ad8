"""Validity table: planted truths shaped like CLIP embeddings against what each measure reads.

    python -m benchmarks.validity            # print the table and append it to RESULTS.md
    python -m benchmarks.validity --quick    # the smaller grid (what the tests run), no record
    python -m benchmarks.validity --properties 1000   # drawn shapes and changes against each
                                             # measure's invariants; misses and worst cases

Data: isotropic and power-law spectra (variance ~ 1/k) and a cone of mean cosine 0.8
(:mod:`sdtools.measures.planted`); rotations of [80, 45, 20] degrees in the strongest or the
weakest planes with 2 degrees of jitter (rigidity's truth: the share of the change the
planted rotation explains); pure jitter; a 0.01-degree rotation; a bfloat16
re-save; one modality turned, or both in step, with 3-5 captions per image. Each row: the
truth, what was read, the tolerance, and whether it holds.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

import sdtools
from sdtools.measures.planted import captions, clip_like, jitter, plane_rotation, unit

ANGLES = (80.0, 45.0, 20.0)


def _tol_angles(n: int, d: int) -> float:
    """Angle tolerance (degrees) of the planted-rotation rows: fitting noise falls with N/D."""
    return 10.0 if n < 4 * d else 3.0


def rotation_rows(rng, shapes, sizes, wheres=("high", "low")):
    rows = []
    for shape, cone in shapes:
        for n, d in sizes:
            for where in wheres:
                X, basis = clip_like(rng, n, d, "iso" if shape == "iso" else "power", cone)
                R = plane_rotation(basis, ANGLES, where)
                B = jitter(X @ R, 2.0, rng)
                fit = sdtools.procrustes(X, B, ci=False)
                # the share of the change the planted rotation explains: what rigidity reads
                # (a rotation in weak planes of a cone moves little; the jitter is most of it)
                share = 1.0 - np.sum((X @ R - B) ** 2) / np.sum((X - B) ** 2)
                got = fit.angles_deg[:3]
                err = float(np.max(np.abs(got - np.asarray(ANGLES))))
                case = f"{shape} N={n} D={d} {where} planes"
                rows.append(("Procrustes angles", case, "80 / 45 / 20",
                             " / ".join(f"{x:.1f}" for x in got), f"<= {_tol_angles(n, d):g}",
                             err <= _tol_angles(n, d)))
                rows.append(("rigidity", case + " (rotation + 2 deg jitter)", f"{share:.3f}",
                             f"{fit.rigidity:.3f}", "+- 0.1", abs(fit.rigidity - share) <= 0.1))
    return rows


def null_rows(rng, shapes, sizes):
    rows = []
    for shape, cone in shapes:
        for n, d in sizes:
            X, _ = clip_like(rng, n, d, "iso" if shape == "iso" else "power", cone)
            for deg in (10.0, 30.0):
                B = jitter(X, deg, rng)
                fit = sdtools.procrustes(X, B, ci=False)
                top = sdtools.topology_kept(X, B)
                case = f"{shape} N={n} D={d}, {deg:g} deg jitter"
                rows.append(("rigidity", case, "0", f"{fit.rigidity:+.3f}", "|x| < 0.1",
                             abs(fit.rigidity) < 0.1))
                rows.append(("topology kept", case, "0", f"{top.topology_kept:+.3f}",
                             "|x| < 0.05", abs(top.topology_kept) < 0.05))
            top = sdtools.topology_kept(X, jitter(X @ plane_rotation(_, ANGLES), 0.0, rng))
            rows.append(("topology kept", f"{shape} N={n} D={d}, rotation", "1",
                         f"{top.topology_kept:.4f}", "> 0.999", top.topology_kept > 0.999))
    return rows


def small_change_rows(rng):
    rows = []
    X, basis = clip_like(rng, 3000, 32, "power", 0.8)
    A = X.astype(np.float32)
    B = (X @ plane_rotation(basis, [0.01])).astype(np.float32)
    fit = sdtools.procrustes(A, B, ci=False)
    rows.append(("Procrustes angles", "cone N=3000 D=32, 0.01 deg, float32", "0.01",
                 f"{fit.angles_deg[0]:.5f}", "<= 0.0005",
                 abs(fit.angles_deg[0] - 0.01) <= 5e-4))
    rows.append(("rigidity", "cone N=3000 D=32, 0.01 deg, float32", "1",
                 f"{fit.rigidity:.4f}", "> 0.99", fit.rigidity > 0.99))
    half = torch.from_numpy(A).bfloat16().float().numpy()
    fit = sdtools.procrustes(A, half, ci=False)
    rows.append(("rigidity", "bfloat16 re-save of the same embeddings", "not given",
                 str(fit.rigidity), "None", fit.rigidity is None))
    return rows


def intermodal_rows(rng, sizes):
    rows = []
    for n, d in sizes:
        for shape in ("iso", "power"):
            V, basis = clip_like(rng, n, d, shape)
            T, iot = captions(rng, V)
            R = plane_rotation(basis, ANGLES, "low")
            case = f"{shape} {n} images D={d}"
            dv = sdtools.deviation(V, T, V @ R, T @ R, iot).to_dict()
            got = dv["relative_rotation"]["max_angle"]
            rows.append(("relative rotation", case + ", shared exact rotation", "0",
                         f"{got:.2e}", "< 1e-6", got < 1e-6))
            dv = sdtools.deviation(V, T, V, T @ R, iot).to_dict()
            ang = np.asarray(dv["relative_rotation"]["angles_deg"][:3])
            err = float(np.max(np.abs(ang - np.asarray(ANGLES))))
            rows.append(("relative rotation", case + ", captions only, weak planes",
                         "80 / 45 / 20", " / ".join(f"{x:.1f}" for x in ang), "<= 1", err <= 1))
            dv = sdtools.deviation(V, T, jitter(V @ R, 10.0, rng), jitter(T @ R, 10.0, rng),
                                   iot).to_dict()
            c = dv["cross_residual"]
            rows.append(("cross residual", case + ", shared rotation + 10 deg jitter",
                         f"null {c['null']['mean']['value']:.4f}", f"{c['mean']:.4f}",
                         "within 2x null", c["mean"] < 2 * c["null"]["mean"]["value"]))
            other = plane_rotation(basis, [30.0], "high")
            dv = sdtools.deviation(V, T, jitter(V @ R, 10.0, rng),
                                   jitter(T @ R @ other, 10.0, rng), iot).to_dict()
            c = dv["cross_residual"]
            rows.append(("cross residual", case + ", captions turned 30 deg more",
                         f"null {c['null']['mean']['value']:.4f}", f"{c['mean']:.4f}",
                         "above null range", bool(c["above_null"])))
    return rows


def low_rank_rows(rng):
    """Images of rank 10 in 32 dimensions, captions spread in all 32; one shared rotation
    whose planes leave the images' span (the case a-space / b-space confusion got wrong)."""
    rows = []
    basis = np.linalg.qr(rng.standard_normal((32, 32)))[0][:, :10]
    V = unit(rng.standard_normal((600, 10)) @ basis.T)
    iot = np.repeat(np.arange(600), 3)
    T = unit(V[iot] + 0.3 * unit(rng.standard_normal((1800, 32))))
    for angles in ([60.0, 40.0, 20.0], [90.0, 90.0, 60.0, 60.0, 30.0]):
        q = np.linalg.qr(rng.standard_normal((32, 32)))[0]
        blocks = np.eye(32)
        for k, a in enumerate(angles):
            c, s_ = math.cos(math.radians(a)), math.sin(math.radians(a))
            blocks[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = [[c, -s_], [s_, c]]
        R = q @ blocks @ q.T
        dv = sdtools.deviation(V, T, V @ R, T @ R, iot).to_dict()["relative_rotation"]
        rows.append(("relative rotation", f"rank-10 images, shared rotation {angles}", "0",
                     f"{dv['max_angle']:.2e}", "< 1e-6", dv["max_angle"] < 1e-6))
    return rows


def coverage_rows(rng, draws: int):
    """Intervals over captions: 3-5 captions per image sharing an image-level shift."""
    hits = {"pos_shift": 0, "t2i R@1": 0}
    n, d = 150, 16
    truth = {}
    for k in range(draws):
        V, _ = clip_like(rng, n, d, "power")
        T, iot = captions(rng, V, spread=0.8)
        eff = rng.normal(0.0, 8.0, size=n)  # each image turns by its own amount
        Vb = jitter(V, np.abs(eff), rng)
        Tb = jitter(T, np.abs(eff)[iot] + 1.0, rng)
        dv = sdtools.deviation(V, T, Vb, Tb, iot)
        d_ = dv.to_dict()["pos_shift"]
        r = sdtools.retrieval(Vb, Tb, iot, ci=True)
        if k == 0:  # the population values, from a probe 40 times larger
            big_v, _ = clip_like(np.random.default_rng(99), 40 * n, d, "power")
            truth = _population(big_v, rng)
        lo, hi = d_["mean_ci"]["low"], d_["mean_ci"]["high"]
        hits["pos_shift"] += lo <= truth["pos_shift"] <= hi
        iv = r.t2i_ci[1]
        hits["t2i R@1"] += iv.low <= truth["t2i"] <= iv.high
    return [("95% interval coverage", f"{name}, 150 images x 3-5 captions, {draws} probes",
             "85-100%", f"{100 * h / draws:.0f}%", "85-100%", 0.85 <= h / draws <= 1.0)
            for name, h in hits.items()]


def _population(V, rng) -> dict:
    T, iot = captions(rng, V, spread=0.8)
    eff = rng.normal(0.0, 8.0, size=V.shape[0])
    Vb = jitter(V, np.abs(eff), rng)
    Tb = jitter(T, np.abs(eff)[iot] + 1.0, rng)
    dv = sdtools.deviation(V, T, Vb, Tb, iot)
    # recall of a probe of 150 images depends on the gallery size: the population value of
    # R@1 at this size is the mean over disjoint 150-image galleries
    r1 = []
    for s in range(0, V.shape[0], 150):
        m = np.isin(iot, np.arange(s, s + 150))
        r1.append(sdtools.retrieval(Vb[s : s + 150], Tb[m], iot[m] - s).t2i[1])
    return {"pos_shift": float(dv.pos_shift.mean()), "t2i": float(np.mean(r1))}


SHAPES = (("iso", 0.0), ("power", 0.0), ("cone 0.8", 0.8))


def table(quick: bool) -> list[tuple]:
    rng = np.random.default_rng(0)
    sizes = [(128, 64), (640, 64)] if quick else [(128, 64), (640, 64), (6400, 64),
                                                  (1024, 512), (20000, 512)]
    rows = rotation_rows(rng, SHAPES, sizes)
    rows += null_rows(rng, SHAPES, [(640, 64)] if quick else [(640, 64), (5120, 512)])
    rows += small_change_rows(rng)
    rows += intermodal_rows(rng, [(400, 16)] if quick else [(400, 16), (2000, 64)])
    rows += low_rank_rows(rng)
    rows += coverage_rows(rng, 100 if quick else 200)
    return rows


def markdown(rows) -> str:
    out = ["| measure | planted truth | true | read | tolerance | holds |",
           "| --- | --- | --- | --- | --- | --- |"]
    for m, case, true, got, tol, ok in rows:
        out.append(f"| {m} | {case} | {true} | {got} | {tol} | {'yes' if ok else 'NO'} |")
    return "\n".join(out)


def property_table(n_draws: int, seed: int = 0, max_d: int = 1024,
                   budget: int = 3_000_000) -> tuple[str, int, int]:
    """Draws of :mod:`sdtools.measures.properties`: per measure and kind of change, the draws,
    the misses and the worst case (largest distance from the expected value in tolerances).
    Returns the markdown, the invariants checked and the misses."""
    from sdtools.measures.properties import draws

    stats: dict[tuple[str, str], list] = {}
    for s, kind, detail, rows in draws(n_draws, seed, max_d, budget):
        for measure, want, got, tol, ok in rows:
            try:
                dist = abs(float(got) - float(want)) / float(tol.split()[-1])
            except ValueError:  # None expected or read
                dist = 0.0 if ok else math.inf
            st = stats.setdefault((measure, kind), [0, 0, -1.0, ""])
            st[0] += 1
            st[1] += 0 if ok else 1
            if dist > st[2]:
                st[2], st[3] = dist, f"{s.text()}; {detail}: read {got}, want {want} {tol}"
        print(f"{s.text()} | {kind} | {detail} | "
              + ", ".join(f"{m} {g}{'' if ok else ' MISS'}" for m, _, g, _, ok in rows),
              flush=True)
    out = ["| measure | change | draws | misses | worst case (distance in tolerances) |",
           "| --- | --- | --- | --- | --- |"]
    for (m, kind), (n, bad, dist, case) in sorted(stats.items()):
        out.append(f"| {m} | {kind} | {n} | {bad} | {dist:.2f}: {case} |")
    checked = sum(v[0] for v in stats.values())
    missed = sum(v[1] for v in stats.values())
    return "\n".join(out), checked, missed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--properties", type=int, default=0, metavar="DRAWS",
                    help="draw shapes and changes and check every invariant instead")
    ap.add_argument("--budget", type=int, default=3_000_000, help="largest N x D of a draw")
    args = ap.parse_args(argv)
    if args.properties:
        from .harness import ROOT, commit, machine, today

        text, checked, missed = property_table(args.properties, budget=args.budget)
        print(text)
        print(f"\n{checked - missed} of {checked} invariants hold")
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(f"\n## {today()} · commit {commit()} · {machine()} · property harness, "
                     f"{args.properties} draws (N x D at most {args.budget:,})\n\n{text}\n\n"
                     f"{checked - missed} of {checked} invariants hold.\n")
        return 0 if missed == 0 else 1
    rows = table(args.quick)
    text = markdown(rows)
    print(text)
    held = sum(r[-1] for r in rows)
    print(f"\n{held} of {len(rows)} hold")
    if not args.quick:
        from .harness import ROOT, commit, machine, today

        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(f"\n## {today()} · commit {commit()} · {machine()} · validity table\n\n"
                     f"{text}\n\n{held} of {len(rows)} hold.\n")
    return 0 if held == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["table"]
