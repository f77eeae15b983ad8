"""Rotations fitted from a cross-covariance: the determined subspace, the fit, its angles.

A probe of N items determines a rotation only inside the span it covers. ``M = A^T B = U S V^T``
carries that information: the singular values ``S`` are the probe's energy along each pair of
directions (``u_k`` in A's space, ``v_k`` in B's). The **effective rank** ``r`` is the smallest
number of leading singular values that hold ``energy`` (default 99%) of their sum: directions
beyond it hold under 1% of the probe's energy, so noise (or nothing, when N < D) decides them.
The fitted map sends ``u_k -> v_k`` for k <= r, and on the rest is the orthogonal map closest to
the identity that completes it (a rotation the probe cannot see is not reported as one).
"""

from __future__ import annotations

import math

import numpy as np
import torch

ENERGY = 0.99
REFLECTION_MARGIN = 0.002  # held out, the best proper rotation must leave 0.2% more of the
# change than the reflection


def effective_rank(s: torch.Tensor, energy: float = ENERGY) -> int:
    """Leading singular values holding ``energy`` of their sum (at least 1)."""
    total = float(s.sum())
    if total <= 0:
        return 0
    c = torch.cumsum(s, 0) / total
    return int(min(int((c < energy - 1e-12).sum()) + 1, s.numel()))


def _polar(X: torch.Tensor, det_sign: float | None = None) -> torch.Tensor:
    """Orthogonal Q maximising ``tr(Q^T X)``; with ``det_sign`` the best Q of that determinant."""
    U, _, Vt = torch.linalg.svd(X)
    if det_sign is not None and float(torch.linalg.det(U @ Vt)) * det_sign < 0:
        U = U.clone()
        U[:, -1] = -U[:, -1]
    return U @ Vt


def fit_rotation(M: torch.Tensor, r: int | None = None, reflection: bool = False, svd=None):
    """The rotation ``R`` (D x D, float64; ``A R ~ B``) of cross-covariance ``M`` in its
    determined subspace, completed by the orthogonal map closest to the identity.

    ``reflection``: allow ``det(R) = -1`` (else the best proper rotation); ``svd``: ``M``'s
    SVD when already computed. Returns ``(R, s, r)``: the singular values of ``M`` and the
    rank used.
    """
    U, s, Vt = torch.linalg.svd(M) if svd is None else svd
    d = s.numel()
    r = effective_rank(s) if r is None else r
    sign = -1.0 if reflection else 1.0
    if r >= d:
        if float(torch.linalg.det(U @ Vt)) * sign < 0:  # Kabsch: flip the weakest direction
            U = U.clone()
            U[:, -1] = -U[:, -1]
        return U @ Vt, s, d
    Ur, Vr = U[:, :r], Vt[:r].T
    Uc, Vc = U[:, r:], Vt[r:].T
    # on the complement: Z maximising tr(R) = tr(Ur Vr^T) + tr(Uc Z Vc^T), i.e. tr(Z Vc^T Uc)
    det_part = float(torch.linalg.det(U)) * float(torch.linalg.det(Vt))
    # det(R) = det(U) det(blockdiag(I, Z)) det(V^T) = det_part * det(Z)
    Z = _polar(Uc.T @ Vc, det_sign=sign * det_part)
    return Ur @ Vr.T + Uc @ Z @ Vc.T, s, r


def reflection_significant(M: torch.Tensor, base: float, svd=None, folds=None) -> bool:
    """True when the best orthogonal fit is a reflection and that holds out of sample: scored
    on held-out folds (``folds = (Ms, aa, bb)``, see :func:`heldout_left`), the best proper
    rotation leaves more of the change than the reflection by ``REFLECTION_MARGIN`` of it.

    A sign the probe barely determines (noise, or a direction it does not cover) does not
    generalise across folds, so it is not reported as a reflection. Without folds (fewer than
    2), the in-sample cost of the proper rotation, ``4 s_min``, must exceed the margin.
    """
    U, s, Vt = torch.linalg.svd(M) if svd is None else svd
    if base <= 0 or float(torch.linalg.det(U @ Vt)) > 0:
        return False
    if float(s[-1]) <= 1e-9 * float(s[0]):  # a direction the probe does not cover at all
        return False
    if folds is None or folds[0].shape[0] < 2:
        return 4.0 * float(s[-1]) > REFLECTION_MARGIN * base
    Ms, aa, bb = folds
    r = effective_rank(s)
    proper = heldout_left(Ms, aa, bb, r, False)
    improper = heldout_left(Ms, aa, bb, r, True)
    return proper - improper > REFLECTION_MARGIN * base


