"""The jitter null of a Procrustes fit simulated on the probe's own rows.

Rigidity subtracts what held-out fits of this probe pick up from jitter. A scaled synthetic
probe with the probe's spectrum gets that right on average; the probe's own rows, turned by
jitter of the change's size, get it for this probe (independent jitter plus a rotation at
N = 3 D, D 1,024: +0.007 against the synthetic null, +0.002 against this one, where the
interval is 0.012 wide).

With labels, a drift per group (a class, a domain) is a turn of that group's rows; held-out
fits pay for the turns of the groups they saw by how those turns move the groups they did not
see, which depends on how the groups lie against each other (their clustering, their centres'
angles, the spread within them). A synthetic probe matches that only on average (20 classes
drifting 10 degrees, plus a rotation, at N = 3 D and D 1,024 read rigidity 0.11 above the
rotation's share against it); the probe's own rows carry it exactly, so the null turns them:
each row by the change's mean angle, along a direction its group shares (the measured share
of the energy) mixed with its own, scored on the same folds.

The jitter's directions follow what the fit leaves: its own part (each row's, apart from its
label's) is drawn with the covariance of the residual rows ``b_i - a_i R`` within labels
(their directions, not their sizes), weighed ``1 - share^4`` against isotropic directions
(``share``: the part of the held-out residual a label's rows share; near 1 for a drift per
class, where the within-label residual is mostly the fold fits' error and a shaped null reads
a drift per class plus a rotation 0.04 above its share at D 256); the part a label shares is
drawn isotropic. Jitter along the data's strongest directions is absorbed and carried across
folds by held-out fits more than isotropic jitter of the same size (45 clusters at D 982, N/D
3, 3-degree jitter along the spectrum read rigidity +0.50 against an isotropic null, +0.04
against this one); isotropic jitter leaves isotropic residuals, and the null is the isotropic
one. The in-sample residual has lost what the fit absorbed of the jitter, most along the
strong directions, so strong 10-degree jitter at N/D 3 still reads about 0.05 high.
"""

from __future__ import annotations

import math

import torch

from .crosscov import GROUPS_PER_FOLD, Prep, Split, blocks, cross_covariance, prepare, rows
from .rotations import (
    fit_rotation,
    fold_svd,
    heldout_left,
    numerical_rank,
    orthogonalize,
)
from .shares import group_values, residual_share

MIN_NULL_DEG = 2.0  # smaller changes are simulated at this angle: the share is scale-free there
ONE_DRAW_SIZE = 1_000_000  # N x D above which one draw is simulated
SHAPE_TRUST_POWER = 4  # the residual's shape weighs 1 - share^4 against isotropic directions
MAX_OWN_ROW_SIZE = 20_000_000  # N x D above which the scaled null is simulated instead (cost)


def residual_shape(prep: Prep, fits: list[torch.Tensor], split: Split | None = None,
                   per_fold: int = GROUPS_PER_FOLD, trust: float = 1.0) -> torch.Tensor | None:
    """``S`` with ``S^T S`` the covariance of the held-out residual rows ``r_i = b_i - a_i
    R_{-f(i)}`` (each row against the fit of the folds without it; one fit: in sample) scaled
    to trace D, within labels when ``split`` holds them (``r_i`` minus its label's mean: a
    drift a label shares is the shared part's, drawn isotropic); float64 products a block of
    rows at a time, one eigendecomposition. None when nothing is left (the jitter is then
    isotropic)."""
    a = prep[0]
    n, d = a.shape
    Rs = [R.to(device=a.device, dtype=a.dtype) for R in fits]
    C = torch.zeros(d, d, dtype=torch.float64, device=a.device)
    label = None if split is None else torch.as_tensor(split.label, device=a.device)
    sums = None if split is None else torch.zeros(split.n_labels, d, dtype=torch.float64,
                                                  device=a.device)
    k = len(Rs)
    for g, s, e in blocks(n, max(k, 2), per_fold, split)[3]:
        ac, bc = rows(*prep, s, e)
        r = (bc - ac @ Rs[g % k]).double()
        C += r.T @ r
        if sums is not None and label is not None:
            sums.index_add_(0, label[s if e is None else slice(s, e)], r)
    if sums is not None and label is not None:  # minus sum_L n_L m_L m_L^T
        counts = torch.bincount(label, minlength=sums.shape[0]).double().clamp(min=1.0)
        m = sums / counts.sqrt().unsqueeze(1)
        C -= m.T @ m
    tr = float(torch.trace(C))
    if not math.isfinite(tr) or tr <= 0.0:
        return None
    C = trust * C * (d / tr) + (1.0 - trust) * torch.eye(d, dtype=C.dtype, device=C.device)
    w, V = torch.linalg.eigh(C)
    S: torch.Tensor = ((V * w.clamp(min=0.0).sqrt()) @ V.T).to(a.dtype)
    return S


