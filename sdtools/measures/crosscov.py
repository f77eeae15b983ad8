"""One pass over two embedding matrices: the cross-covariance ``A^T B`` per fold, and norms.

Everything the Procrustes fit, its in-sample and held-out shares and its jitter null need
follows from these D x D matrices and a few sums, so the data is read once.
"""

from __future__ import annotations

import dataclasses

import torch

from .checks import checked_with_norms, common, same_shape

BLOCK = 1024  # rows per block; block b belongs to fold b % k (folds mix the whole probe)


@dataclasses.dataclass
class CrossCov:
    """Per fold f: ``M[f] = A_f^T B_f`` (float64, on CPU), ``aa[f] = sum |a_i|^2``,
    ``bb[f] = sum |b_i|^2``, ``ab[f] = sum <a_i, b_i>``, ``n[f]`` rows (rows unit, or centred)."""

    M: torch.Tensor  # (k, D, D)
    aa: torch.Tensor  # (k,)
    bb: torch.Tensor
    ab: torch.Tensor
    n: torch.Tensor

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


def block_size(n: int, k: int) -> int:
    """Rows per block for ``k`` folds (block b in fold b % k): ``BLOCK``, or smaller for a
    small probe so that every fold gets rows. Every pass over the folds uses this."""
    return BLOCK if n >= k * BLOCK else max(1, n // k)


def cross_covariance(prep, k: int) -> CrossCov:
    a = prep[0]
    unit = prep[4] and prep[5] is None
    n, d = a.shape
    k = max(1, min(k, (n + BLOCK - 1) // BLOCK if n >= 2 * BLOCK else n))
    Ms = torch.zeros(k, d, d, dtype=a.dtype, device=a.device)
    stats = torch.zeros(4, k, dtype=torch.float64)
    block = block_size(n, k)
    for i, s in enumerate(range(0, n, block)):
        e = min(s + block, n)
        f = i % k
        ac, bc = rows(*prep, s, e)
        Ms[f].addmm_(ac.T, bc)
        if unit:  # unit rows: the squared norms are the row count
            stats[0, f] += e - s
            stats[1, f] += e - s
        else:
            stats[0, f] += float((ac * ac).sum(dtype=torch.float64))
            stats[1, f] += float((bc * bc).sum(dtype=torch.float64))
        stats[2, f] += float(torch.linalg.vecdot(ac, bc).sum(dtype=torch.float64))
        stats[3, f] += e - s
    return CrossCov(Ms.double().cpu(), stats[0], stats[1], stats[2], stats[3])