def principal_angles(R, reflection: bool | None = None) -> tuple[np.ndarray, bool]:
    """Principal rotation angles (degrees, descending, one per plane) of an orthogonal matrix.

    A real orthogonal ``R`` is ``Q diag(rot(phi_1), ..., rot(phi_m), +-1, ...) Q^T`` (its real
    Schur form). The eigenvectors of the symmetric part ``(R + R^T)/2`` (eigenvalues
    ``cos phi_k``, twice each) span those planes, and the antisymmetric part ``(R - R^T)/2``
    maps each to a vector of length ``sin phi_k``; ``phi_k = atan2(sin, cos)`` is accurate at
    0 and 180 degrees alike. Eigenvalues -1 in pairs are 180-degree rotations, +1 in pairs are
    fixed planes (0). When ``det(R) = -1`` one eigenvalue -1 is a reflection axis, not a
    rotation: it is removed and ``reflection=True`` is returned. Returns ``(angles,
    reflection)`` with ``floor(m / 2)`` angles, ``m`` being D less the reflection axis.
    """
    R = torch.as_tensor(np.asarray(R, dtype=np.float64) if not isinstance(R, torch.Tensor)
                        else R.detach().double())
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        from ..errors import InputError

        raise InputError(f"R must be a square matrix, got shape {tuple(R.shape)}")
    if reflection is None:
        reflection = bool(torch.linalg.det(R) < 0)
    cos, Q = torch.linalg.eigh((R + R.T) / 2.0)
    sin = torch.linalg.vector_norm(((R - R.T) / 2.0) @ Q, dim=0)
    phi = np.sort(np.degrees(torch.atan2(sin, cos).cpu().numpy()))[::-1]  # descending
    if reflection:
        phi = phi[1:]  # the axis with eigenvalue -1 (angle 180, sine 0) is the reflection
    m = phi.size // 2
    return (phi[0 : 2 * m : 2] + phi[1 : 2 * m : 2]) / 2.0, reflection


def fold_rotations(Ms: torch.Tensor, r: int, reflection: bool) -> list[torch.Tensor]:
    """``R_{-f}``: the fit of every fold's complement (at most rank ``r``, at most what the
    complement itself determines)."""
    total = Ms.sum(0)
    out = []
    for f in range(Ms.shape[0]):
        # float32 suffices for a held-out share (about 1e-6), at half the cost of float64
        svd = tuple(x.double() for x in torch.linalg.svd((total - Ms[f]).float()))
        r_f = min(r, effective_rank(svd[1]))
        out.append(fit_rotation(None, r_f, reflection, svd=svd)[0])
    return out


def heldout_left(Ms: torch.Tensor, aa, bb, r: int, reflection: bool, rotations=None) -> float:
    """``sum_f ||A_f R_{-f} - B_f||^2``: each fold scored by the fit of the other folds
    (``rotations``: the folds' fits when already computed)."""
    left = 0.0
    if rotations is None:
        rotations = fold_rotations(Ms, r, reflection)
    for f, R in enumerate(rotations):
        left += float(aa[f] + bb[f] - 2.0 * torch.sum(R * Ms[f]))
    return left


def jitter_null(s: torch.Tensor, n: torch.Tensor, base: float, r: int, seed: int = 0,
                max_dim: int = 32, draws: int = 2) -> float:
    """Held-out explained share expected when B is A plus isotropic jitter of the same size.

    A scaled-down simulation with the same N/r and D/r ratios, no pass over the data: the
    probe's spectrum (``M``'s singular values, sampled at ``max_dim`` quantiles of the
    determined ones, the rest spread evenly) gives Gaussian unit rows; each is turned by the
    mean change ``theta`` (``cos theta = 1 - base / 2N``) towards a random perpendicular
    direction; the result is fitted and scored with the same folds and rank rule as the real
    data, averaged over ``draws``. Jitter with no rotation explains about 0 in sample's
    expectation and less out of sample, by what the fits pick up from noise at this N and r.
    """
    N = float(n.sum())
    d = s.numel()
    k = n.numel()
    total = float(s.sum())
    if r < 1 or base <= 0 or total <= 0:
        return 0.0
    cos = max(min(1.0 - base / (2.0 * N), 1.0), -1.0)
    if 1.0 - cos < 1e-12:  # no change to speak of: nothing for jitter to explain
        return 0.0
    sin = math.sqrt(max(1.0 - cos * cos, 0.0))
    r2 = min(r, max_dim)
    scale = r2 / r
    n2 = max(int(round(N * scale)), 2 * k)
    d2 = max(r2, int(round(d * scale)))
    lam = (s / total).double()
    pick = torch.linspace(0, r - 1, r2).round().long()
    head = lam[pick] * float(lam[:r].sum()) / float(lam[pick].sum())
    rest = max(1.0 - float(head.sum()), 0.0)
    tail = torch.full((d2 - r2,), rest / max(d2 - r2, 1), dtype=torch.float64)
    std = torch.cat([head, tail]).clamp(min=0).sqrt()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(draws):
        X = torch.randn(n2, d2, generator=gen, dtype=torch.float64) * std
        X = X / torch.linalg.vector_norm(X, dim=1, keepdim=True)
        E = torch.randn(n2, d2, generator=gen, dtype=torch.float64)
        E = E - (E * X).sum(1, keepdim=True) * X
        E = E / torch.linalg.vector_norm(E, dim=1, keepdim=True)
        Y = cos * X + sin * E
        folds = torch.arange(n2) % k
        Ms = torch.stack([X[folds == f].T @ Y[folds == f] for f in range(k)])
        nf = torch.bincount(folds, minlength=k).double()
        rr = min(effective_rank(torch.linalg.svdvals(Ms.sum(0))), r2)
        left = heldout_left(Ms, nf, nf, rr, False)
        out.append(1.0 - left / (2.0 * n2 * (1.0 - cos)))
    return float(np.mean(out))
