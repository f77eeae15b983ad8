"""The null of the cross-applied residual: what it reads when image and text turn in step,
at a probe's own sizes, spectra and noise (see :func:`cross_null`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias, TypedDict

import numpy as np
import torch

from .crosscov import BLOCK
from .rotations import (
    determined_rank,
    fit_rotation,
    fold_svd,
    needs_float64,
    orthogonalize,
    residual_variance,
)

NULL_GROUPS = 16  # groups of images (captions with their image) the cross-residual null halves
NULL_SPLITS = 10  # random halvings

# per group: M_g = A_g^T B_g, G_g = A_g^T A_g (groups, D, D) and (|B_g|^2, |A_g - B_g|^2, n_g)
GroupMatrices: TypeAlias = "tuple[torch.Tensor, torch.Tensor, torch.Tensor]"
# the halvings (a boolean mask over groups each), the images' and the captions' matrices
Grouped: TypeAlias = "tuple[list[torch.Tensor], GroupMatrices, GroupMatrices]"
HalfFits: TypeAlias = "list[tuple[torch.Tensor, torch.Tensor]]"  # per halving, both halves' fits


class Range(TypedDict):
    """The mean over halvings and their range."""

    value: float
    low: float
    high: float


class AngleRange(TypedDict):
    """Per angle (degrees, descending): the mean over halvings and their range."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray


class _CrossNullBase(TypedDict):
    text_by_image: Range
    image_by_text: Range
    mean: Range
    splits: int
    groups: int
    tolerance: float


class CrossNull(_CrossNullBase, total=False):
    """What :func:`cross_null` returns; ``relative_angles`` only when given the subspace."""

    relative_angles: AngleRange


def _group_matrices(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor,
                    groups: int) -> GroupMatrices:
    """Per group of rows (unit rows): ``M_g = A_g^T B_g``, ``G_g = A_g^T A_g`` (float64) and
    ``(|B_g|^2, |A_g - B_g|^2, n_g)``."""
    d = a.shape[1]
    Ms = torch.zeros(groups, d, d, dtype=torch.float64)
    Gs = torch.zeros(groups, d, d, dtype=torch.float64)
    st = torch.zeros(groups, 3, dtype=torch.float64)
    for g in range(groups):
        idx = torch.nonzero(labels == g).flatten().to(a.device)
        Mg = torch.zeros(d, d, dtype=a.dtype, device=a.device)
        Gg = torch.zeros_like(Mg)
        for s in range(0, idx.numel(), BLOCK):
            ac, bc = a[idx[s : s + BLOCK]], b[idx[s : s + BLOCK]]
            Mg.addmm_(ac.T, bc)
            Gg.addmm_(ac.T, ac)
            st[g, 1] += float(((ac - bc) ** 2).sum(dtype=torch.float64))
        Ms[g], Gs[g] = Mg.double().cpu(), Gg.double().cpu()
        st[g, 0] = float(idx.numel())  # unit rows: |B_g|^2 is the row count
        st[g, 2] = float(idx.numel())
    return Ms, Gs, st


def _half_fit(M: torch.Tensor, bb: float, n: float, eps: float, base: float) -> torch.Tensor:
    """One half's fit: made in float32 from a float32 SVD and orthogonalised in float64 where
    that is exact enough for this change (:func:`needs_float64`), else from a float64 SVD."""
    U, s, Vt = torch.linalg.svd(M.float())
    s64 = s.double()
    r = determined_rank(s64, residual_variance(s64, 2.0 * bb, n), n, eps)
    if needs_float64(s64, r, base):
        svd = fold_svd(M, precise=True)
        r = determined_rank(svd[1], residual_variance(svd[1], 2.0 * bb, n), n, eps)
        return fit_rotation(svd, r)
    return orthogonalize(fit_rotation((U, s, Vt), r).double())


def _half_fits(Ms: torch.Tensor, st: torch.Tensor, halves: Sequence[torch.Tensor],
               eps: float) -> HalfFits:
    """Per split of the groups into two halves, each half's fit of this modality."""
    out: HalfFits = []
    for h in halves:
        pair = []
        for one in (h, ~h):
            bb, base, n = (float(x) for x in st[one].sum(0))
            pair.append(_half_fit(Ms[one].sum(0), bb, n, eps, base))
        out.append((pair[0], pair[1]))
    return out


def _spread(X: torch.Tensor, G: torch.Tensor) -> float:
    """``||A X||^2 = tr(X^T G X)`` for ``G = A^T A``."""
    return float(torch.sum((X.T @ G) * X.T))


