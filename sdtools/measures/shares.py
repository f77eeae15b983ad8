"""The shares of the change a Procrustes fit explains, per group of items, with their
bootstrap intervals, and the second pass over the rows that gives them exactly for tiny changes
and the per-sample residual angles (the parts of :func:`~.procrustes.procrustes` after the
fit)."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch

from .checks import normalize, to_numpy
from .crosscov import GROUPS_PER_FOLD, CrossCov, Prep, blocks, heldout_share, rows
from .summary import BOOT_LEVEL, Interval, bootstrap_means, percentile_ci


class ShareIntervals(TypedDict, total=False):
    """The bootstrap fields of :class:`~.procrustes.ProcrustesResult` (none without ``ci``)."""

    explained_ci: Interval
    explained_heldout_ci: Interval | None
    rigidity_ci: Interval | None
    ci_groups: int


def group_values(cc: CrossCov, R: torch.Tensor,
                  fold_R: list[torch.Tensor] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group of items: ``||A_g - B_g||^2``, ``||A_g R - B_g||^2`` and the held-out
    ``||A_g R_{-f(g)} - B_g||^2``, from the group matrices (D x D products, no data pass)."""
    st = cc.group_stats
    assert st is not None  # cross_covariance sets it
    groups, k = st.shape[1], cc.M.shape[0]
    norms = (st[0] + st[1]).numpy()
    base = norms - 2.0 * st[2].numpy()
    Ms = cc.M if cc.group_M is None else cc.group_M  # None: as many groups as folds
    # <R, M_g> for the fit and every fold's fit at once: (G, D^2) @ (D^2, 1 + k), in float64
    maps = torch.stack([x.reshape(-1) for x in (R, *(fold_R or []))], 1)
    dots = np.empty((groups, maps.shape[1]))
    step = 8  # groups converted to float64 at a time
    for g in range(0, groups, step):
        m = Ms[g : g + step].reshape(min(step, groups - g), -1).double().cpu()
        dots[g : g + step] = (m @ maps).numpy()
    fit = dots[:, 0]
    ho = dots[np.arange(groups), 1 + np.arange(groups) % k] if fold_R is not None else fit
    return base, norms - 2.0 * fit, norms - 2.0 * ho


def residual_share(cc: CrossCov, fold_R: list[torch.Tensor],
                   per_group: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """The share of the held-out residual that a label's rows share
    (:func:`~.crosscov.heldout_share`), each label's squared moves scaled by its group's
    held-out residual over its raw change (``per_group``: :func:`group_values`)."""
    assert cc.moves is not None and cc.split is not None  # labels given
    g_base, _, g_ho = per_group
    ratio = np.divide(g_ho, g_base, out=np.ones_like(g_ho), where=g_base > 0)
    return heldout_share(cc.moves, cc.split, fold_R, ratio)


def few_groups_widening(groups: int, level: float = BOOT_LEVEL) -> float:
    """How much a bootstrap over ``groups`` resampled units is widened around its estimate:
    ``sqrt(G / (G - 1)) * t_{G-1} / z`` at ``level``. The bootstrap's spread is the plug-in
    variance (``(G - 1) / G`` of the unbiased one) with normal tails, which covers less than
    its level when few groups (classes, domains) carry the change; the factor is 1.10 for 20
    groups, 1.02 for 100 and 1.00 for independent items."""
    if groups < 2:
        return 1.0
    from scipy import stats

    q = (1.0 + level) / 2.0
    return float(np.sqrt(groups / (groups - 1.0)) * stats.t.ppf(q, groups - 1) / stats.norm.ppf(q))


def share_intervals(base: np.ndarray, left: np.ndarray, ho: np.ndarray, null: float, n_boot: int,
               seed: int, resolved: bool = True) -> ShareIntervals:
    """Percentile intervals of explained, held-out explained and rigidity: ``n_boot``
    resamples of the groups, each a ratio of the resampled means, the resamples' deviations
    from the estimate widened by :func:`few_groups_widening`."""
    groups = base.size
    cols = np.stack([base, left, ho], 1)
    means = bootstrap_means(cols, n_boot, seed)
    wide = few_groups_widening(groups)

    def shares(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b = m[:, 0]
        safe = np.where(b > 0, b, 1.0)
        ex = np.where(b > 0, 1.0 - m[:, 1] / safe, 1.0)
        hs = np.where(b > 0, 1.0 - m[:, 2] / safe, 1.0)
        rig = (hs - null) / (1.0 - null) if null < 1.0 else np.zeros_like(hs)
        return ex, hs, rig

    at = shares(cols.mean(0, keepdims=True))
    ex, hs, rig = (x0 + wide * (x - x0) for x0, x in zip(at, shares(means), strict=True))

    def iv(x: np.ndarray) -> Interval:
        return Interval(*percentile_ci(x), n_boot=n_boot, seed=seed)

    return {"explained_ci": iv(ex), "explained_heldout_ci": iv(hs) if resolved else None,
            "rigidity_ci": iv(rig) if resolved else None,
            "ci_groups": groups}


def second_pass(
    prep: Prep, R: torch.Tensor, fold_R: list[torch.Tensor] | None, cc: CrossCov, exact: bool
) -> tuple[float, float, float, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per-sample residual angles; with ``exact`` also ``||A - B||^2``, ``||A R - B||^2`` and
    the held-out residual from row differences (no cancellation for tiny changes), in total
    and per group of items."""
    a = prep[0]
    n = a.shape[0]
    k = cc.M.shape[0]
    assert cc.group_stats is not None  # cross_covariance sets it
    groups = cc.group_stats.shape[1]
    dev, dt = a.device, a.dtype
    Rt = R.T.contiguous().to(device=dev, dtype=dt).T  # x @ R is faster with this layout
    fold_Rt = ([m.T.contiguous().to(device=dev, dtype=dt).T for m in fold_R]
               if exact and fold_R is not None else None)
    resid = torch.empty(n, dtype=dt, device=dev)
    per = np.zeros((3, groups))

    def sq(x: torch.Tensor) -> float:
        return float((torch.linalg.vector_norm(x, dim=1).double() ** 2).sum())

    for g, s, e in blocks(n, k, GROUPS_PER_FOLD, cc.split)[3]:  # the blocks of the first pass
        ac, bc = rows(*prep, s, e)
        ar = ac @ Rt
        if exact:
            per[0, g] += sq(ac - bc)
            per[1, g] += sq(ar - bc)
            per[2, g] += sq(ac @ fold_Rt[g % k] - bc) if fold_Rt is not None else sq(ar - bc)
        if prep[5] is not None:  # centred rows are not unit: compare directions
            ar, bc = normalize(ar), normalize(bc)
        d_ = torch.linalg.vector_norm(ar - bc, dim=1)
        sm = torch.linalg.vector_norm(ar + bc, dim=1)
        where = s.to(dev) if isinstance(s, torch.Tensor) else slice(s, e)
        resid[where] = torch.rad2deg(2.0 * torch.atan2(d_, sm))
    base, left, ho = (float(x) for x in per.sum(1))
    return base, left, ho, to_numpy(resid).astype(np.float64), (per[0], per[1], per[2])


__all__ = ["ShareIntervals", "few_groups_widening", "group_values", "residual_share", "second_pass",
           "share_intervals"]
