"""Extra representation-similarity measures researchers compare against.

- :func:`linear_cka`: linear centred kernel alignment (Kornblith et al. 2019), optionally with
  the debiased (unbiased HSIC) estimator of Song et al. 2012 / Nguyen et al. 2021.
- :func:`mutual_knn`: mutual k-nearest-neighbour alignment (Huh et al. 2024): the mean share
  of each sample's k nearest neighbours (cosine, excluding itself) that both spaces agree on.

Both work in feature space or in chunks, never forming an N x N matrix whole. Rows are
L2-normalised first, as for every sdtools measure. The two spaces may differ in dimension.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .checks import Array, as_embeddings, check_count, check_seed, normalize


def _pair_any_dim(X: Array, Y: Array) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked inputs as float32 or float64 (as given; half precision to float32), rows not
    yet normalised (the passes below normalise block by block)."""
    x = as_embeddings(X, "X")
    y = as_embeddings(Y, "Y")
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"X has {x.shape[0]} rows but Y has {y.shape[0]}; both must embed the same samples"
        )
    return x, y.to(x.device)


ROWS = 8192  # rows per block of the CKA pass


def _moments(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """One pass over unit rows in blocks: ``x^T y``, ``x^T x``, ``y^T y``, column sums and
    squared row norms, summed in float64 without a float64 copy of the inputs."""
    n = x.shape[0]
    d1, d2 = x.shape[1], y.shape[1]
    f64: dict[str, Any] = dict(dtype=torch.float64, device=x.device)
    m = {"xy": torch.zeros(d1, d2, **f64), "xx": torch.zeros(d1, d1, **f64),
         "yy": torch.zeros(d2, d2, **f64), "sx": torch.zeros(d1, **f64),
         "sy": torch.zeros(d2, **f64), "kd": torch.empty(n, **f64), "ld": torch.empty(n, **f64)}
    for s in range(0, n, ROWS):
        # products in the inputs' dtype block by block, sums across blocks in float64
        xb, yb = normalize(x[s : s + ROWS]), normalize(y[s : s + ROWS])
        m["xy"] += (xb.T @ yb).double()
        m["xx"] += (xb.T @ xb).double()
        m["yy"] += (yb.T @ yb).double()
        m["sx"] += xb.sum(0, dtype=torch.float64)
        m["sy"] += yb.sum(0, dtype=torch.float64)
        m["kd"][s : s + ROWS] = (xb * xb).sum(1, dtype=torch.float64)
        m["ld"][s : s + ROWS] = (yb * yb).sum(1, dtype=torch.float64)
    return m


def _row_dots(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``normalize(x) @ v`` in float64 blocks."""
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for s in range(0, x.shape[0], ROWS):
        out[s : s + ROWS] = normalize(x[s : s + ROWS].double()) @ v
    return out


def _hsic(C: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, kd: torch.Tensor,
          ld: torch.Tensor, r1: torch.Tensor | None, r2: torch.Tensor | None, n: int,
          debiased: bool) -> torch.Tensor:
    """HSIC of linear kernels from the feature cross-product ``C`` (``x^T y``), column sums
    ``s1``, ``s2``, squared row norms ``kd``, ``ld`` and ``r1 = x s1``, ``r2 = y s2``."""
    if not debiased:
        plain: torch.Tensor = torch.linalg.matrix_norm(C - torch.outer(s1, s2) / n) ** 2
        return plain
    # unbiased estimator on kernels with zeroed diagonals
    assert r1 is not None and r2 is not None  # the row sums come with debiased
    tr_kl = torch.linalg.matrix_norm(C) ** 2 - (kd * ld).sum()
    k1, l1 = r1 - kd, r2 - ld  # K~ 1, L~ 1
    sum_k, sum_l = k1.sum(), l1.sum()
    unbiased: torch.Tensor = (
        tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)
    ) / (n * (n - 3))
    return unbiased


def linear_cka(X: Array, Y: Array, debiased: bool = False) -> float:
    """Linear CKA between (N, D1) and (N, D2) representations of the same N samples, in [0, 1].

    Invariant to orthogonal transforms and isotropic scaling of either space: a pure rotation
    gives 1. ``debiased=True`` needs N >= 4 and corrects the small-sample bias of the plain
    estimator (it may then fall slightly outside [0, 1]). Computed from D x D feature
    products of row blocks summed in float64 (no N x N kernel, no float64 copy of the
    inputs).
    Constant representations (every row the same direction) have no variance to align: an
    error.

    Parameters
    ----------
    X : array (N, D1)
        One representation of N samples.
    Y : array (N, D2)
        Another of the same samples.
    debiased : bool
        The small-sample corrected estimator.

    Returns
    -------
    float
        CKA in [0, 1] (1: the same up to rotation and scale).

    Raises
    ------
    InputError
        ``X`` or ``Y`` is not a real float 2-D array or tensor, has fewer than 2 rows or
        holds a NaN, Inf or all-zero row; the two differ in rows; ``debiased`` with fewer
        than 4 samples; every row of X or of Y points the same way (no variance); or a
        tensor is on the meta device.

    See Also
    --------
    mutual_knn : Agreement of the nearest neighbours, a local counterpart.
    procrustes : Whether the change is a rotation, and which.

    References
    ----------
    1. S. Kornblith, M. Norouzi, H. Lee, G. Hinton. Similarity of Neural Network
       Representations Revisited. ICML 2019 (arXiv:1905.00414).
    2. L. Song, A. Smola, A. Gretton, J. Bedo, K. Borgwardt. Feature Selection via Dependence
       Maximization. JMLR 13, 2012 (the unbiased HSIC estimator).
    3. T. Nguyen, M. Raghu, S. Kornblith. Do Wide and Deep Networks Learn the Same Things?
       Uncovering How Neural Network Representations Vary with Width and Depth. ICLR 2021
       (debiased CKA).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 5))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    >>> round(sdtools.linear_cka(X, 3 * X @ Q), 6)
    1.0
    """
    x, y = _pair_any_dim(X, Y)
    n = x.shape[0]
    if debiased and n < 4:
        raise InputError(f"debiased CKA needs at least 4 samples, got {n}")
    m = _moments(x, y)
    rx = _row_dots(x, m["sx"]) if debiased else None
    ry = _row_dots(y, m["sy"]) if debiased else None
    xy = _hsic(m["xy"], m["sx"], m["sy"], m["kd"], m["ld"], rx, ry, n, debiased)
    xx = _hsic(m["xx"], m["sx"], m["sx"], m["kd"], m["kd"], rx, rx, n, debiased)
    yy = _hsic(m["yy"], m["sy"], m["sy"], m["ld"], m["ld"], ry, ry, n, debiased)
    if float(xx) <= 1e-12 * n * n or float(yy) <= 1e-12 * n * n:
        raise InputError("linear CKA is undefined when every row of X or of Y points the same "
                         "way (no variance); compare representations that vary across samples")
    return float(xy / torch.sqrt(xx * yy))


KNN_BLOCK_BYTES = 256 << 20  # similarity block held at a time


def knn_indices(x: torch.Tensor, k: int, chunk_size: int | None = None,
                queries: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (Q, k) of each query row's k most cosine-similar other rows of ``x`` (rows
    must be unit); ``queries``: the query rows' indices (default: every row, Q = N).

    Rows in blocks of ``chunk_size`` (default: as many as fit a 256 MB similarity block)."""
    n = x.shape[0]
    q = torch.arange(n, device=x.device) if queries is None else queries.to(x.device)
    if chunk_size is None:
        chunk_size = max(1, min(4096, KNN_BLOCK_BYTES // (x.element_size() * max(n, 1))))
    out = torch.empty(q.numel(), k, dtype=torch.long, device=x.device)
    for s in range(0, q.numel(), chunk_size):
        e = min(s + chunk_size, q.numel())
        sim = x[q[s:e]] @ x.T
        sim[torch.arange(e - s, device=x.device), q[s:e]] = -torch.inf
        out[s:e] = sim.topk(k, dim=1).indices
    return out


def mutual_knn(X: Array, Y: Array, k: int = 10, chunk_size: int | None = None,
               queries: int | None = None, seed: int = 0) -> float:
    """Mean over samples of ``|kNN_X(i) & kNN_Y(i)| / k``, in [0, 1] (1: same neighbourhoods).

    Similarities in float32 (neighbour order is what counts), in blocks of at most 256 MB.
    ``queries``: the mean over this many samples drawn at random (``seed``), each with its
    neighbours among all N (cost ``queries x N`` instead of ``N^2``; the estimate's standard
    error is at most ``0.5 / sqrt(queries)``); None or at least N: every sample.

    Parameters
    ----------
    X, Y : array (N, D)
        Two representations of the same N samples.
    k : int
        Neighbours compared (the sample itself excluded).
    chunk_size : int, optional
        Rows per similarity block (default: from the 256 MB budget).
    queries : int, optional
        Samples the mean is taken over, drawn at random (default: every sample).
    seed : int
        Seed of the drawn samples.

    Returns
    -------
    float
        Mean share of shared neighbours, in [0, 1].

    Raises
    ------
    InputError
        ``X`` or ``Y`` is not a real float 2-D array or tensor, has fewer than 2 rows or
        holds a NaN, Inf or all-zero row; the two differ in rows; ``k`` outside
        ``[1, N - 1]``; ``queries`` not an integer of at least 1; or a tensor is on the meta
        device.

    See Also
    --------
    linear_cka : A global similarity of the two representations.
    topology_kept : Whether the angles between samples are kept, against a null.

    References
    ----------
    1. M. Huh, B. Cheung, T. Wang, P. Isola. The Platonic Representation Hypothesis.
       ICML 2024 (mutual nearest-neighbour alignment).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> X = np.random.default_rng(0).standard_normal((50, 4))
    >>> sdtools.mutual_knn(X, X, k=5)
    1.0
    """
    x, y = _pair_any_dim(X, Y)
    x, y = normalize(x.float()), normalize(y.float())
    n = x.shape[0]
    if not 1 <= k < n:
        raise InputError(f"k must be in [1, {n - 1}] for {n} samples, got {k}")
    if queries is not None:
        check_count(queries, "queries", 1)
    q = None
    if queries is not None and queries < n:
        gen = np.random.default_rng(check_seed(seed))
        q = torch.from_numpy(np.sort(gen.choice(n, int(queries), replace=False)))
    nx = knn_indices(x, k, chunk_size, q)
    ny = knn_indices(y, k, chunk_size, q)
    m = nx.shape[0]
    hits = 0
    for s in range(0, m, 4096):
        e = min(s + 4096, m)
        hits += int((nx[s:e, :, None] == ny[s:e, None, :]).any(2).sum())
    return hits / (m * k)
