"""One pass over two embedding matrices: the cross-covariance ``A^T B`` per fold, and norms.

Everything the Procrustes fit, its in-sample and held-out shares and its jitter null need
follows from these D x D matrices and a few sums, so the data is read once.
"""

from __future__ import annotations

import dataclasses

import torch

from .checks import checked_with_norms, common, same_shape

BLOCK = 1024  # rows per block at most; block b belongs to group b % G and fold b % k
GROUPS_PER_FOLD = 11  # groups of probe items per fold, the units of the bootstrap intervals


@dataclasses.dataclass
class CrossCov:
    """Per fold f: ``M[f] = A_f^T B_f`` (float64, on CPU), ``aa[f] = sum |a_i|^2``,
    ``bb[f] = sum |b_i|^2``, ``ab[f] = sum <a_i, b_i>``, ``n[f]`` rows (rows unit, or centred).

    The probe's rows also fall in ``G`` groups (a multiple of k; group g lies in fold g % k):
    ``group_M[g]`` (the working dtype and device; None unless asked) and ``group_stats`` (rows
    aa, bb, ab, n per group) are what the bootstrap intervals resample. ``block``: rows per
    block of every pass (block b in group b % G)."""

    M: torch.Tensor  # (k, D, D)
    aa: torch.Tensor  # (k,)
    bb: torch.Tensor
    ab: torch.Tensor
    n: torch.Tensor
    block: int = BLOCK
    group_M: torch.Tensor | None = None  # (G, D, D)
    group_stats: torch.Tensor | None = None  # (4, G)
    eps: float = float(torch.finfo(torch.float32).eps)  # of the dtype M was accumulated in

    @property
    def total(self) -> torch.Tensor:
        return self.M.sum(0)

    @property
    def base(self) -> float:
        """``||A - B||^2``: the whole change."""
        return float(self.aa.sum() + self.bb.sum() - 2 * self.ab.sum())


def prepare(A, B, center: bool):
    """Checked tensors on one device and dtype, the inverse row norms, and the centres."""
    a, na = checked_with_norms(A, "A")
    b, nb = checked_with_norms(B, "B")
    same_shape(a, b, "A", "B")
    a, b = common(a, b)
    ia = 1.0 / na.to(device=a.device, dtype=a.dtype)
    ib = 1.0 / nb.to(device=a.device, dtype=a.dtype)
    tol = 8 * torch.finfo(a.dtype).eps
    unit = bool(((na - 1).abs().max() <= tol) & ((nb - 1).abs().max() <= tol))
    ma = mb = None
    if center:
        ma = (a * ia).mean(0, keepdim=True)
        mb = (b * ib).mean(0, keepdim=True)
    return a, b, ia, ib, unit, ma, mb


def rows(a, b, ia, ib, unit, ma, mb, s: int, e: int):
    """Rows s:e of A and B, unit (and centred when asked); no copy when already unit."""
    if unit and ma is None:
        return a[s:e], b[s:e]
    ac, bc = a[s:e] * ia[s:e], b[s:e] * ib[s:e]
    if ma is not None:
        ac = ac - ma
        bc = bc - mb
    return ac, bc


def layout(n: int, k: int, per_fold: int = 1) -> tuple[int, int, int]:
    """``(k, G, block)``: folds (at most n), groups (``per_fold`` a fold, at most n) and rows
    per block (``BLOCK``, or fewer so that every group gets rows). Every pass uses this."""
    k = max(1, min(k, n))
    groups = k * max(1, min(per_fold, n // k))
    return k, groups, BLOCK if n >= groups * BLOCK else max(1, n // groups)


def cross_covariance(prep, k: int, per_fold: int = 1) -> CrossCov:
    """One pass: fold (and, with ``per_fold`` > 1, group) cross-covariances and norms."""
    a = prep[0]
    unit = prep[4] and prep[5] is None
    n, d = a.shape
    k, groups, block = layout(n, k, per_fold)
    Gm = torch.zeros(groups, d, d, dtype=a.dtype, device=a.device)
    stats = torch.zeros(4, groups, dtype=torch.float64)
    for i, s in enumerate(range(0, n, block)):
        e = min(s + block, n)
        g = i % groups
        ac, bc = rows(*prep, s, e)
        Gm[g].addmm_(ac.T, bc)
        if unit:  # unit rows: the squared norms are the row count
            stats[0, g] += e - s
            stats[1, g] += e - s
        else:
            stats[0, g] += float((ac * ac).sum(dtype=torch.float64))
            stats[1, g] += float((bc * bc).sum(dtype=torch.float64))
        stats[2, g] += float(torch.linalg.vecdot(ac, bc).sum(dtype=torch.float64))
        stats[3, g] += e - s
    Ms = Gm.view(groups // k, k, d, d).sum(0) if groups > k else Gm
    folded = stats.view(4, groups // k, k).sum(1)
    return CrossCov(Ms.double().cpu(), *folded, block=block,
                    group_M=Gm if groups > k else None, group_stats=stats,
                    eps=float(torch.finfo(a.dtype).eps))
