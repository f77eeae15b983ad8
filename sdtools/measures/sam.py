"""Self-angle matrix drift (the paper's SAM): how much the angles between samples change."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..errors import InputError
from .angles import pair_of
from .checks import normalize
from .summary import DEFAULT_QUANTILES, Summary, clean_edges, jsonable

SAM_EDGES = tuple(float(x) for x in [*range(0, 21), 25, 30, 45, 60, 90, 180])
_FINE_BINS = 18000  # SAM drift histogram resolution: 0.01 degree over [0, 180]



@dataclasses.dataclass(frozen=True)
class SamDriftResult:
    """Distribution of ``|angle(A_i, A_j) - angle(B_i, B_j)|`` over pairs i < j, in degrees.

    ``exact`` is True when every pair was used. Otherwise the numbers are estimates from
    ``n_pairs`` pairs drawn uniformly (with replacement) and ``stderr`` is the standard error
    of ``mean``. For the exact computation quantiles come from a 0.01-degree histogram.
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

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


def _drift_block(ga: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
    """In place: cosines of two Gram blocks -> absolute angle difference in degrees (in ``ga``)."""
    ga.clamp_(-1.0, 1.0).acos_()
    gb.clamp_(-1.0, 1.0).acos_()
    return ga.sub_(gb).abs_().mul_(180.0 / math.pi)


def fine_counts(d: torch.Tensor, rows_per_pass: int = 1 << 22) -> torch.Tensor:
    """Exact int64 counts of ``d`` (degrees) in the 0.01-degree bins over [0, 180] (values
    outside are clipped into the end bins), a bounded number of values at a time.

    Integer bin indices and ``bincount`` count exactly for any N (a float32 histogram stops
    counting at 2^24 per bin)."""
    flat = d.reshape(-1)
    out = torch.zeros(_FINE_BINS, dtype=torch.int64, device=d.device)
    for s in range(0, flat.numel(), rows_per_pass):
        part = flat[s : s + rows_per_pass]
        idx = (part * (_FINE_BINS / 180.0)).to(torch.int64).clamp_(0, _FINE_BINS - 1)
        out += torch.bincount(idx, minlength=_FINE_BINS)
    return out


class _DriftAccumulator:
    def __init__(self, device):
        self.fine = torch.zeros(_FINE_BINS, dtype=torch.int64, device=device)
        self.total = 0.0
        self.total_sq = 0.0
        self.count = 0
        self.max = 0.0

    def add(self, d: torch.Tensor) -> None:
        if d.numel() == 0:
            return
        self.count += d.numel()
        # row sums in the input dtype (pairwise summation), accumulated in float64
        rows = d if d.ndim == 2 else d[None, :]
        self.total += float(rows.sum(1).double().sum())
        self.total_sq += float((torch.linalg.vector_norm(rows, dim=1).double() ** 2).sum())
        self.max = max(self.max, float(d.max()))
        self.fine += fine_counts(d)

    def result(self, n_samples: int, bin_edges, quantiles) -> SamDriftResult:
        fine = self.fine.cpu().numpy().astype(np.float64)
        width = 180.0 / _FINE_BINS
        cdf = np.cumsum(fine)
        n = self.count
        mean = self.total / n
        var = max(self.total_sq / n - mean * mean, 0.0) * n / max(n - 1, 1)

        def q(p: float) -> float:
            # interpolate inside the fine bin that holds the p-quantile
            target = p * n
            k = int(np.searchsorted(cdf, target, side="left"))
            k = min(k, _FINE_BINS - 1)
            before = cdf[k - 1] if k else 0.0
            frac = (target - before) / fine[k] if fine[k] else 0.0
            return min((k + frac) * width, self.max)

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
            max=self.max,
            quantiles={float(p): q(p) for p in quantiles},
            bin_edges=clean_edges(edges),
            histogram=tuple(int(round(h)) for h in hist),
        )


