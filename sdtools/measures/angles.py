"""Per-sample rotation angles (the paper's RAD) between two checkpoints' embeddings.

``A`` and ``B`` are the same N samples of one modality under checkpoints a and b, shape (N, D),
as numpy arrays or torch tensors on any device; rows are L2-normalised first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from .checks import Array, as_embeddings, common, normalize, same_shape, stable_angle_deg, to_numpy
from .summary import Summary


def pair_of(A: Array, B: Array, name_a: str = "A",
            name_b: str = "B") -> tuple[torch.Tensor, torch.Tensor]:
    a = as_embeddings(A, name_a)
    b = as_embeddings(B, name_b)
    same_shape(a, b, name_a, name_b)
    return common(a, b)


def sample_angles(A: Array, B: Array) -> np.ndarray:
    """Per-sample rotation angle ``angle(A_i, B_i)`` in degrees.

    Rows are L2-normalised first. Uses ``2 atan2(|a-b|, |a+b|)``, accurate near 0 and 180
    degrees (no NaN at cosine +-1). This is the paper's Rotation Angle Distribution (RAD).

    Parameters
    ----------
    A, B : array (N, D), numpy or torch
        Embeddings of the same N samples under checkpoints a and b.

    Returns
    -------
    ndarray (N,), float64
        Angle of each sample between a and b, in [0, 180].

    Raises
    ------
    InputError
        ``A`` or ``B`` is not a real float (N, D) numpy array or torch tensor, the two differ
        in shape, have fewer than 2 rows, or hold a NaN, Inf or all-zero row; or a tensor is
        on the meta device.

    See Also
    --------
    rad : These angles summarised (histogram, mean, quantiles, shares above thresholds).
    sam_drift : How the angles between samples change (a rigid rotation keeps them).
    procrustes : The rotation that best takes A onto B, and how much of the change it explains.

    References
    ----------
    1. Z. Ni, L. Wei, S. Tang, Y. Zhuang, Q. Tian. Continual Vision-Language Representation
       Learning with Off-Diagonal Information. ICML 2023, PMLR 202:26129-26149
       (arXiv:2305.07437).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> sdtools.sample_angles(np.array([[1.0, 0.0], [0.0, 2.0]]),
    ...                       np.array([[0.0, 1.0], [0.0, 1.0]])).round(6)
    array([90.,  0.])
    """
    a, b = pair_of(A, B)
    return to_numpy(stable_angle_deg(normalize(a), normalize(b))).astype(np.float64)


def rad(A: Array, B: Array, bin_edges: Sequence[float] | None = None, ci: bool = False,
        n_boot: int = 1000, seed: int = 0, clusters: npt.ArrayLike | None = None) -> Summary:
    """The Rotation Angle Distribution: :func:`sample_angles` summarised.

    Parameters
    ----------
    A, B : array (N, D)
        Embeddings of the same N samples under checkpoints a and b.
    bin_edges : sequence of float, optional
        Histogram edges in degrees (default: 15-degree bins over [0, 180]).
    ci : bool
        Bootstrap 95% intervals of the mean and of the shares above thresholds.
    n_boot, seed : int
        Bootstrap resamples and their seed.
    clusters : array (N,), optional
        One label per sample (each caption's image): whole clusters are resampled.

    Returns
    -------
    Summary
        Mean, quantiles, histogram and shares above thresholds of the N angles.

    Raises
    ------
    InputError
        ``A`` or ``B`` is not a real float (N, D) numpy array or torch tensor, the two differ
        in shape, have fewer than 2 rows, or hold a NaN, Inf or all-zero row; or a tensor is
        on the meta device.
        Also with ``ci``: ``n_boot`` not an integer of at least 1, or ``seed`` not an integer
        in [0, 2^63).

    See Also
    --------
    sample_angles : The per-sample angles this summarises.
    Summary : The result's fields.
    sam_drift : The drift of the angles between samples, read beside this.

    References
    ----------
    1. Z. Ni, L. Wei, S. Tang, Y. Zhuang, Q. Tian. Continual Vision-Language Representation
       Learning with Off-Diagonal Information. ICML 2023, PMLR 202:26129-26149
       (arXiv:2305.07437).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> A = np.eye(4)
    >>> s = sdtools.rad(A, A[:, [1, 0, 2, 3]])
    >>> s.n, s.mean, s.share_above[45.0]
    (4, 45.0, 0.5)
    """
    kw = {} if bin_edges is None else {"bin_edges": bin_edges}
    return Summary.of(sample_angles(A, B), ci=ci, n_boot=n_boot, seed=seed, clusters=clusters,
                      **kw)


