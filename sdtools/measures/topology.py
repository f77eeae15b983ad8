"""The paper's criterion for rotation with its null: per-sample angles large while the angles
between samples are kept, read two ways.

The null is jitter of exactly the observed size and kind: each sample ``i`` that moved is
turned by its own observed angle ``theta_i``, in the direction another moved sample ``pi(i)``
moved (its tangent direction, carried to ``i`` by parallel transport along the great circle).
Samples that did not move stay where they are in the null too, and only samples that moved
lend their direction (a donor that did not move has no direction to lend). With ``groups``
(items that change together: a class, a domain, an image's captions) the donors are drawn a
group at a time: every item of group ``g`` borrows from members of one other group ``pi(g)``,
so a move shared by a group stays shared in the null, and only the agreement *between* groups
is what the null destroys (averaged over ``GROUP_DRAWS`` draws: few groups make a noisy
null). The null keeps the per-sample angles, their spread and the anisotropy of the changes,
and destroys only what a rotation has: the agreement between the samples' moves.

Two readings of the same pairs of samples:

- ``topology_kept`` (**the paper's criterion**: the order of the angles between samples kept):
  ``1 - sqrt((1 - rho) / (1 - rho_null))``, where ``rho`` is the rank (Spearman) correlation of
  the pairs' angles under a and b and ``rho_null`` the same under a and the null. ``1 - rho``
  grows with the square of a perturbation's size, so the square root puts the ratio on the
  scale of the change's size: 0.9 means the order of the angles moved a tenth as much as
  under jitter of the same per-sample sizes. It reads 1 for a rotation and for any change that
  keeps the order of the angles (a cone tightening or widening, which is a monotone reshaping
  of every angle; a rotation with one), about 0 for jitter of any structure (with ``groups``
  for moves shared by a group), in between for a rotation with jitter, and part-way for linear
  reshapings that keep most but not all of the order (a few directions scaled). Below 0: the
  order of the angles is scrambled more than by jitter of the same per-sample sizes, e.g. a
  change that moves few items far across the others, such as a shear that moves each item
  along one axis by its coordinate on another (near 0, sampling noise).
- ``metric_kept``: ``1 - drift / null``, the mean self-angle drift (SAM) against the null's.
  1 for a rotation, about 0 for jitter; it also counts coherent changes of the angles'
  *sizes*: a cone that tightens shrinks every angle and reads far below 0 although every
  neighbourhood is kept. Below 0: the angles between samples changed more, on average, than
  under jitter of the same per-sample sizes, i.e. a coherent reshaping (cone, scale) or, with
  ``topology_kept`` also below 0, disorder beyond jitter.

Both are None when nothing moved beyond rounding.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..errors import InputError
from .angles import pair_of
from .checks import check_seed, normalize
from .summary import jsonable

PAIRS = 200_000  # sampled pairs (every pair when there are fewer)
BATCH = 65536  # pairs per batch: memory flat in N
GROUP_DRAWS = 8  # null draws averaged when donors are drawn by group (few groups: a noisy null)


@dataclasses.dataclass(frozen=True)
class TopologyResult:
    """The paper's criterion against its null, as a rank and as a metric reading (module
    docstring).

    Attributes
    ----------
    topology_kept : float or None
        The paper's criterion: ``1 - sqrt((1 - rho) / (1 - rho_null))`` (rank correlation of
        the pairs' angles under a and b, and under a and the null). 1 for a rotation or an
        order-preserving change, about 0 for jitter, below 0 when the order is scrambled more
        than by jitter. None when nothing moved beyond rounding.
    metric_kept : float or None
        ``1 - drift / null``: also counts coherent changes of the angles' sizes (a cone change
        reads below 0).
    drift, null : float
        Mean self-angle drift of the change and of its null move (degrees).
    rank_corr, rank_corr_null : float
        ``rho`` and ``rho_null``.
    n_pairs : int
        Pairs used; ``exact``: all of them.
    n_moved : int
        Items that moved beyond rounding (the others stay put in the null too).
    groups : int
        Groups the null's donors were drawn by (0: items independently).
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
    metric_kept: float | None = None
    rank_corr: float = 1.0
    rank_corr_null: float = 1.0
    n_moved: int = 0
    groups: int = 0

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


