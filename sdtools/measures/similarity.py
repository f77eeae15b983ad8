"""Extra representation-similarity measures researchers compare against.

- :func:`linear_cka`: linear centred kernel alignment (Kornblith et al. 2019), optionally with
  the debiased (unbiased HSIC) estimator of Song et al. 2012 / Nguyen et al. 2021.
- :func:`mutual_knn`: mutual k-nearest-neighbour alignment (Huh et al. 2024): the mean share
  of each sample's k nearest neighbours (cosine, excluding itself) that both spaces agree on.

Both work in feature space or in chunks, never forming an N x N matrix whole. Rows are
L2-normalised first, as for every sdtools measure. The two spaces may differ in dimension.
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .checks import as_embeddings, normalize


def _pair_any_dim(X, Y) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_embeddings(X, "X")
    y = as_embeddings(Y, "Y")
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"X has {x.shape[0]} rows but Y has {y.shape[0]}; both must embed the same samples"
        )
    x = normalize(x.to(torch.float64))
    y = normalize(y.to(device=x.device, dtype=torch.float64))
    return x, y


def _hsic_terms(x: torch.Tensor, y: torch.Tensor, debiased: bool) -> torch.Tensor:
    """HSIC(K, L) for linear kernels K = x x^T, L = y y^T, computed from features (O(N D^2))."""
    n = x.shape[0]
    if not debiased:
        x = x - x.mean(0)
        y = y - y.mean(0)
        return torch.linalg.matrix_norm(x.T @ y) ** 2
    # unbiased estimator on kernels with zeroed diagonals
    kd = (x * x).sum(1)
    ld = (y * y).sum(1)
    tr_kl = torch.linalg.matrix_norm(x.T @ y) ** 2 - (kd * ld).sum()
    k1 = x @ x.sum(0) - kd  # K~ 1
    l1 = y @ y.sum(0) - ld  # L~ 1
    sum_k, sum_l = k1.sum(), l1.sum()
    return (tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)) / (
        n * (n - 3)
    )


def linear_cka(X, Y, debiased: bool = False) -> float:
    """Linear CKA between (N, D1) and (N, D2) representations of the same N samples, in [0, 1].

    Invariant to orthogonal transforms and isotropic scaling of either space: a pure rotation
    gives 1. ``debiased=True`` needs N >= 4 and corrects the small-sample bias of the plain
    estimator (it may then fall slightly outside [0, 1]).
    """
    x, y = _pair_any_dim(X, Y)
    if debiased and x.shape[0] < 4:
        raise InputError(f"debiased CKA needs at least 4 samples, got {x.shape[0]}")
    xy = _hsic_terms(x, y, debiased)
    xx = _hsic_terms(x, x, debiased)
    yy = _hsic_terms(y, y, debiased)
    return float(xy / torch.sqrt(xx * yy))


def knn_indices(x: torch.Tensor, k: int, chunk_size: int = 4096) -> torch.Tensor:
    """Indices (N, k) of each row's k most cosine-similar other rows (rows must be unit)."""
    n = x.shape[0]
    out = torch.empty(n, k, dtype=torch.long, device=x.device)
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        sim = x[s:e] @ x.T
        sim[torch.arange(e - s, device=x.device), torch.arange(s, e, device=x.device)] = -torch.inf
        out[s:e] = sim.topk(k, dim=1).indices
    return out


def mutual_knn(X, Y, k: int = 10, chunk_size: int = 4096) -> float:
    """Mean over samples of ``|kNN_X(i) & kNN_Y(i)| / k``, in [0, 1] (1: same neighbourhoods)."""
    x, y = _pair_any_dim(X, Y)
    n = x.shape[0]
    if not 1 <= k < n:
        raise InputError(f"k must be in [1, {n - 1}] for {n} samples, got {k}")
    nx = knn_indices(x, k, chunk_size)
    ny = knn_indices(y, k, chunk_size)
    hits = 0
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        hits += int((nx[s:e, :, None] == ny[s:e, None, :]).any(2).sum())
    return hits / (n * k)
