"""Measures over every phase of a run directory -> JSON + Markdown.

:func:`build_report` reads a run directory (layout in :mod:`sdtools.runs`) and needs no
retraining (``sdtools report RUN_DIR --out DIR``). The comparisons of two Embeddings it runs
between phases (:func:`rotation_report`, :func:`deviation_report`, :func:`geometry`) live in
:mod:`sdtools.pairwise` and are importable from here too.
"""

from __future__ import annotations

import numpy as np

from . import __version__
from .errors import RunError
from .geometry_record import DEVIATION_KEYS
from .kept_geometry import KeptGeometry
from .log import NOTICE, get_logger
from .measures.summary import jsonable
from .models.embeddings import Embeddings
from .pairwise import (
    EXACT_SAM_ITEMS,
    KNN_QUERIES,
    MODALITIES,
    SAMPLED_PAIRS,
    ModalityRotation,
    RotationReport,
    check_comparable,
    deviation_report,
    geometry,
    image_groups,
    rotation_report,
)
from .progress import bar
from .report_text import markdown, summary_rows
from .run_report import SCHEMA, RunReport
from .runs import RunDir

log = get_logger(__name__)

TRAIN_KEYS = ("steps", "final_loss", "extras")  # a phase's training record


def build_report(run, max_pairs: int | None = SAMPLED_PAIRS, progress: bool = False,
                 styles: dict | None = None, keep_geometry: bool = False,
                 notice: bool = True) -> RunReport:
    """The run report of a run directory (layout in :mod:`sdtools.runs`).

    Parameters
    ----------
    run : str, Path or RunDir
        A continual run's directory with at least one finished phase.
    max_pairs : int or None
        Pairs SAM drift is estimated from above 10,000 probe items (None: exact).
    progress : bool
        A progress bar over the phases.
    styles : dict, optional
        method -> {"colour": "#rrggbb", "dashed": bool}: how figures draw each method
        (the trainer that wrote the run knows). None: the styles of the run's existing
        ``report.json``, if any; a method without one is coloured by its name.
    keep_geometry : bool
        Reuse the geometry a phase's folder keeps (:meth:`RunDir.geometry_path`) where it was
        computed from the same probes (phase 0's, the previous phase's and the phase's own,
        compared by their SHA-256 digests), with this version and ``max_pairs``; compute and
        keep the rest there. The trainer that owns the run sets it; False (the default)
        computes every phase's geometry and writes nothing into the run.
    notice : bool
        Log one line at :data:`sdtools.log.NOTICE` (shown by the command lines also under
        ``-q``) saying how many phases the report covers and how many to compute.

    Returns
    -------
    RunReport
        Retrieval matrices, classification and geometry per method and phase
        (``.to_dict()`` is what ``report.json`` holds).

    Raises
    ------
    RunError
        ``run`` is not a run directory (no readable ``config.json``) or has no finished phase
        of any method.
    EmbeddingsError
        A phase's probe embeddings cannot be read.

    See Also
    --------
    RunDir : The run directory's layout.
    draw_all : Draws every figure of the report.
    rotation_report, deviation_report : The geometry computed between phases.

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
    >>> rep = sdtools.build_report(run)
    >>> rep.methods["sgd"].n_phases, len(rep.methods["sgd"].geometry)
    (2, 1)
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    config = run.read_config()
    methods = run.methods()
    if not methods:
        raise RunError(f"{run.path} has no finished phase of any method yet")
    base = Embeddings.load(run.probe_path("phase0", 0))
    if styles is None:
        styles = _recorded_styles(run.path / "report.json")
    out = {"schema": SCHEMA, "written_by": f"sdtools {__version__}", "config": config,
           "methods": {}}
    kept = KeptGeometry(run, max_pairs) if keep_geometry else None
    found = {(m, t): kept.read(m, t) if kept else None
             for m in methods for t in run.phases(m)[1:]}
    todo = sum(g is None for g in found.values())
    if notice:
        done = f" (geometry of {len(found) - todo} kept in the run, {todo} to compute)" \
            if todo < len(found) else ""
        log.log(NOTICE, "building the report of %s: %d phase(s) of %d method(s)%s", run.path,
                len(found), len(methods), done)
    pbar = bar(progress, todo, "report", unit="phase")
    for m in methods:
        phases = run.phases(m)
        evals = [run.read_eval(m, t) for t in phases]
        sets = evals[0]["sets"]
        r: dict[str, dict[str, list]] = {"i2t": {}, "t2i": {}}
        for direction in ("i2t", "t2i"):
            for k in ("1", "5", "10"):
                r[direction][k] = [[e["retrieval"][s][direction][k] for s in range(len(sets))]
                                   for e in evals]
        r1 = (np.asarray(r["i2t"]["1"]) + np.asarray(r["t2i"]["1"])) / 2.0
        classes = _classification(evals, len(sets))
        r1_ci = _r1_ci(evals, len(sets))
        last = r1.shape[0] - 1
        bwt = None
        if r1.shape[1] == r1.shape[0] and last > 0:  # evaluation set k <-> phase k
            bwt = float(np.mean([r1[last, k] - r1[k, k] for k in range(last)]))
        max_drop = _max_drop(r1)
        geo = []
        for t in phases[1:]:
            g = found[m, t]
            if g is None:
                cur = Embeddings.load(run.probe_path(m, t))
                prev = base if t == 1 else Embeddings.load(run.probe_path(m, t - 1))
                g = {"phase": t, "vs_phase0": geometry(base, cur, max_pairs),
                     "vs_prev": geometry(prev, cur, max_pairs, per_set=False)}
                if kept:
                    kept.write(m, t, g)
                pbar.update(1)
            geo.append(g)
        out["methods"][m] = {
            "sets": sets,
            "r1": r1.tolist(),
            "r1_ci": r1_ci,
            "i2t": r["i2t"],
            "t2i": r["t2i"],
            "avg": float(r1[last].mean()),
            "bwt": bwt,
            "max_drop": max_drop,
            **_extras(evals),
            **classes,
            "geometry": geo,
            **({"style": dict(styles[m])} if styles and m in styles else {}),
        }
    pbar.close()
    return RunReport.from_dict(jsonable(out), str(run.path))


def _recorded_styles(path) -> dict:
    """The method styles an earlier report of the run recorded ({} when none can be read)."""
    import json

    try:
        methods = json.loads(path.read_text())["methods"]
        return {m: r["style"] for m, r in methods.items() if isinstance(r.get("style"), dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _extras(evals) -> dict:
    """``{"extras": {key: [value per phase]}}`` from what each phase's training record adds
    (``train.extras``; older records kept such keys beside ``steps`` and ``final_loss``), or
    {} when no phase adds anything."""
    per_phase = []
    for e in evals:
        train = e.get("train") or {}
        extra = {k: v for k, v in train.items() if k not in TRAIN_KEYS and v is not None}
        extra.update(train.get("extras") or {})
        per_phase.append(extra)
    keys = sorted({k for extra in per_phase for k in extra})
    return {"extras": {k: [extra.get(k) for extra in per_phase] for k in keys}} if keys else {}


def _classification(evals, n_sets: int) -> dict:
    """``zero_shot`` and ``linear_probe``: {task: [[accuracy per set] per phase]} (percent;
    None where a set carries no such task), from the evaluation records."""
    tasks = sorted({task for e in evals for r in e["retrieval"]
                    for task in (r.get("classification") or {})})
    out: dict[str, dict[str, list]] = {"zero_shot": {}, "linear_probe": {}}
    for task in tasks:
        zs, lp = [], []
        for e in evals:
            cells = [(e["retrieval"][s].get("classification") or {}).get(task)
                     for s in range(n_sets)]
            zs.append([c["zero_shot"]["top1"] if c else None for c in cells])
            lp.append([c["linear_probe"] if c else None for c in cells])
        out["zero_shot"][task], out["linear_probe"][task] = zs, lp
    return out if tasks else {}


def _max_drop(r1: np.ndarray) -> list[float | None]:
    """Each evaluation set's largest drop below its level once learned (after phase k when
    the sets are the phases' domains, else after phase 0), over the later phases."""
    out = []
    square = r1.shape[0] == r1.shape[1]
    for k in range(r1.shape[1]):
        start = k if square else 0
        later = r1[start:, k]
        out.append(float(r1[start, k] - later.min()) if later.size > 1 else None)
    return out


def _r1_ci(evals, n_sets: int):
    """Per phase and set, [low, high] of the mean R@1 of both directions (a bootstrap over
    images with their captions, ``mean_r1_ci``); None where the run did not record it."""
    out = []
    for e in evals:
        row = []
        for s in range(n_sets):
            iv = e["retrieval"][s].get("mean_r1_ci")
            row.append([iv["low"], iv["high"]] if iv else None)
        out.append(row)
    return out


__all__ = ["DEVIATION_KEYS", "EXACT_SAM_ITEMS", "KNN_QUERIES", "MODALITIES", "SAMPLED_PAIRS",
           "TRAIN_KEYS",
           "ModalityRotation", "RotationReport", "build_report", "check_comparable",
           "deviation_report", "geometry", "image_groups", "markdown", "rotation_report",
           "summary_rows"]