def sam_drift(
    A,
    B,
    chunk_size: int = 4096,
    max_pairs: int | None = None,
    seed: int = 0,
    bin_edges=SAM_EDGES,
    quantiles=DEFAULT_QUANTILES,
    progress: bool = False,
) -> SamDriftResult:
    """Self-angle matrix drift ``|S^a_ij - S^b_ij|`` over pairs i < j (the paper's SAM), degrees.

    Rows are L2-normalised first. Exact by default: the Gram matrices are computed in row
    chunks of ``chunk_size`` rows (only the pairs i < j, so half of each product), so memory is
    about ``2 * chunk_size * N`` values; no N x N matrix is ever held. With ``max_pairs`` set and
    smaller than N(N-1)/2, the distribution is estimated from ``max_pairs`` uniformly sampled
    pairs (``exact=False``, with the standard error of the mean); memory is then O(N + max_pairs)
    and the inputs are never copied whole.

    A rigid rotation of B leaves the drift at zero; the paper's picture of rotation is a large
    :func:`sample_angles` with a small drift.
    """
    if chunk_size < 1:
        raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
    a, b = pair_of(A, B)
    n = a.shape[0]
    total_pairs = n * (n - 1) // 2
    if max_pairs is not None:
        if max_pairs < 2:
            raise InputError(f"max_pairs must be at least 2, got {max_pairs}")
        if max_pairs < total_pairs:
            return _sam_drift_sampled(a, b, int(max_pairs), seed, bin_edges, quantiles)
    a = normalize(a)
    b = normalize(b)
    acc = _DriftAccumulator(a.device)
    starts = range(0, n, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="SAM drift", unit="chunk")
    for s in starts:
        e = min(s + chunk_size, n)
        ai, bi = a[s:e], b[s:e]
        # diagonal block: pairs inside the chunk, strictly upper triangle
        iu = torch.triu_indices(e - s, e - s, offset=1, device=a.device)
        acc.add(_drift_block((ai @ ai.T)[iu[0], iu[1]], (bi @ bi.T)[iu[0], iu[1]]))
        if e < n:  # every pair (i in chunk, j after the chunk)
            acc.add(_drift_block(ai @ a[e:].T, bi @ b[e:].T))
    return acc.result(n, bin_edges, quantiles)


def _sam_drift_sampled(a, b, max_pairs, seed, bin_edges, quantiles) -> SamDriftResult:
    n = a.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    inv_a = 1.0 / torch.linalg.vector_norm(a, dim=1)
    inv_b = 1.0 / torch.linalg.vector_norm(b, dim=1)
    out = torch.empty(max_pairs, dtype=a.dtype)
    batch = 1 << 17
    done = 0
    while done < max_pairs:
        m = min(batch, max_pairs - done)
        i = torch.randint(0, n, (2 * m,), generator=gen)
        j = torch.randint(0, n, (2 * m,), generator=gen)
        keep = i != j  # uniform over unordered pairs i != j (ordered draw, then drop i == j)
        i, j = i[keep][:m], j[keep][:m]
        k = i.numel()
        i, j = i.to(a.device), j.to(a.device)
        ca = (a[i] * a[j]).sum(1) * inv_a[i] * inv_a[j]
        cb = (b[i] * b[j]).sum(1) * inv_b[i] * inv_b[j]
        out[done : done + k] = _drift_block(ca, cb).cpu()
        done += k
    s = Summary.of(out.numpy(), bin_edges=bin_edges, quantiles=quantiles, thresholds=())
    return SamDriftResult(
        n_samples=n,
        n_pairs=max_pairs,
        exact=False,
        mean=s.mean,
        std=s.std,
        stderr=s.std / math.sqrt(max_pairs),
        median=s.median,
        max=s.max,
        quantiles=s.quantiles,
        bin_edges=s.bin_edges,
        histogram=s.histogram,
    )