def own_rows_null(prep: Prep, split: Split | None, folds: int, base: float, rank: int,
                  share: float = 0.0, center: bool = False, seed: int = 0,
                  draws: int | None = None, precise: bool = False,
                  fits: list[torch.Tensor] | None = None) -> float:
    """Held-out explained share of the probe's rows turned by jitter (shared within labels
    when ``split`` holds them; None: independent items in the fit's ``folds`` blocks).

    ``base``: ``||A - B||^2`` of the change (its mean angle, at least ``MIN_NULL_DEG``, is the
    jitter's); ``rank``: the real fit's determined rank, which the null's fits keep; ``share``:
    the part of the held-out residual a label's rows share, as measured on the probe
    (:func:`~.shares.residual_share`); ``split``: the real fit's folds and groups. The held-out
    residual also carries the fold fits' error, which a label shares less than its drift, so
    the simulated jitter's share is set, in one secant step from ``share``, to what reads
    ``share`` measured the same way on the simulation. Averaged over ``draws`` simulations
    (the same ones at each step; by default 2, or 1 above ``ONE_DRAW_SIZE`` N x D, where one
    draw's spread is small). ``precise``: fold fits from float64 SVDs, as the real fit's
    (:func:`~.rotations.needs_float64`); ``fits``: the real fit (``[R]``; its residual rows
    shape the jitter's directions, :func:`residual_shape`; None: isotropic). The fold fits'
    held-out residuals, tried instead, spread wider than the jitter (strong-direction jitter
    with 20 clusters read +0.11 against them, +0.04 against the in-sample ones)."""
    # when a label's rows share nearly all of what the fit leaves (a drift per class), their
    # within-label residual is mostly the fold fits' error: the own part is drawn isotropic
    trust = 1.0 - min(max(share, 0.0), 1.0) ** SHAPE_TRUST_POWER
    shape = None if fits is None else residual_shape(prep, fits, split, trust=trust)
    a, _ = rows(prep[0], prep[0], prep[2], prep[2], prep[4], None, None, 0, prep[0].shape[0])
    n = a.shape[0]
    if draws is None:
        draws = 1 if a.numel() > ONE_DRAW_SIZE else 2
    cos = max(min(1.0 - base / (2.0 * n), 1.0), -1.0)
    theta = max(math.acos(cos), math.radians(MIN_NULL_DEG))
    share = min(max(share, 0.0), 1.0)
    args = (folds, theta, rank)
    null, measured = _simulate(a, split, *args, share, center, seed, draws, precise, shape)
    if split is not None and abs(measured - share) > 0.005:
        wanted = min(max(share + (share - measured), 0.0), 1.0)
        null, _ = _simulate(a, split, *args, wanted, center, seed, draws, precise, shape)
    return null


def _fold_fits(Ms: torch.Tensor, rank: int, eps: float, precise: bool) -> list[torch.Tensor]:
    """Each fold complement's proper rotation at ``rank`` (or its numerical rank), as the real
    fit's held-out share takes them; the null needs no in-sample fit."""
    total = Ms.sum(0)
    out = []
    for f in range(Ms.shape[0]):
        svd = fold_svd(total - Ms[f], precise)
        out.append(orthogonalize(fit_rotation(svd, min(rank, numerical_rank(svd[1], eps)))))
    return out


def _simulate(a: torch.Tensor, split: Split | None, folds: int, theta: float, rank: int,
              share: float, center: bool, seed: int, draws: int,
              precise: bool, shape: torch.Tensor | None = None) -> tuple[float, float]:
    """``(held-out explained share, held-out residual's shared share)`` of ``a`` turned by
    ``theta`` along directions sharing ``share`` of their energy within labels (drawn with
    covariance ``shape^T shape``, or isotropic), averaged."""
    n, d = a.shape
    label = None if split is None else torch.as_tensor(split.label, device=a.device)
    gen = torch.Generator(device=a.device).manual_seed(seed)
    nulls, shares = [], []
    for _ in range(draws):
        E = torch.randn(n, d, generator=gen, device=a.device, dtype=a.dtype)
        if split is not None and label is not None:
            shared = torch.randn(split.n_labels, d, generator=gen, device=a.device,
                                 dtype=a.dtype)
            own = E if shape is None else E @ shape
            E = math.sqrt(1.0 - share) * own + math.sqrt(share) * shared[label]
        elif shape is not None:
            E = E @ shape
        E -= torch.linalg.vecdot(E, a).unsqueeze(1) * a
        E /= torch.linalg.vector_norm(E, dim=1, keepdim=True)
        turned = math.cos(theta) * a + math.sin(theta) * E
        del E
        cc = cross_covariance(prepare(a, turned, center), folds, GROUPS_PER_FOLD, split)
        sim_base = cc.base
        if sim_base <= 0:
            continue
        fold_R = _fold_fits(cc.M, rank, cc.eps, precise)
        nulls.append(1.0 - heldout_left(cc.M, cc.aa, cc.bb, fold_R) / sim_base)
        if split is not None:  # (group_values' in-sample column, here fold 0's fit, is unread)
            shares.append(residual_share(cc, fold_R, group_values(cc, fold_R[0], fold_R)))
    if not nulls:
        return 0.0, share
    return sum(nulls) / len(nulls), sum(shares) / len(shares) if shares else share


__all__ = ["MAX_OWN_ROW_SIZE", "MIN_NULL_DEG", "ONE_DRAW_SIZE",
           "SHAPE_TRUST_POWER", "own_rows_null",
           "residual_shape"]