def _null_rows(a, theta, ap, tp) -> torch.Tensor:
    """Rows ``a`` turned by their own angle ``theta`` in the direction ``tp`` another sample
    (at ``ap``) moved, carried to a's tangent plane by parallel transport along the great
    circle from ap to a (a rotation in their plane, so nothing of that direction is lost)."""
    c = (ap * a).sum(1, keepdim=True)
    t = tp - (a * tp).sum(1, keepdim=True) / (1.0 + c).clamp(min=1e-12) * (ap + a)
    norm = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    t = torch.where(norm > 1e-12, t / norm.clamp(min=1e-30), torch.zeros_like(t))
    return torch.cos(theta)[:, None] * a + torch.sin(theta)[:, None] * t


def _donors(moved: np.ndarray, labels: np.ndarray | None, rng) -> np.ndarray:
    """For every item, another item that moved whose direction it borrows: a derangement of
    the moved items, or with ``labels`` a derangement of the groups with moved items, each
    item taking a random moved member of its group's partner. Items that did not move get a
    donor too (their angle is 0, so it is never used)."""
    n = moved.size
    idx = np.flatnonzero(moved)
    donor = np.zeros(n, dtype=np.int64)
    if idx.size == 0:
        return donor
    if labels is None:
        perm = rng.permutation(idx.size)
        fixed = perm == np.arange(idx.size)
        perm[fixed] = (perm[fixed] + 1) % idx.size
        donor[:] = idx[rng.integers(0, idx.size, n)]
        donor[idx] = idx[perm]
        return donor
    _, lab = np.unique(labels, return_inverse=True)
    live = np.unique(lab[idx])  # groups with a moved member
    perm = rng.permutation(live.size)
    fixed = perm == np.arange(live.size)
    perm[fixed] = (perm[fixed] + 1) % live.size
    partner = np.full(int(lab.max()) + 1, -1, dtype=np.int64)
    partner[live] = live[perm]
    partner[partner < 0] = live[rng.integers(0, live.size, int((partner < 0).sum()))]
    order = idx[np.argsort(lab[idx], kind="stable")]  # moved items by group
    starts = np.searchsorted(lab[order], np.arange(int(lab.max()) + 2))
    p = partner[lab]
    lo, hi = starts[p], starts[p + 1]
    donor[:] = order[lo + (rng.random(n) * (hi - lo)).astype(np.int64)]
    return donor


