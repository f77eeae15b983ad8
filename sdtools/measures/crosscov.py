"""One pass over two embedding matrices: the cross-covariance ``A^T B`` per fold, and norms.

Everything the Procrustes fit, its in-sample and held-out shares and its jitter null need
follows from these D x D matrices and a few sums, so the data is read once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import torch

from ..errors import InputError
from .checks import check_groups, checked_with_norms, common, same_shape

# what prepare returns: A, B, their inverse row norms, whether both are unit, their centres
Prep = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, bool,
             torch.Tensor | None, torch.Tensor | None]

# one block of a pass: (group, first row, end row), or (group, LongTensor of rows, None)
Block: TypeAlias = "tuple[int, int, int] | tuple[int, torch.Tensor, None]"

BLOCK = 1024  # rows per block at most; block b belongs to group b % G and fold b % k
GROUPS_PER_FOLD = 11  # groups of probe items per fold, the units of the bootstrap intervals


@dataclasses.dataclass
class LabelMoves:
    """Per label: the sum of the moves ``sum (b_i - a_i)`` and of the rows ``sum a_i`` (L, D,
    float64), the sum of the squared moves (L,) and the rows (L,): what the share of the
    held-out residual that a label's items share (:func:`heldout_share`) needs."""

    moves: torch.Tensor
    rows_a: torch.Tensor
    squares: torch.Tensor
    size: torch.Tensor


def shared_share(S: torch.Tensor, Q: torch.Tensor, size: torch.Tensor) -> float:
    """The share of the moves' energy that the rows of one label share: per label
    ``(|sum of moves|^2 - sum |move|^2) / (n - 1)`` estimates ``n |shared move|^2`` (unbiased
    for moves independent within a label), summed over labels of two rows or more, over the
    total ``sum |move|^2``; clipped to [0, 1]."""
    many = size > 1
    shared = float((((S * S).sum(1) - Q)[many] / (size[many] - 1)).sum())
    total = float(Q.sum())
    return min(max(shared / total, 0.0), 1.0) if total > 0 else 0.0


def heldout_share(lm: LabelMoves, split: Split, fold_R: list[torch.Tensor],
                  ratio: np.ndarray) -> float:
    """:func:`shared_share` of the held-out residuals ``b_i - a_i R_{-f}`` (each label's rows
    against the fit of the folds without it): the structure of what the rotation leaves, which
    a rotation in the change does not alter (the raw moves mix a rotation's row-by-row moves in
    and read less shared; the in-sample residual has lost what the fit absorbed of each label's
    shared move). ``ratio[g]``: group g's held-out residual over its raw change, which scales
    each label's sum of squared moves (exact in total, approximate per label)."""
    k = split.k
    fold = split.group_of_label % k
    S = torch.empty_like(lm.moves)
    for f in range(k):
        sel = torch.as_tensor(np.flatnonzero(fold == f))
        if sel.numel():
            # sum (b - a R) = sum (b - a) + sum a (I - R); I - R is as small as the turn, so
            # float32 keeps its digits (and halves the cost)
            step = torch.eye(lm.moves.shape[1], dtype=torch.float64) - fold_R[f].double()
            S[sel] = lm.moves[sel] + (lm.rows_a[sel].float() @ step.float()).double()
    Q = lm.squares * torch.as_tensor(ratio[split.group_of_label], dtype=lm.squares.dtype)
    return shared_share(S, Q, lm.size)


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
    split: Split | None = None  # how rows fall into groups (None: contiguous blocks)
    group_spread: float = 0.0  # share of A's variance between labels (how clustered they are)
    labels: int = 0  # distinct labels (0: items independent)
    sum_a: torch.Tensor | None = None  # (D,) float64: the sum of A's rows as read
    moves: LabelMoves | None = None  # per label sums of the moves (None without labels)

    @property
    def total(self) -> torch.Tensor:
        return self.M.sum(0)

    @property
    def base(self) -> float:
        """``||A - B||^2``: the whole change."""
        return float(self.aa.sum() + self.bb.sum() - 2 * self.ab.sum())


