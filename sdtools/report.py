"""Measures over two Embeddings, or over every phase of a run directory -> JSON + Markdown.

:func:`rotation_report` and :func:`deviation_report` compare two sets of embeddings (the CLI
and the examples use them); :func:`build_report` reads a run directory (layout in
:mod:`sdtools.runs`) and needs no retraining (``sdtools report RUN_DIR --out DIR``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import __version__
from .errors import AnalysisError, InputError, RunError
from .geometry_record import DEVIATION_KEYS
from .kept_geometry import KeptGeometry
from .log import NOTICE, get_logger
from .measures.angles import rad
from .measures.checks import coarsest
from .measures.intermodal import DeviationResult, deviation
from .measures.procrustes import ProcrustesResult, procrustes
from .measures.sam import SamDriftResult, sam_drift
from .measures.similarity import linear_cka, mutual_knn
from .measures.summary import Summary, jsonable
from .measures.topology import TopologyResult, topology_kept
from .models.embeddings import Embeddings
from .progress import bar
from .report_text import markdown, summary_rows
from .run_report import SCHEMA, RunReport
from .runs import RunDir

log = get_logger(__name__)

MODALITIES = ("image", "text")


def check_comparable(a: Embeddings, b: Embeddings, name_a: str = "A", name_b: str = "B"):
    """Both embeddings must cover the same probe set, in one space dimension."""
    if (a.n_images, a.n_texts) != (b.n_images, b.n_texts):
        raise AnalysisError(
            f"{name_a} has {a.n_images} images/{a.n_texts} captions but {name_b} has "
            f"{b.n_images}/{b.n_texts}; embed both on the same probe set (--data)"
        )
    if (a.image_of_text != b.image_of_text).any():
        raise AnalysisError(f"{name_a} and {name_b} pair captions with images differently")
    da, db = a.meta.get("data"), b.meta.get("data")
    if da and db and da != db:
        raise AnalysisError(f"{name_a} was embedded on {da!r} but {name_b} on {db!r}")
    pa, pb = a.meta.get("probe"), b.meta.get("probe")
    if pa and pb and any(pa[k] != pb[k] for k in set(pa) & set(pb)):
        raise AnalysisError(f"{name_a} and {name_b} {_probe_difference(pa, pb)}: the items "
                            "would be compared with other items; embed both on one probe "
                            "file as it is now (--no-cache re-embeds)")
    if a.dim != b.dim:
        raise AnalysisError(
            f"{name_a} has dimension {a.dim} but {name_b} has {b.dim}: a rotation between "
            "spaces of different dimension is undefined; compare checkpoints of one architecture"
        )


def _probe_difference(pa: dict, pb: dict) -> str:
    """What differs between two probes' identities, in words."""
    if pa.get("images_set") != pb.get("images_set"):
        return "were embedded on different images"
    if pa.get("images") != pb.get("images"):
        return "hold the same images in a different order"
    if pa.get("captions_set") != pb.get("captions_set"):
        return "pair the images with different captions"
    if pa.get("captions") != pb.get("captions"):
        return "hold the same captions in a different order"
    return ("hold images of the same names with other content (a file replaced or edited "
            "between the two)")


@dataclasses.dataclass(frozen=True)
class ModalityRotation:
    """Every intra-modal measure of one modality from a to b."""

    n: int
    rad: Summary
    sam_drift: SamDriftResult
    procrustes: ProcrustesResult
    topology: TopologyResult
    linear_cka: float | None
    mutual_knn: float
    knn_k: int
    knn_n: int = 0  # items mutual kNN used (a random subset above KNN_MAX_ITEMS)

    def to_dict(self) -> dict:
        return jsonable({"n": self.n, "rad": self.rad, "sam_drift": self.sam_drift,
                         "procrustes": self.procrustes, "topology": self.topology,
                         "linear_cka": self.linear_cka, "mutual_knn": self.mutual_knn,
                         "knn_k": self.knn_k, "knn_n": self.knn_n})


@dataclasses.dataclass(frozen=True)
class RotationReport:
    """Intra-modal rotation of the modalities measured (``image`` and/or ``text``)."""

    image: ModalityRotation | None = None
    text: ModalityRotation | None = None

    def modalities(self) -> dict[str, ModalityRotation]:
        return {m: getattr(self, m) for m in MODALITIES if getattr(self, m) is not None}

    def to_dict(self) -> dict:
        return {m: r.to_dict() for m, r in self.modalities().items()}