def _pairs(n: int, max_pairs: int, gen) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Every pair when there are at most ``max_pairs``, else ``max_pairs`` distinct pairs
    ``(p_k, p_{k+s})`` of a random order ``p`` for shifts s = 1, 2, ... (every item in as many
    pairs, so rows are read in whole permuted blocks)."""
    total = n * (n - 1) // 2
    if total <= max_pairs:
        i, j = torch.triu_indices(n, n, offset=1)
        return i, j, True
    p = torch.randperm(n, generator=gen)
    shifts = -(-max_pairs // n)
    i = p.repeat(shifts)[:max_pairs]
    j = torch.cat([torch.roll(p, -s) for s in range(1, shifts + 1)])[:max_pairs]
    return i, j, False


def _angle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise angle between unit rows (radians), ``2 atan2(|x - y|, |x + y|)``, accurate near
    0 (and near pi to the square root of the rounding; ``|x + y|^2 = 4 - |x - y|^2``)."""
    d2 = ((x - y) ** 2).sum(1)
    return 2.0 * torch.atan2(d2.sqrt(), (4.0 - d2).clamp(min=0).sqrt())


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share one), centred."""
    from scipy.stats import rankdata

    r = rankdata(x)
    return r - r.mean()


def _corr(rx: np.ndarray, ry: np.ndarray) -> float:
    """Correlation of two centred rank vectors (Spearman's rho); 1 when both are constant."""
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / den if den > 0 else 1.0


def topology_kept(A, B, max_pairs: int = PAIRS, seed: int = 0,
                  groups=None) -> TopologyResult:
    """The paper's criterion (per-sample angles large, angles between samples kept) against
    its null, as a rank reading (``topology_kept``) and a metric one (``metric_kept``).

    ``A``, ``B``: (N, D) embeddings of the same samples under checkpoints a and b (rows
    L2-normalised first). At most ``max_pairs`` pairs (every pair when there are fewer); no
    N x N matrix. See the module docstring for the null and what each value means.

    Parameters
    ----------
    A, B : array (N, D)
        Embeddings of the same N items under checkpoints a and b.
    max_pairs : int
        Pairs sampled (every pair when there are fewer).
    seed : int
        Seed of the pairs and of the null move.
    groups : array (N,), optional
        A label per item for items that change together (a class, a domain, an image's
        captions): the null borrows moves a group at a time.

    Returns
    -------
    TopologyResult
        ``topology_kept`` (the criterion), ``metric_kept``, the drift and its null.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((300, 16))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    >>> round(sdtools.topology_kept(A, A @ Q).topology_kept, 6)
    1.0
    """
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, (int, np.integer)) \
            or max_pairs < 1:
        raise InputError(f"max_pairs must be an integer of at least 1, got {max_pairs!r}")
    seed = check_seed(seed)
    a, b = pair_of(A, B)  # float32 or float64, as given
    n = a.shape[0]
    labels = _labels(groups, n)
    a, b = normalize(a), normalize(b)
    theta, t = _tangent(a, b)
    # a row moved when its angle is above the rounding of unit rows in this dtype
    moved = (theta > 64 * torch.finfo(a.dtype).eps).cpu().numpy()
    rng = np.random.default_rng(seed)
    theta = torch.where(torch.as_tensor(moved, device=a.device), theta, torch.zeros_like(theta))
    draws = 1 if labels is None else GROUP_DRAWS
    nulls = []
    for _ in range(draws):
        donor = torch.as_tensor(_donors(moved, labels, rng), device=a.device)
        nulls.append(_null_rows(a, theta, a[donor], t[donor]))
    gen = torch.Generator().manual_seed(seed)
    i, j, exact = _pairs(n, max_pairs, gen)
    m = i.numel()
    ang = np.empty((2 + draws, m))
    for s in range(0, m, BATCH):
        bi, bj = i[s : s + BATCH].to(a.device), j[s : s + BATCH].to(a.device)
        for row, x in enumerate((a, b, *nulls)):
            ang[row, s : s + bi.numel()] = _angle(x[bi], x[bj]).double().cpu().numpy()
    drift = math.degrees(float(np.abs(ang[0] - ang[1]).mean()))
    null = math.degrees(float(np.abs(ang[0] - ang[2:]).mean()))
    tiny = math.degrees(8 * torch.finfo(a.dtype).eps)
    rho = rho0 = 1.0
    kept = metric = None
    if int(moved.sum()) and null > tiny:  # else nothing moved beyond rounding: nothing to judge
        metric = 1.0 - drift / null
        ra = _ranks(ang[0])
        rho = _corr(ra, _ranks(ang[1]))
        rho0 = float(np.mean([_corr(ra, _ranks(x)) for x in ang[2:]]))
        kept = 1.0 - math.sqrt(max(1.0 - rho, 0.0) / (1.0 - rho0)) if rho0 < 1.0 else None
    return TopologyResult(drift=drift, null=null, topology_kept=kept, n_pairs=int(m),
                          exact=exact, seed=int(seed), metric_kept=metric, rank_corr=rho,
                          rank_corr_null=rho0, n_moved=int(moved.sum()),
                          groups=0 if labels is None else int(np.unique(labels).size))


def _labels(groups, n: int) -> np.ndarray | None:
    """``groups`` as an (N,) array of labels, checked; None when not given."""
    if groups is None:
        return None
    g = groups.detach().cpu().numpy() if isinstance(groups, torch.Tensor) else np.asarray(groups)
    if g.ndim != 1 or g.size != n:
        raise InputError(f"groups must hold one label per item ({n}), got shape {g.shape}")
    return g


__all__ = ["TopologyResult", "topology_kept"]
