"""Multi-phase reports: every measure over a run directory's phases -> JSON + Markdown.

A run directory (written by ``modx``) holds one folder per phase checkpoint::

    RUN/config.json                 the run's configuration
    RUN/phase0/                     the shared starting model
    RUN/METHOD/phase{t}/            t = 1..T, one folder per method
        eval.json                   {"sets": [names], "retrieval": [RetrievalResult.to_dict()],
                                     "train": {...}}  (train: selected_share, losses, ...)
        probe.npz                   the probe embeddings (sdtools Embeddings)

:func:`build_report` reads only these files, so the report can be regenerated without
retraining (``sdtools report RUN_DIR --out DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .analysis import rotation_report
from .embeddings import Embeddings
from .intermodal import deviation
from .results import jsonable


class ReportError(ValueError):
    pass


def phase_dirs(run: Path, method: str) -> list[Path]:
    dirs = [run / "phase0"]
    t = 1
    while (run / method / f"phase{t}" / "eval.json").is_file():
        dirs.append(run / method / f"phase{t}")
        t += 1
    return dirs


def methods_in(run: Path) -> list[str]:
    cfg = _read_json(run / "config.json")
    names = cfg.get("methods") or sorted(p.name for p in run.iterdir()
                                         if (p / "phase1" / "eval.json").is_file())
    return [m for m in names if (run / m / "phase1" / "eval.json").is_file()]


def _read_json(path: Path):
    if not path.is_file():
        raise ReportError(f"{path} not found: is this a modx run directory?")
    return json.loads(path.read_text())


def geometry(a: Embeddings, b: Embeddings, max_pairs: int | None = 2_000_000) -> dict:
    """Rotation of both modalities and inter-modal deviation from a to b (JSON-ready)."""
    rot = rotation_report(a, b, max_pairs=max_pairs)
    dev = deviation(a.image, a.text, b.image, b.text, a.image_of_text)
    d = dev.to_dict()
    keep = ("pos_shift", "unsync", "unsync_abs_mean", "relative_rotation", "top1",
            "modality_gap_a", "modality_gap_b", "pos_sim_a_mean", "pos_sim_b_mean")
    return jsonable({"image": rot["image"], "text": rot["text"],
                     "deviation": {k: d[k] for k in keep}})


def build_report(run, max_pairs: int | None = 2_000_000) -> dict:
    """Assemble ``report.json`` from a run directory (see the module docstring)."""
    run = Path(run)
    config = _read_json(run / "config.json")
    methods = methods_in(run)
    if not methods:
        raise ReportError(f"{run} has no finished phase of any method yet")
    probes = {run / "phase0": Embeddings.load(run / "phase0" / "probe.npz")}
    out = {"config": config, "methods": {}}
    for m in methods:
        dirs = phase_dirs(run, m)
        evals = [_read_json(d / "eval.json") for d in dirs]
        sets = evals[0]["sets"]
        r = {"i2t": {}, "t2i": {}}
        for direction in ("i2t", "t2i"):
            for k in ("1", "5", "10"):
                r[direction][k] = [[e["retrieval"][s][direction][k] for s in range(len(sets))]
                                   for e in evals]
        r1 = (np.asarray(r["i2t"]["1"]) + np.asarray(r["t2i"]["1"])) / 2.0
        last = r1.shape[0] - 1
        bwt = None
        if r1.shape[1] == r1.shape[0] and last > 0:  # evaluation set k <-> phase k
            bwt = float(np.mean([r1[last, k] - r1[k, k] for k in range(last)]))
        for d in dirs:
            if d not in probes:
                probes[d] = Embeddings.load(d / "probe.npz")
        geo = []
        for t in range(1, len(dirs)):
            geo.append({
                "phase": t,
                "vs_phase0": geometry(probes[dirs[0]], probes[dirs[t]], max_pairs),
                "vs_prev": geometry(probes[dirs[t - 1]], probes[dirs[t]], max_pairs),
            })
        out["methods"][m] = {
            "sets": sets,
            "r1": r1.tolist(),
            "i2t": r["i2t"],
            "t2i": r["t2i"],
            "avg": float(r1[last].mean()),
            "bwt": bwt,
            "selected_share": [e.get("train", {}).get("selected_share") for e in evals],
            "geometry": geo,
        }
    return jsonable(out)


def summary_rows(report: dict) -> list[dict]:
    """One row per method: the numbers the README's results table shows."""
    rows = []
    for m, r in report["methods"].items():
        last = r["geometry"][-1]["vs_phase0"] if r["geometry"] else None
        rows.append({
            "method": m,
            "avg_r1": r["avg"],
            "bwt": r["bwt"],
            "domain0_r1_last": r["r1"][-1][0],
            "domain0_r1_phase0": r["r1"][0][0],
            "rad_mean_image": last["image"]["rad"]["mean"] if last else None,
            "rad_mean_text": last["text"]["rad"]["mean"] if last else None,
            "sam_drift_image": last["image"]["sam_drift"]["mean"] if last else None,
            "sam_drift_text": last["text"]["sam_drift"]["mean"] if last else None,
            "explained_image": last["image"]["procrustes"]["explained"] if last else None,
            "unsync_abs_mean": last["deviation"]["unsync_abs_mean"] if last else None,
            "relative_rotation_geodesic":
                last["deviation"]["relative_rotation"]["geodesic_deg"] if last else None,
            "selected_share_mean": _mean(r["selected_share"][1:]),
        })
    return rows


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def markdown(report: dict) -> str:
    """A Markdown report: summary table and every method's retrieval matrix."""
    def f(x, nd=2):
        return "–" if x is None else f"{x:.{nd}f}"

    lines = ["# Continual run report", ""]
    cfg = report.get("config", {})
    lines.append(f"Data `{cfg.get('data')}`, phases `{cfg.get('phases')}`, methods "
                 f"{', '.join(report['methods'])}.")
    lines += ["", "## Summary (after the last phase; geometry against phase 0)", "",
              "| method | avg R@1 | BWT | domain-0 R@1 (phase 0 → last) | RAD image / text (deg) "
              "| SAM drift image / text (deg) | rotation explains (image) | unsync mean (deg) "
              "| Mod-X rows kept |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary_rows(report):
        lines.append(
            f"| {row['method']} | {f(row['avg_r1'])} | {f(row['bwt'])} | "
            f"{f(row['domain0_r1_phase0'])} → {f(row['domain0_r1_last'])} | "
            f"{f(row['rad_mean_image'])} / {f(row['rad_mean_text'])} | "
            f"{f(row['sam_drift_image'], 3)} / {f(row['sam_drift_text'], 3)} | "
            f"{f(row['explained_image'], 3)} | {f(row['unsync_abs_mean'])} | "
            f"{f(row['selected_share_mean'], 3)} |")
    for m, r in report["methods"].items():
        sets = r["sets"]
        lines += ["", f"## {m}: R@1 (mean of both directions), row = after phase t", "",
                  "| phase | " + " | ".join(sets) + " |",
                  "| --- | " + " | ".join("---" for _ in sets) + " |"]
        for t, row in enumerate(r["r1"]):
            lines.append(f"| {t} | " + " | ".join(f"{x:.1f}" for x in row) + " |")
    return "\n".join(lines) + "\n"
