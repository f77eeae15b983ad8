"""Self-angle matrix drift (the paper's SAM): how much the angles between samples change."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..errors import InputError
from .angles import pair_of
from .checks import Array, check_count, check_seed, normalize
from .summary import (
    BOOT_N,
    BOOT_SEED,
    DEFAULT_QUANTILES,
    Interval,
    clean_edges,
    jsonable,
    mean_interval,
)

SAM_EDGES = tuple(float(x) for x in [*range(0, 21), 25, 30, 45, 60, 90, 180])
_FINE_BINS = 18000  # SAM drift histogram resolution: 0.01 degree over [0, 180]
_TO_BIN = _FINE_BINS / math.pi  # radians -> fine bin
TILE_COLS = 4096  # Gram tiles of chunk_size x 4096: small enough to stay in cache


@dataclasses.dataclass(frozen=True)
class SamDriftResult:
    """Distribution of ``|angle(A_i, A_j) - angle(B_i, B_j)|`` over pairs i < j, in degrees.

    ``exact`` is True when every pair was used. Otherwise the numbers are estimates from
    ``n_pairs`` pairs drawn uniformly (with replacement) and ``stderr`` is the standard error
    of ``mean``. Quantiles come from a 0.01-degree histogram of the drifts.
    ``mean_ci`` (exact, with ``ci=True``): bootstrap interval of the mean over probe items,
    from the U-statistic's first-order (Hoeffding) terms ``2 h_i - mean``, ``h_i`` being item
    i's mean drift to all others; None otherwise.

    Attributes
    ----------
    n_samples, n_pairs : int
        Items N and pairs used (N(N-1)/2 when exact).
    exact : bool
        Every pair used.
    mean, std, stderr, median, max : float
        Drift statistics in degrees (``stderr``: of the mean, 0 when exact).
    quantiles : dict float -> float
        Drift at the quantiles asked for.
    bin_edges, histogram : tuple
        Histogram of the drift (degrees, pair counts).
    mean_ci : Interval or None
        95% bootstrap interval of the mean.

    See Also
    --------
    sam_drift : The measure that returns it.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> A = np.random.default_rng(0).standard_normal((50, 8))
    >>> r = sdtools.sam_drift(A, A)
    >>> r.exact, r.n_pairs, r.mean
    (True, 1225, 0.0)
    """

    n_samples: int
    n_pairs: int
    exact: bool
    mean: float
    std: float
    stderr: float
    median: float
    max: float
    quantiles: dict[float, float]
    bin_edges: tuple[float, ...]
    histogram: tuple[int, ...]
    mean_ci: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(dataclasses.asdict(self))
        return out


def _drift_rad(ga: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
    """Cosines of two Gram blocks -> ``|acos(ga) - acos(gb)|`` in radians (clamps in place)."""
    return torch.acos(ga.clamp_(-1.0, 1.0)).sub_(torch.acos(gb.clamp_(-1.0, 1.0))).abs_()


class _DriftAccumulator:
    """Sums, maximum, fine counts and (for the interval) per-item sums of drifts (radians),
    fed tile by tile; the tiles' buffers are allocated once (a fresh multi-megabyte tensor
    per tile costs more in page faults than the angle arithmetic)."""

    def __init__(self, n: int, rows: int, cols: int, dtype: torch.dtype, device: torch.device,
                 per_item: bool):
        self.fine = torch.zeros(_FINE_BINS + 1, dtype=torch.int64, device=device)
        self.total = 0.0
        self.total_sq = 0.0
        self.count = 0
        self.max = 0.0
        self._top = 0  # the fine bin of the maximum
        # per-item sums of its drifts to all others (for the interval)
        self.item = torch.zeros(n, dtype=torch.float64, device=device) if per_item else None
        size = rows * cols
        self._buf = [torch.empty(size, dtype=dtype, device=device) for _ in range(4)]
        self._idx = torch.empty(size, dtype=torch.int32, device=device)
        self._ones = torch.ones(max(rows, cols), dtype=dtype, device=device)

    def tile(self, xa: torch.Tensor, ya: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor,
             rows: slice, cols: slice) -> None:
        """Drifts of every pair (row i of ``xa``/``xb``, row j of ``ya``/``yb``)."""
        m, w = xa.shape[0], ya.shape[0]
        ga, gb, oa, ob = (b[: m * w].view(m, w) for b in self._buf)
        torch.mm(xa, ya.T, out=ga).clamp_(-1.0, 1.0)
        torch.mm(xb, yb.T, out=gb).clamp_(-1.0, 1.0)
        d = torch.sub(torch.acos(ga, out=oa), torch.acos(gb, out=ob), out=ga).abs_()
        if self.item is not None:
            r = torch.mv(d, self._ones[:w]).double()
            self.item[rows] += r
            self.item[cols] += torch.mv(d.T, self._ones[:m]).double()
            self.total += float(r.sum())
        else:
            self.total += float(d.sum())
        self._stats(d.view(-1), gb.view(-1), self._idx[: m * w])

    def within(self, d: torch.Tensor, iu: torch.Tensor, start: int) -> None:
        """The pairs i < j inside a chunk, ``d`` laid out as ``triu_indices`` ``iu``."""
        if d.numel() == 0:
            return
        if self.item is not None:
            dd = d.double()
            self.item.index_add_(0, iu[0] + start, dd)
            self.item.index_add_(0, iu[1] + start, dd)
        self.add(d)

    def add(self, d: torch.Tensor) -> None:
        """Drifts (flat, radians) counted without per-item sums."""
        self.total += float(d.sum(dtype=torch.float64))
        self._stats(d, torch.empty_like(d), torch.empty(d.numel(), dtype=torch.int32,
                                                         device=d.device))

    def _stats(self, flat: torch.Tensor, scratch: torch.Tensor, idx: torch.Tensor) -> None:
        """Counts in the 0.01-degree bins: int32 bin indices and int64 ``bincount``, exact for
        any N (a float32 histogram stops counting at 2^24 per bin)."""
        self.count += flat.numel()
        self.total_sq += float(torch.dot(flat, flat))
        idx.copy_(torch.mul(flat, _TO_BIN, out=scratch))  # truncates: the fine bin
        counts = torch.bincount(idx, minlength=_FINE_BINS + 1)
        self.fine += counts
        if bool(counts[self._top :].any()):  # only then can the maximum have grown
            self.max = max(self.max, float(flat.max()))
            self._top = int(self.max * _TO_BIN)

    def result(self, n_samples: int, bin_edges: Sequence[float], quantiles: Iterable[float],
               n_boot: int = BOOT_N, seed: int = BOOT_SEED,
               clusters: npt.ArrayLike | None = None) -> SamDriftResult:
        fine = self.fine.cpu().numpy().astype(np.float64)
        fine = np.concatenate([fine[: _FINE_BINS - 1], [fine[-2] + fine[-1]]])  # pi: last bin
        width = 180.0 / _FINE_BINS
        deg = 180.0 / math.pi
        cdf = np.cumsum(fine)
        n = self.count
        mean = self.total / n * deg
        var = max(self.total_sq / n - (self.total / n) ** 2, 0.0) * n / max(n - 1, 1) * deg**2
        mean_ci = None
        if self.item is not None and n_samples > 2:
            h = self.item.cpu().numpy() / (n_samples - 1) * deg  # each item's mean drift
            mean_ci = mean_interval(2.0 * h - mean, n_boot, seed, clusters=clusters)

        def q(p: float) -> float:
            # interpolate inside the fine bin that holds the p-quantile
            target = p * n
            k = int(np.searchsorted(cdf, target, side="left"))
            k = min(k, _FINE_BINS - 1)
            before = cdf[k - 1] if k else 0.0
            frac = (target - before) / fine[k] if fine[k] else 0.0
            return float(min((k + frac) * width, self.max * deg))

        centres = (np.arange(_FINE_BINS) + 0.5) * width
        edges = np.asarray(bin_edges, dtype=np.float64)
        idx = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, len(edges) - 2)
        hist = np.bincount(idx, weights=fine, minlength=len(edges) - 1)
        return SamDriftResult(
            n_samples=n_samples,
            n_pairs=n,
            exact=True,
            mean=mean,
            std=math.sqrt(var),
            stderr=0.0,
            median=q(0.5),
            max=self.max * deg,
            quantiles={float(p): q(p) for p in quantiles},
            bin_edges=clean_edges(edges),
            histogram=tuple(int(round(h)) for h in hist),
            mean_ci=mean_ci,
        )


def sam_drift(
    A: Array,
    B: Array,
    chunk_size: int = 256,
    max_pairs: int | None = None,
    seed: int = 0,
    bin_edges: Sequence[float] = SAM_EDGES,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    progress: bool = False,
    ci: bool = False,
    n_boot: int = BOOT_N,
    ci_seed: int = BOOT_SEED,
    clusters: npt.ArrayLike | None = None,
) -> SamDriftResult:
    """Self-angle matrix drift ``|S^a_ij - S^b_ij|`` over pairs i < j (the paper's SAM), degrees.

    Rows are L2-normalised first. Exact by default: only the pairs i < j are computed, in
    Gram tiles of ``chunk_size`` x 4096 (about 4 such tiles in memory, small enough that the
    angle arithmetic runs in cache); no N x N matrix is ever held. With ``max_pairs`` set and
    smaller than N(N-1)/2, the distribution is estimated from ``max_pairs`` uniformly sampled
    pairs (``exact=False``, with the standard error of the mean); memory is then O(N + max_pairs)
    and the inputs are never copied whole. ``ci`` (exact only): a bootstrap interval of the
    mean over probe items (``n_boot`` resamples, ``ci_seed``; see :class:`SamDriftResult`);
    ``clusters`` (one label per item, e.g. each caption's image): resample whole clusters.

    A rigid rotation of B leaves the drift at zero; the paper's picture of rotation is a large
    :func:`sample_angles` with a small drift.

    Parameters
    ----------
    A, B : array (N, D), numpy or torch
        Embeddings of the same N items under checkpoints a and b.
    chunk_size : int
        Rows per Gram tile.
    max_pairs : int, optional
        Estimate from this many sampled pairs (None: every pair).
    seed : int
        Seed of the sampled pairs.
    bin_edges, quantiles : sequence of float
        Histogram edges (degrees) and quantiles reported.
    progress : bool
        A progress bar over the tiles.
    ci : bool
        A 95% bootstrap interval of the mean (exact only; ``n_boot`` resamples, ``ci_seed``).
    n_boot, ci_seed : int
        Bootstrap resamples and their seed (used with ``ci``).
    clusters : array (N,), optional
        One label per item (each caption's image): whole clusters are resampled.

    Returns
    -------
    SamDriftResult
        The distribution of the drift over pairs.

    Raises
    ------
    InputError
        ``A`` or ``B`` is not a real float (N, D) numpy array or torch tensor, the two differ
        in shape, have fewer than 2 rows, or hold a NaN, Inf or all-zero row; or a tensor is
        on the meta device.
        Also: ``chunk_size`` below 1, ``max_pairs`` below 2, ``seed`` not an integer in
        [0, 2^63), or with ``ci`` a bad ``n_boot`` or ``ci_seed``.

    See Also
    --------
    SamDriftResult : The result's fields.
    sample_angles : The per-sample angles (RAD), large under a rotation that keeps this small.
    topology_kept : The paper's criterion, this drift read against its null.
    procrustes : The rotation that best takes A onto B.

    References
    ----------
    1. Z. Ni, L. Wei, S. Tang, Y. Zhuang, Q. Tian. Continual Vision-Language Representation
       Learning with Off-Diagonal Information. ICML 2023, PMLR 202:26129-26149
       (arXiv:2305.07437).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 16))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    >>> round(sdtools.sam_drift(A, A @ Q).mean, 6)  # a rotation keeps every self-angle
    0.0
    >>> sdtools.sam_drift(A, A + rng.standard_normal(A.shape)).mean > 5
    True
    """
    if chunk_size < 1:
        raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
    check_seed(seed)
    a, b = pair_of(A, B)
    n = a.shape[0]
    total_pairs = n * (n - 1) // 2
    if max_pairs is not None:
        check_count(max_pairs, "max_pairs", 2, what=" (or None: every pair)")
        if max_pairs < total_pairs:
            return _sam_drift_sampled(a, b, int(max_pairs), seed, bin_edges, quantiles)
    a = normalize(a)
    b = normalize(b)
    cols = min(TILE_COLS, max(n - chunk_size, 1))
    acc = _DriftAccumulator(n, min(chunk_size, n), cols, a.dtype, a.device, per_item=ci)
    starts = range(0, n, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="SAM drift", unit="chunk", leave=False)
    for s in starts:
        e = min(s + chunk_size, n)
        ai, bi = a[s:e], b[s:e]
        # pairs inside the chunk: strictly upper triangle
        iu = torch.triu_indices(e - s, e - s, offset=1, device=a.device)
        acc.within(_drift_rad((ai @ ai.T)[iu[0], iu[1]], (bi @ bi.T)[iu[0], iu[1]]), iu, s)
        for j in range(e, n, cols):  # every pair (i in chunk, j after it), tile by tile
            k = min(j + cols, n)
            acc.tile(ai, a[j:k], bi, b[j:k], slice(s, e), slice(j, k))
    return acc.result(n, bin_edges, quantiles, n_boot, ci_seed, clusters)


SAMPLE_BLOCK = 128  # rows a side of a sampled Gram block: pairs come 16,384 at a time


def _sam_drift_sampled(a: torch.Tensor, b: torch.Tensor, max_pairs: int, seed: int,
                       bin_edges: Sequence[float], quantiles: Sequence[float]) -> SamDriftResult:
    """``max_pairs`` pairs in Gram blocks: each block pairs ``SAMPLE_BLOCK`` random rows with
    as many other random rows (disjoint, so i != j), one matrix product per checkpoint, so the
    cost is that of a blocked Gram of the same number of pairs; every pair is uniform over the
    unordered pairs. The drifts go into the exact path's 0.01-degree counts (no sort of the
    sample). Pairs of one block share rows, so the standard error is taken from the spread of
    the block means."""
    n = a.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    inv_a = 1.0 / torch.linalg.vector_norm(a, dim=1)
    inv_b = 1.0 / torch.linalg.vector_norm(b, dim=1)
    side = max(1, min(SAMPLE_BLOCK, n // 2))
    acc = _DriftAccumulator(n, side, side, a.dtype, a.device, per_item=False)
    means, sizes = [], []
    done = 0
    perm, used = torch.randperm(n, generator=gen), 0
    while done < max_pairs:
        if used + 2 * side > n:  # blocks take disjoint slices of one permutation, then anew
            perm, used = torch.randperm(n, generator=gen), 0
        rows = perm[used : used + 2 * side].to(a.device)
        used += 2 * side
        i, j = rows[:side], rows[side:]
        k = min(side * side, max_pairs - done)
        before = acc.total
        xa, ya = a[i] * inv_a[i][:, None], a[j] * inv_a[j][:, None]
        xb, yb = b[i] * inv_b[i][:, None], b[j] * inv_b[j][:, None]
        if k == side * side:
            acc.tile(xa, ya, xb, yb, slice(0), slice(0))
        else:  # the last block: only the pairs still wanted
            acc.add(_drift_rad((xa @ ya.T).reshape(-1)[:k], (xb @ yb.T).reshape(-1)[:k]))
        means.append((acc.total - before) / k * (180.0 / math.pi))
        sizes.append(k)
        done += k
    r = acc.result(n, bin_edges, quantiles)
    return dataclasses.replace(
        r, exact=False,
        stderr=_block_stderr(np.asarray(means), np.asarray(sizes, dtype=np.float64), r.std,
                             max_pairs))


def _block_stderr(means: np.ndarray, sizes: np.ndarray, std: float, pairs: int) -> float:
    """Standard error of the mean of block-sampled pairs: from the spread of the block means
    (weighted by their pairs) when there are several blocks, never below the iid value."""
    iid = std / math.sqrt(pairs)
    if means.size < 2:
        return iid
    w = sizes / sizes.sum()
    mu = float(w @ means)
    var = float(w @ (means - mu) ** 2) / (means.size - 1) * means.size
    return max(iid, math.sqrt(var / means.size))
