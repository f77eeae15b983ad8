"""The paper's criterion for rotation with its null: per-sample angles large while the angles
between samples are kept, read two ways.

The null is jitter of exactly the observed sizes and kinds: every item is moved by its own
observed angle ``theta_i`` along its own observed direction, forwards or backwards at random (a
sign per item; with ``groups``, items that change together such as a class, a domain or an
image's captions, one sign per group, shared by its items). Where each item's move, given where
the item is, is as likely backwards as forwards (zero-mean jitter of any size, spread and
anisotropy, along the data's strong or weak directions, shared within groups that are given,
with rows that do not move), the null has the same distribution as the change itself and the
criterion reads 0 up to sampling noise. What a rotation or any other coherent map has,
neighbouring items moving alike, the random signs destroy; so they do for a drift shared by
all items (every item shifted toward one direction), which reads above 0 like the coherent move
it is. With ``groups`` only the agreement *between* groups is destroyed, so only pairs of items
in different groups are read, and sign draws that give every group the same sign (the change
itself or its mirror image) are drawn again; the null is averaged over enough draws, at most
``GROUP_DRAWS``, that draws times groups reach ``GROUP_UNITS`` (few groups make a noisy null).
Rows that did not move stay where they are in the null too.

Two readings of the same pairs of samples:

- ``topology_kept`` (**the paper's criterion**: the order of the angles between samples kept):
  ``1 - sqrt((1 - rho) / (1 - rho_null))``, where ``rho`` is the rank (Spearman) correlation of
  the pairs' angles under a and b and ``rho_null`` the same under a and the null. ``1 - rho``
  grows with the square of a perturbation's size, so the square root puts the ratio on the
  scale of the change's size: 0.9 means the order of the angles moved a tenth as much as under
  the null (the same moves with random signs). It reads 1 for a rotation and for any change
  that keeps the order of the angles (a cone tightening or widening, which is a monotone
  reshaping of every angle; a rotation with one), about 0 for zero-mean jitter of any
  structure (with ``groups`` for moves shared by a group), in between for a rotation with
  jitter, and part-way for linear reshapings that keep most but not all of the order (a few
  directions scaled, a shear). Below 0: the order of the angles is scrambled more than by the
  same moves with random signs, i.e. neighbouring items move apart or across each other more
  than independent moves would (near 0, sampling noise).
- ``metric_kept``: ``1 - drift / null``, the mean self-angle drift (SAM) against the null's.
  1 for a rotation, about 0 for jitter; it also counts coherent changes of the angles'
  *sizes*: a cone that tightens shrinks every angle and reads far below 0 although every
  neighbourhood is kept. Below 0: the angles between samples changed more, on average, than
  under the null, i.e. a coherent reshaping (cone, scale) or, with ``topology_kept`` also below
  0, disorder beyond jitter.

Both are None when nothing moved beyond rounding.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..errors import InputError
from .angles import pair_of
from .checks import Array, check_count, check_groups, check_seed, normalize, repeated_rows
from .summary import jsonable

PAIRS = 200_000  # sampled pairs (every pair when there are fewer)
ROWS = 8192  # rows of the pair order per block: memory flat in N
GROUP_DRAWS = 8  # most null draws averaged when signs are drawn by group (few groups: a noisy
GROUP_UNITS = 1000  # null); as many as make draws x groups reach this (5,000 images: one)


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
        Pairs used (with ``groups``, those of items in different groups); ``exact``: all of
        them.
    n_moved : int
        Items that moved beyond rounding (the others stay put in the null too).
    groups : int
        Groups the null's signs were drawn by (0: one sign per item).
    n_items : int
        Distinct items used: an item whose rows repeat another's in both A and B (an image
        listed once per caption) is counted once, with a warning in ``warnings``.
    seed : int
        Seed of the pairs and of the null move.

    See Also
    --------
    topology_kept : The measure that returns it.

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
    n_items: int = 0
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(dataclasses.asdict(self))
        return out


def _tangent(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's angle from a to b (radians) and the unit direction it moved in (a's tangent
    plane; zero where it did not move)."""
    cos = (a * b).sum(1).clamp(-1.0, 1.0)
    t = b - cos[:, None] * a
    norm = torch.linalg.vector_norm(t, dim=1)
    theta = torch.atan2(norm, cos)
    t = torch.where(norm[:, None] > 0, t / norm.clamp(min=1e-30)[:, None], torch.zeros_like(t))
    return theta, t