def prepare(A: object, B: object, center: bool) -> Prep:
    """Checked tensors on one device and dtype, the inverse row norms, and the centres."""
    a, na = checked_with_norms(A, "A")
    b, nb = checked_with_norms(B, "B")
    same_shape(a, b, "A", "B")
    a, b = common(a, b)
    assert na is not None and nb is not None  # computed: the values are checked
    ia = 1.0 / na.to(device=a.device, dtype=a.dtype)
    ib = 1.0 / nb.to(device=a.device, dtype=a.dtype)
    tol = 8 * torch.finfo(a.dtype).eps
    unit = bool(((na - 1).abs().max() <= tol) & ((nb - 1).abs().max() <= tol))
    ma = mb = None
    if center:
        ma = (a * ia).mean(0, keepdim=True)
        mb = (b * ib).mean(0, keepdim=True)
    return a, b, ia, ib, unit, ma, mb


def rows(a: torch.Tensor, b: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, unit: bool,
         ma: torch.Tensor | None, mb: torch.Tensor | None, s: int | torch.Tensor,
         e: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows s:e of A and B (or the rows indexed by ``s``, a LongTensor, with ``e`` None), unit
    (and centred when asked); no copy when contiguous and already unit."""
    sel: slice | int | torch.Tensor = slice(s, e) if e is not None else s
    if unit and ma is None:
        return a[sel], b[sel]
    ac, bc = a[sel] * ia[sel], b[sel] * ib[sel]
    if ma is not None:
        assert mb is not None  # prepare gives both centres or neither
        ac = ac - ma
        bc = bc - mb
    return ac, bc


def layout(n: int, k: int, per_fold: int = 1) -> tuple[int, int, int]:
    """``(k, G, block)``: folds (at most n), groups (``per_fold`` a fold, at most n) and rows
    per block (``BLOCK``, or fewer so that every group gets rows). Every pass uses this."""
    k = max(1, min(k, n))
    groups = k * max(1, min(per_fold, n // k))
    return k, groups, BLOCK if n >= groups * BLOCK else max(1, n // groups)


@dataclasses.dataclass
class Split:
    """Rows dealt into ``groups`` groups (group g in fold g % k) by label: all rows of one
    label in one group, labels dealt at random (``seed``). ``index[g]``: the rows of group g;
    ``label``: each row's label as 0..L-1."""

    k: int
    groups: int
    index: list[torch.Tensor]
    label: np.ndarray
    n_labels: int
    group_of_label: np.ndarray  # (n_labels,): the group holding each label (fold: % k)

    def blocks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """(group, row indices) in blocks of at most ``BLOCK`` rows."""
        for g, idx in enumerate(self.index):
            for s in range(0, idx.numel(), BLOCK):
                yield g, idx[s : s + BLOCK]


def split_by(labels: npt.ArrayLike | torch.Tensor, n: int, k: int, per_fold: int = 1,
             seed: int = 0) -> Split:
    """:class:`Split` of ``n`` rows by ``labels`` (one per row) into k folds and ``per_fold``
    groups a fold (fewer when there are fewer labels)."""
    g = check_groups(labels, n)
    _, lab = np.unique(g, return_inverse=True)
    n_labels = int(lab.max()) + 1
    if n_labels < k:
        raise InputError(f"groups has {n_labels} distinct label(s); {k} folds need at least {k} "
                         "(items that change together are held out together): give finer "
                         "groups or fewer folds")
    groups = k * max(1, min(per_fold, n_labels // k))
    unit_of = np.empty(n_labels, dtype=np.int64)
    unit_of[np.random.default_rng(seed).permutation(n_labels)] = np.arange(n_labels) % groups
    unit = unit_of[lab]
    order = np.argsort(unit, kind="stable")
    bounds = np.searchsorted(unit[order], np.arange(groups + 1))
    index = [torch.as_tensor(order[bounds[i] : bounds[i + 1]]) for i in range(groups)]
    return Split(k, groups, index, lab, n_labels, unit_of)


def blocks(n: int, k: int, per_fold: int,
           split: Split | None) -> tuple[int, int, int, Iterator[Block]]:
    """``(k, G, block, iterator of (group, s, e))``: the blocks every pass reads, contiguous
    (``e`` an int) or by label (``s`` a LongTensor of rows, ``e`` None)."""
    if split is not None:
        return split.k, split.groups, BLOCK, ((g, idx, None) for g, idx in split.blocks())
    k, groups, block = layout(n, k, per_fold)
    return k, groups, block, ((i % groups, s, min(s + block, n))
                              for i, s in enumerate(range(0, n, block)))


def cross_covariance(prep: Prep, k: int, per_fold: int = 1, split: Split | None = None) -> CrossCov:
    """One pass: fold (and, with ``per_fold`` > 1, group) cross-covariances and norms. With
    ``split`` the rows fall into groups by label, and the per-label sums the share of a
    label's shared move needs (``moves``, :func:`heldout_share`) and how clustered the labels
    are (``group_spread``) are kept too."""
    a = prep[0]
    unit = prep[4] and prep[5] is None
    n, d = a.shape
    k, groups, block, it = blocks(n, k, per_fold, split)
    Gm = torch.zeros(groups, d, d, dtype=a.dtype, device=a.device)
    stats = torch.zeros(4, groups, dtype=torch.float64)
    sum_a = torch.zeros(d, dtype=torch.float64, device=a.device)
    if split is not None:
        S = torch.zeros(split.n_labels, d, dtype=torch.float64, device=a.device)
        Q = torch.zeros(split.n_labels, dtype=torch.float64, device=a.device)
        Sa = torch.zeros(split.n_labels, d, dtype=torch.float64, device=a.device)
        aa = torch.zeros((), dtype=torch.float64, device=a.device)
        lab = torch.as_tensor(split.label, device=a.device)
    for g, s, e in it:
        ac, bc = rows(*prep, s, e)
        m = ac.shape[0]
        Gm[g].addmm_(ac.T, bc)
        if unit:  # unit rows: the squared norms are the row count
            stats[0, g] += m
            stats[1, g] += m
        else:
            stats[0, g] += float((ac * ac).sum(dtype=torch.float64))
            stats[1, g] += float((bc * bc).sum(dtype=torch.float64))
        stats[2, g] += float(torch.linalg.vecdot(ac, bc).sum(dtype=torch.float64))
        stats[3, g] += m
        sum_a += ac.sum(0, dtype=torch.float64)
        if split is not None:
            assert isinstance(s, torch.Tensor)  # blocks by label are row indices
            diff = (bc - ac).double()
            S.index_add_(0, lab[s.to(a.device)], diff)
            Q.index_add_(0, lab[s.to(a.device)], (diff * diff).sum(1))
            Sa.index_add_(0, lab[s.to(a.device)], ac.double())
            aa += (ac.double() ** 2).sum()
    Ms = Gm.view(groups // k, k, d, d).sum(0) if groups > k else Gm
    folded = stats.view(4, groups // k, k).sum(1)
    spread = 0.0
    moves = None
    if split is not None:
        size = torch.bincount(lab, minlength=split.n_labels).double()
        moves = LabelMoves(S.cpu(), Sa.cpu(), Q.cpu(), size.cpu())
        # A's variance between labels, less what the labels' own noise puts there
        grand = float((Sa.sum(0) ** 2).sum()) / n
        var = float(aa) - grand
        between = float(((Sa * Sa).sum(1) / size.clamp(min=1)).sum()) - grand
        labels = split.n_labels
        if var > 0 and n > labels:
            between -= (labels - 1) / (n - labels) * (var - between)
            spread = min(max(between / var, 0.0), 1.0)
    return CrossCov(Ms.double().cpu(), folded[0], folded[1], folded[2], folded[3],
                    block=block,
                    group_M=Gm if groups > k else None, group_stats=stats,
                    eps=float(torch.finfo(a.dtype).eps), split=split,
                    group_spread=spread, sum_a=sum_a.cpu(), moves=moves,
                    labels=0 if split is None else split.n_labels)
