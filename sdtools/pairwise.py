"""Measures over two Embeddings -> JSON-ready results.

:func:`rotation_report` and :func:`deviation_report` compare two sets of embeddings of one
probe (the CLI and the examples use them); :func:`geometry` runs both, as a run report
(:func:`sdtools.report.build_report`) records them between phases. Every name here is also
importable from :mod:`sdtools.report`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import AnalysisError, InputError
from .geometry_record import DEVIATION_KEYS
from .measures.angles import rad
from .measures.checks import coarsest
from .measures.intermodal import DeviationResult, deviation
from .measures.procrustes import ProcrustesResult, procrustes
from .measures.sam import SamDriftResult, sam_drift
from .measures.similarity import linear_cka, mutual_knn
from .measures.summary import Summary, jsonable
from .measures.topology import TopologyResult, topology_kept
from .models.embeddings import Embeddings

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
    knn_n: int = 0  # items mutual kNN averages over (a random draw above KNN_QUERIES)

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
        knn_n = min(int(xa.shape[0]), KNN_QUERIES)
        out[mod] = ModalityRotation(
            n=int(xa.shape[0]),
            rad=rad(xa, xb, ci=ci, n_boot=n_boot, seed=seed, clusters=groups),
            sam_drift=sam_drift(xa, xb, max_pairs=max_pairs, progress=progress, ci=ci,
                                n_boot=n_boot, ci_seed=seed, clusters=groups),
            procrustes=procrustes(xa, xb, residuals=True, ci=ci, n_boot=n_boot, ci_seed=seed,
                                  precision=precision, groups=groups),
            topology=topology_kept(xa, xb, seed=seed, groups=groups),
            linear_cka=_cka(xa, xb), knn_k=k, knn_n=knn_n,
            mutual_knn=mutual_knn(xa, xb, k=k, queries=knn_n, seed=seed))
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


KNN_QUERIES = 2_000  # mutual kNN averaged over this many items (each with its neighbours
# among all N) above it: its cost is then KNN_QUERIES x N, not N^2, and the mean's standard
# error at most 0.5 / sqrt(KNN_QUERIES) = 0.011 (about 0.005 at a per-item spread of 0.2)


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
