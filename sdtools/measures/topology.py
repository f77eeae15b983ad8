"""The paper's criterion for rotation with its null: per-sample angles large while the angles
between samples are kept.

SAM drift alone has no scale: for pure jitter its ratio to the RAD ranges from about 0.05 to
0.35 depending on the data's shape and the jitter's, so no fixed threshold means anything.
The null here is jitter of exactly the observed size and kind: each sample ``i`` is turned by
its own observed angle ``theta_i``, in the direction another sample ``pi(i)`` moved (its
tangent direction, carried to ``i`` by parallel transport along the great circle). That
keeps the per-sample angles, their spread and the anisotropy of the changes, and destroys
only what a rotation has: the agreement between the samples' moves.
``topology_kept = 1 - drift / null``: 1 when the angles between samples are kept exactly (a
rotation), about 0 when they change as much as under jitter of the same size.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..errors import InputError
from .angles import pair_of
from .checks import check_seed, normalize
from .summary import jsonable

PAIRS = 200_000  # sampled pairs (every pair when there are fewer)
BATCH = 8192  # pairs per batch: memory flat in N


@dataclasses.dataclass(frozen=True)
class TopologyResult:
    """``drift``: mean self-angle drift (degrees) over the pairs used; ``null``: the same for
    the null move (module docstring); ``topology_kept = 1 - drift / null`` (None when nothing
    moved beyond rounding); ``n_pairs`` pairs (``exact``: all of them), ``seed`` of the pairs
    and the null.

    Attributes
    ----------
    drift, null : float
        Mean self-angle drift of the change and of its null move (degrees).
    topology_kept : float or None
        ``1 - drift / null``: 1 for a rotation, about 0 for a change no better than the null.
    n_pairs : int
        Pairs used; ``exact``: all of them.
    seed : int
        Seed of the pairs and of the null move.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> A = np.random.default_rng(0).standard_normal((100, 8))
    >>> r = sdtools.topology_kept(A, A)
    >>> r.drift, r.topology_kept is None  # nothing moved: nothing to judge
    (0.0, True)
    """

    drift: float
    null: float
    topology_kept: float | None
    n_pairs: int
    exact: bool
    seed: int

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


def _tangent(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's angle from a to b (radians) and the unit direction it moved in (a's tangent
    plane; zero where it did not move)."""
    cos = (a * b).sum(1).clamp(-1.0, 1.0)
    t = b - cos[:, None] * a
    norm = torch.linalg.vector_norm(t, dim=1)
    theta = torch.atan2(norm, cos)
    t = torch.where(norm[:, None] > 0, t / norm.clamp(min=1e-30)[:, None], torch.zeros_like(t))
    return theta, t


def _null_rows(a, b, ap, bp) -> torch.Tensor:
    """Rows a turned by their own angle (to b) in the direction another sample moved (ap to
    bp), carried to a's tangent plane by parallel transport along the great circle from ap
    to a (a rotation in their plane, so nothing of that direction is lost)."""
    theta, _ = _tangent(a, b)
    _, tp = _tangent(ap, bp)
    c = (ap * a).sum(1, keepdim=True)
    t = tp - (a * tp).sum(1, keepdim=True) / (1.0 + c).clamp(min=1e-12) * (ap + a)
    norm = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    t = torch.where(norm > 1e-12, t / norm.clamp(min=1e-30), torch.zeros_like(t))
    return torch.cos(theta)[:, None] * a + torch.sin(theta)[:, None] * t


def _pairs(n: int, max_pairs: int, gen) -> tuple[torch.Tensor, torch.Tensor, bool]:
    total = n * (n - 1) // 2
    if total <= max_pairs:
        i, j = torch.triu_indices(n, n, offset=1)
        return i, j, True
    i = torch.randint(0, n, (max_pairs,), generator=gen)
    j = torch.randint(0, n - 1, (max_pairs,), generator=gen)
    j = j + (j >= i).long()  # uniform over j != i
    return i, j, False


def topology_kept(A, B, max_pairs: int = PAIRS, seed: int = 0) -> TopologyResult:
    """The paper's criterion (per-sample angles large, self-angles kept) against its null.

    ``A``, ``B``: (N, D) embeddings of the same samples under checkpoints a and b (rows
    L2-normalised first). One pass over at most ``max_pairs`` pairs (every pair when there
    are fewer), in batches; no N x N matrix. See the module docstring.

    Parameters
    ----------
    A, B : array (N, D)
        Embeddings of the same N items under checkpoints a and b.
    max_pairs : int
        Pairs sampled (every pair when there are fewer).
    seed : int
        Seed of the pairs and of the null move.

    Returns
    -------
    TopologyResult
        The drift, its null and ``topology_kept``.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((300, 16))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    >>> round(sdtools.topology_kept(A, A @ Q).topology_kept, 6)
    1.0
    """
    if max_pairs < 1:
        raise InputError(f"max_pairs must be at least 1, got {max_pairs}")
    seed = check_seed(seed)
    a, b = pair_of(A, B)  # float32 or float64, as given; rows normalised batch by batch
    n = a.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    fixed = perm == torch.arange(n)  # another sample's move, never the sample's own
    perm[fixed] = (perm[fixed] + 1) % n
    i, j, exact = _pairs(n, max_pairs, gen)
    drift = null = 0.0
    for s in range(0, i.numel(), BATCH):
        bi, bj = i[s : s + BATCH].to(a.device), j[s : s + BATCH].to(a.device)
        ai, aj, b_i, b_j = (normalize(x[k]) for x, k in ((a, bi), (a, bj), (b, bi), (b, bj)))
        ang_a = _angle(ai, aj)
        drift += float((ang_a - _angle(b_i, b_j)).abs().sum(dtype=torch.float64))
        pi, pj = perm[bi.cpu()].to(a.device), perm[bj.cpu()].to(a.device)
        ni = _null_rows(ai, b_i, normalize(a[pi]), normalize(b[pi]))
        nj = _null_rows(aj, b_j, normalize(a[pj]), normalize(b[pj]))
        null += float((ang_a - _angle(ni, nj)).abs().sum(dtype=torch.float64))
    m = i.numel()
    drift, null = math.degrees(drift / m), math.degrees(null / m)
    # nothing moved beyond rounding: there is nothing to judge
    kept = None if null <= math.degrees(8 * torch.finfo(a.dtype).eps) else 1.0 - drift / null
    return TopologyResult(drift=drift, null=null, topology_kept=kept, n_pairs=int(m),
                          exact=exact, seed=int(seed))


def _angle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise angle between unit rows (radians), accurate near 0 and pi."""
    return 2.0 * torch.atan2(torch.linalg.vector_norm(x - y, dim=1),
                             torch.linalg.vector_norm(x + y, dim=1))


__all__ = ["TopologyResult", "topology_kept"]
