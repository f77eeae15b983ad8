"""Per-sample rotation angles (the paper's RAD) between two checkpoints' embeddings.

``A`` and ``B`` are the same N samples of one modality under checkpoints a and b, shape (N, D),
as numpy arrays or torch tensors on any device; rows are L2-normalised first.
"""

from __future__ import annotations

import numpy as np
import torch

from .checks import as_embeddings, common, normalize, same_shape, stable_angle_deg, to_numpy
from .summary import Summary


def pair_of(A, B, name_a="A", name_b="B") -> tuple[torch.Tensor, torch.Tensor]:
    a = as_embeddings(A, name_a)
    b = as_embeddings(B, name_b)
    same_shape(a, b, name_a, name_b)
    return common(a, b)


def sample_angles(A, B) -> np.ndarray:
    """Per-sample rotation angle ``angle(A_i, B_i)`` in degrees, shape (N,).

    Rows are L2-normalised first. Uses ``2 atan2(|a-b|, |a+b|)``, accurate near 0 and 180
    degrees (no NaN at cosine +-1). This is the paper's Rotation Angle Distribution (RAD).
    """
    a, b = pair_of(A, B)
    return to_numpy(stable_angle_deg(normalize(a), normalize(b))).astype(np.float64)


def rad(A, B, bin_edges=None, ci: bool = False, n_boot: int = 1000, seed: int = 0,
        clusters=None) -> Summary:
    """Summary of :func:`sample_angles`: histogram (15-degree bins by default), mean, quantiles;
    ``ci``: bootstrap intervals of the mean and of the shares above thresholds (``clusters``:
    one label per sample, e.g. each caption's image, to resample whole clusters)."""
    kw = {} if bin_edges is None else {"bin_edges": bin_edges}
    return Summary.of(sample_angles(A, B), ci=ci, n_boot=n_boot, seed=seed, clusters=clusters,
                      **kw)


