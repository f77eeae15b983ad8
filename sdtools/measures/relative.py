"""The relative rotation of images and captions between two checkpoints and the
cross-applied residuals, from each modality's fit (:func:`relative_rotation`; what
:func:`~.intermodal.deviation` reports as ``relative_rotation`` and ``cross_residual``)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .crosscov import BLOCK, CrossCov, Prep, cross_covariance, prepare, rows
from .crossnull import NULL_SPLITS, CrossNull, cross_null, null_groups
from .rotations import SE_MAX, Fit, fit_folds, polar, principal_angles

# angles, reflection, rank, text_by_image, image_by_text, null
Relative = tuple[np.ndarray, bool, int, float | None, float | None, CrossNull | None]


def _fit(a: torch.Tensor, b: torch.Tensor) -> tuple[Fit, CrossCov]:
    """One modality's fit (:class:`~.rotations.Fit`) and its cross-covariance."""
    cc = cross_covariance(prepare(a, b, False), 3)
    return fit_folds(cc.M, cc.aa, cc.bb, cc.n, cc.eps, cc.base), cc


def _gram(prep: Prep) -> torch.Tensor:
    a = prep[0]
    G = torch.zeros(a.shape[1], a.shape[1], dtype=a.dtype, device=a.device)
    for s in range(0, a.shape[0], BLOCK):
        ac, _ = rows(*prep, s, min(s + BLOCK, a.shape[0]))
        G.addmm_(ac.T, ac)
    return G.double().cpu()


def _left(R: torch.Tensor, M: torch.Tensor, G: torch.Tensor, bb: float) -> float:
    """``||A R - B||^2`` from ``M = A^T B``, ``G = A^T A`` (``R`` need not be orthogonal)."""
    return float(torch.sum((R.T @ G) * R.T)) + bb - 2.0 * float(torch.sum(R * M))


def _cross(R_own: torch.Tensor, R_mix: torch.Tensor, M: torch.Tensor, G: torch.Tensor,
           bb: float, base: float) -> float:
    """(||A R_mix - B||^2 - ||A R_own - B||^2) / ||A - B||^2 from D x D matrices."""
    if base <= 0:
        return 0.0
    return (_left(R_mix, M, G, bb) - _left(R_own, M, G, bb)) / base


def common_subspace(Sv: torch.Tensor, St: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the intersection of two subspaces (columns of ``Sv``, ``St``):
    their principal directions whose angle is within the fits' resolution ``SE_MAX``."""
    if Sv.shape[1] == 0 or St.shape[1] == 0:
        return Sv[:, :0]
    a, cosines, _ = torch.linalg.svd(Sv.T @ St)
    keep = cosines >= math.cos(SE_MAX)
    basis: torch.Tensor = Sv @ a[:, : cosines.numel()][:, keep]
    return basis


def relative_rotation(va: torch.Tensor, vb: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor,
                      image_of_text: torch.Tensor, null_splits: int = NULL_SPLITS,
                      seed: int = 0) -> Relative:
    """Principal angles of the relative rotation where the probe determines both fits, and
    the cross-applied residuals with their null (see :class:`DeviationResult`).

    The fits act on rows (``A R ~ B``), so both are composed in a-space:
    ``Delta = R_T R_V^T`` (caption rotation, then the images' rotation undone) maps a-space
    to a-space; it is the identity under one shared rotation and is similar to ``R_V^T R_T``.
    It is read on ``P``, the a-space directions both fits determine (the determinacy rule of
    :mod:`~.rotations`, no energy or cosine cut beyond the fits' resolution). Moving one
    modality by the other's rotation is done inside ``P`` only (its own rotation elsewhere), so
    a direction only one modality covers cannot count as unsynchronised.

    Returns ``(angles, reflection, rank, text_by_image, image_by_text, null)``, the
    residuals None when ``rank`` is 0 and ``null`` a dict (see :func:`cross_null`).
    """
    d = va.shape[1]
    if ta.shape[0] < 6 or va.shape[0] < 6:
        return np.zeros(0), False, 0, None, None, None
    fv, ccv = _fit(va, vb)
    ft, cct = _fit(ta, tb)
    P = common_subspace(fv.U[:, : fv.rank], ft.U[:, : ft.rank])
    k = P.shape[1]
    if k == 0:
        return np.zeros(0), False, 0, None, None, None
    grouped = null_groups(va, vb, ta, tb, image_of_text, null_splits, seed)
    # the Grams A^T A: the null's group matrices summed, or one pass when there is no null
    Gv = grouped[1][1].sum(0) if grouped else _gram(prepare(va, vb, False))
    Gt = grouped[2][1].sum(0) if grouped else _gram(prepare(ta, tb, False))
    rel, refl = principal_angles(polar(P.T @ ft.R @ fv.R.T @ P))
    PP = P @ P.T
    eye = torch.eye(d, dtype=PP.dtype)
    tsum = (float(cct.bb.sum()), cct.base)
    vsum = (float(ccv.bb.sum()), ccv.base)
    text_by_image = _cross(ft.R, PP @ fv.R + (eye - PP) @ ft.R, cct.total, Gt, *tsum)
    image_by_text = _cross(fv.R, PP @ ft.R + (eye - PP) @ fv.R, ccv.total, Gv, *vsum)
    null = cross_null(grouped, null_splits, float(torch.finfo(va.dtype).eps), P)
    return rel, refl, k, text_by_image, image_by_text, null


__all__ = ["Relative", "common_subspace", "relative_rotation"]