def _moved(theta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows whose angle is above the rounding of unit rows in ``dtype``: they moved."""
    return theta > 64 * torch.finfo(dtype).eps


def _signs(codes: np.ndarray | None, n: int, live: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """A random sign per item, or with group ``codes`` (0 .. G-1 per item) one per group shared
    by its items, drawn again while every group with a moved item (``live``, the groups with
    one) has the same sign (the null would then be the change itself or its mirror image)."""
    if codes is None:
        return rng.choice(np.array([-1.0, 1.0]), n)
    while True:
        per_group = rng.choice(np.array([-1.0, 1.0]), int(codes.max()) + 1)
        if live.size < 2 or np.unique(per_group[live]).size > 1:
            out: np.ndarray = per_group[codes]
            return out


def _pairs(n: int, max_pairs: int, gen: torch.Generator) -> tuple[torch.Tensor, int, int, bool]:
    """``(order, shifts, pairs, exact)``: pairs ``(order[k], order[k + s])`` for shifts s = 1 ..
    ``shifts``. Every pair when there are at most ``max_pairs`` (the identity order, k + s <
    n), else ``max_pairs`` distinct pairs of a random order, wrapping around (every item in as
    many pairs, and a block of the order with the next ``shifts`` rows holds all its pairs)."""
    total = n * (n - 1) // 2
    if total <= max_pairs:
        return torch.arange(n), n - 1, total, True
    return torch.randperm(n, generator=gen), -(-max_pairs // n), max_pairs, False


def _exact_start(n: int, s: int) -> int:
    """Where shift s's pairs start when every pair is used (shift t holds n - t of them)."""
    return (s - 1) * n - (s - 1) * s // 2


def _block(a: torch.Tensor, b: torch.Tensor, idx: torch.Tensor,
           signs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Unit rows ``idx`` of a, of b and of each null draw (rows turned by their own angle along
    their own direction, forwards or backwards by the draw's sign): memory in the block's rows,
    not in N."""
    ai, bi = normalize(a[idx]), normalize(b[idx])
    theta, t = _tangent(ai, bi)
    moved = _moved(theta, a.dtype)
    cos = torch.where(moved, torch.cos(theta), torch.ones_like(theta))[:, None]
    sin = torch.where(moved, torch.sin(theta), torch.zeros_like(theta))[:, None]
    return [ai, bi] + [cos * ai + sin * sign[idx][:, None] * t for sign in signs]


def _angle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise angle between unit rows (radians) from one fused product; its rounding,
    ``eps / sin(angle)``, matters only for rows nearly equal or opposite, where both
    checkpoints' angles round alike."""
    return torch.acos(torch.linalg.vecdot(x, y).clamp(-1.0, 1.0))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share one), centred."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    mid = np.cumsum(counts) - (counts - 1) / 2.0  # the average 1-based rank of each value
    r = mid[inv.ravel()]
    centred: np.ndarray = r - r.mean()
    return centred


def _corr(rx: np.ndarray, ry: np.ndarray) -> float:
    """Correlation of two centred rank vectors (Spearman's rho); 1 when both are constant."""
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / den if den > 0 else 1.0


def topology_kept(A: Array, B: Array, max_pairs: int = PAIRS, seed: int = 0,
                  groups: npt.ArrayLike | torch.Tensor | None = None) -> TopologyResult:
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
        captions): the null's signs are drawn a group at a time and only pairs of items in
        different groups are read (one group: items one by one, with a warning).

    Returns
    -------
    TopologyResult
        ``topology_kept`` (the criterion), ``metric_kept``, the drift and its null.

    Raises
    ------
    InputError
        ``A`` or ``B`` is not a real float (N, D) numpy array or torch tensor, the two differ
        in shape, have fewer than 2 rows, or hold a NaN, Inf or all-zero row; or a tensor is
        on the meta device.
        Also: ``max_pairs`` not an integer of at least 1; ``seed`` not an integer in
        [0, 2^63); A and B holding a single distinct item; ``groups`` without one label per
        item.

    See Also
    --------
    TopologyResult : The result's fields.
    sam_drift : The self-angle drift over every pair, without a null.
    sample_angles : The per-sample angles, the criterion's other half.
    procrustes : Whether the change is a rotation, judged by held-out fit.

    References
    ----------
    1. Z. Ni, L. Wei, S. Tang, Y. Zhuang, Q. Tian. Continual Vision-Language Representation
       Learning with Off-Diagonal Information. ICML 2023, PMLR 202:26129-26149
       (arXiv:2305.07437).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((300, 16))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    >>> round(sdtools.topology_kept(A, A @ Q).topology_kept, 6)
    1.0
    """
    check_count(max_pairs, "max_pairs", 1)
    seed = check_seed(seed)
    a, b = pair_of(A, B)  # float32 or float64, as given; rows normalised block by block
    n = a.shape[0]
    labels = _labels(groups, n)
    warns = []
    repeats = repeated_rows(a, b)
    if repeats is not None:  # a repeated pair reads angle 0 under both: kept, for nothing
        keep = torch.as_tensor(repeats[0], device=a.device)
        a, b = a[keep], b[keep]
        labels = None if labels is None else labels[repeats[0]]
        warns.append(f"{n - keep.numel()} of {n} items repeat another item in both A and B; "
                     f"each distinct item is counted once ({keep.numel()} items)")
        n = a.shape[0]
        if n < 2:
            raise InputError("A and B hold a single distinct item; pairs need two")
    codes = None if labels is None else np.unique(labels, return_inverse=True)[1].ravel()
    n_groups = 0 if codes is None else int(codes.max()) + 1
    if n_groups == 1:
        warns.append("every item is in one group, so the null cannot keep a group's move "
                      "and change the others': read item by item")
    if n_groups in (1, n):
        codes, n_groups = None, 0  # every item its own group (or one): items independently
    theta = torch.cat([_tangent(normalize(a[s : s + ROWS]), normalize(b[s : s + ROWS]))[0]
                       for s in range(0, n, ROWS)])
    moved = _moved(theta, a.dtype).cpu().numpy()
    live = np.unique(codes[moved]) if codes is not None else np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    signs = [torch.as_tensor(_signs(codes, n, live, rng), dtype=a.dtype, device=a.device)
             for _ in range(1 if codes is None else _group_draws(n_groups))]
    code_t = None if codes is None else torch.as_tensor(codes, device=a.device)
    gen = torch.Generator().manual_seed(seed)
    order, shifts, m, exact = _pairs(n, max_pairs, gen)
    ang = np.empty((2 + len(signs), m))
    same = np.zeros(m, dtype=bool)  # pairs inside one group: their agreement is kept in the null
    span = shifts if exact else shifts + 1
    for c0 in range(0, n, ROWS):  # a block of the order and the rows its pairs reach
        c1 = min(c0 + ROWS, n)
        idx = order[torch.arange(c0, c1 + span - 1) % n].to(a.device)
        mats = _block(a, b, idx, signs)
        for s in range(1, shifts + 1):
            # pairs (order[k], order[k + s]): all pairs i < j in order when exact, else
            # shift s gives pairs (s - 1) n .. s n - 1, wrapping around
            lo, hi = c0, (c1 if not exact else min(c1, n - s))
            start = (s - 1) * n if not exact else _exact_start(n, s)
            hi = min(hi, c0 + max(0, m - start - c0))
            if hi <= lo:
                continue
            for row, x in enumerate(mats):
                ang[row, start + lo : start + hi] = _angle(
                    x[lo - c0 : hi - c0], x[lo - c0 + s : hi - c0 + s]).double().cpu().numpy()
            if code_t is not None:
                g = code_t[idx]
                same[start + lo : start + hi] = (g[lo - c0 : hi - c0]
                                                 == g[lo - c0 + s : hi - c0 + s]).cpu().numpy()
    if same.any() and (~same).sum() >= 2:  # with groups, only pairs across groups are read
        ang, m = ang[:, ~same], int((~same).sum())
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
                          groups=n_groups,
                          n_items=n, warnings=tuple(warns))


def _group_draws(groups: int) -> int:
    """Null draws for ``groups`` groups of signs: ``GROUP_UNITS / groups`` (rounded up), 1 to
    ``GROUP_DRAWS``."""
    return max(1, min(GROUP_DRAWS, -(-GROUP_UNITS // groups)))


def _labels(groups: npt.ArrayLike | torch.Tensor | None, n: int) -> np.ndarray | None:
    """``groups`` as an (N,) array of labels, checked; None when not given."""
    if groups is None:
        return None
    return check_groups(groups, n)


__all__ = ["TopologyResult", "topology_kept"]