def null_groups(va: torch.Tensor, vb: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor,
                image_of_text: torch.Tensor, splits: int, seed: int) -> Grouped | None:
    """The null's groups: images dealt into ``NULL_GROUPS`` random groups (captions with their
    image), ``splits`` random halvings of them, and each modality's group matrices (one pass
    over each). None when the probe has fewer than 4 images."""
    n_img = va.shape[0]
    groups = min(NULL_GROUPS, n_img)
    if groups < 4:
        return None
    gen = np.random.default_rng(seed)
    lab_v = torch.as_tensor(gen.permutation(n_img) % groups)
    lab_t = lab_v[image_of_text.cpu()]
    halves = []
    for _ in range(splits):
        h = np.zeros(groups, dtype=bool)
        h[gen.permutation(groups)[: groups // 2]] = True
        halves.append(torch.as_tensor(h))
    return (halves, _group_matrices(va, vb, lab_v, groups),
            _group_matrices(ta, tb, lab_t, groups))


def relative_null(fv: HalfFits, ft: HalfFits, P: torch.Tensor) -> np.ndarray:
    """Per split, the principal angles (degrees, descending) the relative rotation reads when
    both modalities turn in step, at this probe's sizes, spectra and noise: on ``P`` (the
    directions both fits determine), the halves of one modality disagree by
    ``Q = P^T R_1 R_2^T P``, whose angles are about twice one full fit's error (two halves,
    each with twice its variance); an in-step relative rotation carries the errors of two
    full fits, so each angle's null is ``sqrt(a_V^2 + a_T^2) / 2``. The angles of a small
    rotation are the arcsines of the singular values of ``(Q - Q^T) / 2`` (one per plane,
    each twice): one symmetric eigenvalue problem, no vectors. Shape (splits, angles)."""
    out = []
    for (v1, v2), (t1, t2) in zip(fv, ft, strict=True):
        a = []
        for r1, r2 in ((v1, v2), (t1, t2)):
            Q = P.T @ r1 @ r2.T @ P
            S = (Q - Q.T) / 2.0
            sin2 = torch.linalg.eigvalsh(S.T @ S).clamp(0.0, 1.0).flip(0).numpy()
            a.append(np.degrees(np.arcsin(np.sqrt(sin2[0 : 2 * (sin2.size // 2) : 2]))))
        out.append(np.sqrt(a[0] ** 2 + a[1] ** 2) / 2.0)
    return np.stack(out)


def cross_null(grouped: Grouped | None, splits: int, eps: float,
               P: torch.Tensor | None = None) -> CrossNull | None:
    """The cross-applied residual expected when both modalities turn in step, at this probe's
    sizes, spectra and noise.

    Under one shared rotation the excess residual of the captions moved by the images' fit is,
    to first order, ``||T_a E_V||^2 + ||T_a E_T||^2``: the image fit's error moves the
    captions, and the caption fit's own overfit (of the same size) lowers their residual.
    Images are dealt into ``NULL_GROUPS`` random groups, captions go with their image; each of
    ``splits`` random halvings fits each modality on both halves, and ``(R_1 - R_2) / 2`` has
    the spread of one full-probe fit's error (each half's error has twice its variance), so
    ``||T_a (R_1 - R_2)||^2 / 4`` measures each term with the probe's own spectra and noise.
    Divided by the captions' change, symmetrically for the images. ``grouped``: what
    :func:`null_groups` returns. With ``P`` also the relative rotation's per-angle null
    (``relative_angles``, see :func:`relative_null`). Returns the mean over splits and their
    range (``low``, ``high``) per direction and for the mean, or None when the probe has fewer
    than 4 images.
    """
    if grouped is None:
        return None
    halves, (Mv, Gv, stv), (Mt, Gt, stt) = grouped
    groups = len(halves[0])
    fv, ft = _half_fits(Mv, stv, halves, eps), _half_fits(Mt, stt, halves, eps)
    Gv, Gt = Gv.sum(0), Gt.sum(0)
    base_v, base_t = float(stv[:, 1].sum()), float(stt[:, 1].sum())
    # (R_1 - R_2) / 2 has the spread of one full-probe fit's error: the other modality's fit
    # error moves these rows, and the own fit's overfit (the same size) lowers its residual
    ev = [_spread(r1 - r2, Gt) / 4.0 for r1, r2 in fv]  # image fit error, on the captions
    et = [_spread(r1 - r2, Gt) / 4.0 for r1, r2 in ft]
    evv = [_spread(r1 - r2, Gv) / 4.0 for r1, r2 in fv]
    etv = [_spread(r1 - r2, Gv) / 4.0 for r1, r2 in ft]
    # a modality that did not move has no residual to compare: its null is 0 as its value
    t_by_i = (np.asarray(ev) + np.asarray(et)) / base_t if base_t > 0 else np.zeros(splits)
    i_by_t = (np.asarray(etv) + np.asarray(evv)) / base_v if base_v > 0 else np.zeros(splits)
    both = (t_by_i + i_by_t) / 2.0

    def rng_of(x: np.ndarray) -> Range:
        return {"value": float(x.mean()), "low": float(x.min()), "high": float(x.max())}

    # shares computed from sums of squares: rounding leaves about sqrt(eps) of them
    out: CrossNull = {"text_by_image": rng_of(t_by_i), "image_by_text": rng_of(i_by_t),
                      "mean": rng_of(both), "splits": splits, "groups": groups,
                      "tolerance": float(np.sqrt(eps))}
    if P is not None and P.shape[1] >= 2:
        rel = relative_null(fv, ft, P)
        out["relative_angles"] = {"value": rel.mean(0), "low": rel.min(0), "high": rel.max(0)}
    return out