def rotation_report(a: Embeddings, b: Embeddings, modality: str = "both",
                    max_pairs: int | None = None, knn_k: int = 10,
                    progress: bool = False, ci: bool = True, n_boot: int = 1000,
                    seed: int = 0) -> RotationReport:
    """Intra-modal rotation of each modality: RAD, SAM drift, Procrustes (rigidity), the
    paper's criterion against its null (``topology``), CKA, mutual kNN.

    ``ci``: bootstrap intervals (``n_boot`` resamples, ``seed``) of the RAD mean and shares,
    the exact SAM drift mean, and Procrustes' explained shares and rigidity; captions are
    resampled with their image, and Procrustes' folds and null and topology's null hold an
    image's captions together (``groups``), and the images of one class together where the
    probe records a single labelled task's classes (:func:`image_groups`). The precision floor
    of rigidity is the coarser of the two embeddings' recorded precision
    (``meta["precision"]``) and what their values show.

    Parameters
    ----------
    a, b : Embeddings
        The same probe embedded by checkpoints a and b.
    modality : str
        ``image``, ``text`` or ``both``.
    max_pairs : int, optional
        Estimate SAM drift from this many pairs (None: exact).
    knn_k : int
        Neighbours of mutual kNN.
    progress : bool
        A progress bar.
    ci, n_boot, seed : bool, int, int
        Bootstrap intervals, resamples and seed.

    Returns
    -------
    RotationReport
        ``image`` and ``text``: ModalityRotation (``to_dict()`` for JSON).

    Raises
    ------
    AnalysisError
        ``modality`` is not ``image``, ``text`` or ``both``, or ``a`` and ``b`` do not cover
        the same probe in one space dimension.
    InputError
        A measure refuses the embeddings (see :func:`sdtools.procrustes`), or ``n_boot`` or
        ``seed`` is out of range.

    See Also
    --------
    deviation_report : The inter-modal side of the same comparison.
    plot_rotation : Draws the result.
    rad, sam_drift, procrustes, topology_kept, linear_cka, mutual_knn : The measures it runs.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> V = rng.standard_normal((200, 8)).astype(np.float32)
    >>> iot = np.repeat(np.arange(200), 2)
    >>> T = V[iot] + 0.3 * rng.standard_normal((400, 8)).astype(np.float32)
    >>> Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> a = sdtools.Embeddings(V, T, iot)
    >>> b = sdtools.Embeddings(V @ Q.astype(np.float32), T @ Q.astype(np.float32), iot)
    >>> rep = sdtools.rotation_report(a, b, ci=False)
    >>> rep.image.procrustes.rigidity > 0.99, round(rep.text.sam_drift.mean, 2)
    (True, 0.0)
    """
    if modality not in ("image", "text", "both"):
        raise AnalysisError(f"modality must be image, text or both, got {modality!r}")
    check_comparable(a, b)
    precision = coarsest(a.meta.get("precision"), b.meta.get("precision"))
    out = {}
    for mod in MODALITIES:
        if modality not in (mod, "both"):
            continue
        xa, xb = getattr(a, mod), getattr(b, mod)
        groups = image_groups(a)
        if mod == "text":  # a caption changes with its image (and with its image's class)
            groups = a.image_of_text if groups is None else groups[a.image_of_text]
        k = min(knn_k, xa.shape[0] - 1)
        knn_idx = _knn_subset(xa.shape[0], seed)
        out[mod] = ModalityRotation(
            n=int(xa.shape[0]),
            rad=rad(xa, xb, ci=ci, n_boot=n_boot, seed=seed, clusters=groups),
            sam_drift=sam_drift(xa, xb, max_pairs=max_pairs, progress=progress, ci=ci,
                                n_boot=n_boot, ci_seed=seed, clusters=groups),
            procrustes=procrustes(xa, xb, residuals=True, ci=ci, n_boot=n_boot, ci_seed=seed,
                                  precision=precision, groups=groups),
            topology=topology_kept(xa, xb, seed=seed, groups=groups),
            linear_cka=_cka(xa, xb), knn_k=k, knn_n=len(knn_idx),
            mutual_knn=mutual_knn(xa[knn_idx], xb[knn_idx], k=k))
    return RotationReport(**out)


