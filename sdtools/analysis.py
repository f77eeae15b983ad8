"""Run the measures on two sets of embeddings and collect JSON-ready reports.

Used by the CLI, by modx's after-phase evaluation and by the multi-phase report.
"""

from __future__ import annotations

from .embeddings import Embeddings
from .results import jsonable
from .rotation import procrustes, rad, sam_drift
from .similarity import linear_cka, mutual_knn


class AnalysisError(ValueError):
    pass


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
    if a.dim != b.dim:
        raise AnalysisError(
            f"{name_a} has dimension {a.dim} but {name_b} has {b.dim}: a rotation between "
            "spaces of different dimension is undefined; compare checkpoints of one architecture"
        )


def rotation_report(a: Embeddings, b: Embeddings, modality: str = "both",
                    max_pairs: int | None = None, knn_k: int = 10,
                    progress: bool = False) -> dict:
    """Intra-modal rotation of each modality: RAD, SAM drift, Procrustes, CKA, mutual kNN."""
    if modality not in ("image", "text", "both"):
        raise AnalysisError(f"modality must be image, text or both, got {modality!r}")
    check_comparable(a, b)
    out = {}
    for mod in ("image", "text"):
        if modality not in (mod, "both"):
            continue
        xa, xb = getattr(a, mod), getattr(b, mod)
        pro = procrustes(xa, xb)
        out[mod] = {
            "n": int(xa.shape[0]),
            "rad": rad(xa, xb).to_dict(),
            "sam_drift": sam_drift(xa, xb, max_pairs=max_pairs, progress=progress).to_dict(),
            "procrustes": pro.to_dict(),
            "linear_cka": linear_cka(xa, xb),
            "mutual_knn": mutual_knn(xa, xb, k=min(knn_k, xa.shape[0] - 1)),
        }
    return jsonable(out)


def deviation_report(a: Embeddings, b: Embeddings):
    """Inter-modal deviation between checkpoints a and b; returns the DeviationResult."""
    from .intermodal import deviation

    check_comparable(a, b)
    return deviation(a.image, a.text, b.image, b.text, a.image_of_text)