def image_groups(e: Embeddings) -> np.ndarray | None:
    """Images that change together: the classes of the probe's labelled task when its meta
    records exactly one (``class_groups``, written by a run for its labelled evaluation sets;
    an image of a set without labels is a group of its own), else None (every image alone).
    Two or more tasks (a synthetic set's shapes and colours) cross each other, so no one
    grouping is taken."""
    cg = e.meta.get("class_groups") or {}
    if not isinstance(cg, dict) or len(cg) != 1:
        return None
    g = np.asarray(next(iter(cg.values())), dtype=np.int64)
    if g.shape != (e.n_images,) or not (g >= 0).any():
        return None
    out = g.copy()
    lone = np.flatnonzero(g < 0)
    out[lone] = g.max() + 1 + np.arange(lone.size)
    return out


KNN_MAX_ITEMS = 20_000  # mutual kNN on a random subset above this (all pairs of items)


def _knn_subset(n: int, seed: int) -> np.ndarray:
    """Items mutual kNN uses: all up to ``KNN_MAX_ITEMS``, else a seeded random subset (its
    cost grows with N^2; neighbourhoods are then those within the subset)."""
    if n <= KNN_MAX_ITEMS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, KNN_MAX_ITEMS, replace=False))


def _cka(xa, xb) -> float | None:
    """Linear CKA, None where it is undefined (a collapsed space with no variance)."""
    try:
        return linear_cka(xa, xb)
    except InputError:
        return None


def deviation_report(a: Embeddings, b: Embeddings) -> DeviationResult:
    """Inter-modal deviation between checkpoints a and b.

    Parameters
    ----------
    a, b : Embeddings
        The same probe embedded by checkpoints a and b.

    Returns
    -------
    DeviationResult
        See :func:`sdtools.deviation`.

    Raises
    ------
    AnalysisError
        ``a`` and ``b`` do not cover the same probe in one space dimension.
    InputError
        :func:`sdtools.deviation` refuses the embeddings.

    See Also
    --------
    deviation : The measure, on arrays.
    rotation_report : The intra-modal side of the same comparison.
    plot_deviation : Draws the result.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> V = rng.standard_normal((100, 8)).astype(np.float32); iot = np.arange(100)
    >>> a = sdtools.Embeddings(V, V, iot)
    >>> b = sdtools.Embeddings(V, V + 0.5 * rng.standard_normal(V.shape).astype(np.float32), iot)
    >>> d = sdtools.deviation_report(a, b)
    >>> bool(d.pos_sim_b.mean() < d.pos_sim_a.mean())  # captions moved, images did not
    True
    """
    check_comparable(a, b)
    return deviation(a.image, a.text, b.image, b.text, a.image_of_text)


EXACT_SAM_ITEMS = 10_000  # up to this many items SAM drift is exact (reports and the CLI)
SAMPLED_PAIRS = 2_000_000  # pairs SAM drift is estimated from beyond


def geometry(a: Embeddings, b: Embeddings, max_pairs: int | None = SAMPLED_PAIRS,
             per_set: bool = True) -> dict:
    """Rotation of both modalities and inter-modal deviation from a to b (JSON-ready), on the
    pooled probe and, with ``per_set``, on each evaluation set of a run's probe alone. SAM
    drift is exact up to 10,000 items, an estimate from ``max_pairs`` pairs beyond
    (``per_set``: {set name: the same measures}), in the run's order (old domains first)."""
    if max(a.n_images, a.n_texts) <= EXACT_SAM_ITEMS:  # exact is as cheap here
        max_pairs = None
    rot = rotation_report(a, b, max_pairs=max_pairs).to_dict()
    d = deviation_report(a, b).to_dict()
    out = {"image": rot["image"], "text": rot["text"],
           "deviation": {k: d[k] for k in DEVIATION_KEYS}}
    sets = a.sets() if per_set else {}
    if sets:
        out["per_set"], skipped = {}, {}
        for name, idx in sets.items():
            try:  # a set too small for a measure (a labelled set's few class captions) is said
                out["per_set"][name] = geometry(a.subset(idx), b.subset(idx), max_pairs, False)
            except InputError as e:
                skipped[name] = str(e)
        if skipped:
            out["per_set_skipped"] = skipped
    return jsonable(out)


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


__all__ = ["build_report", "check_comparable", "deviation_report", "geometry", "markdown",
           "rotation_report", "summary_rows"]
