"""Rotations fitted from a cross-covariance: the determined subspace, the fit, its angles.

A probe of N items determines a rotation only where its data pin it down. ``M = A^T B =
U S V^T`` carries that information: ``s_k`` is the probe's energy along the pair of directions
``u_k`` (A's space) and ``v_k`` (B's). Under ``B = A R + E`` with residual variance ``sigma^2``
per coordinate, the fitted angle in the plane of directions k and l has a standard error of
about ``sigma / sqrt(s_k + s_l)`` (first-order perturbation of the polar factor). The
**determined rank** ``r`` keeps the directions whose standard error ``sigma / sqrt(s_k)`` is at
most ``SE_MAX`` radians (so every plane between kept directions has an error under
``SE_MAX / sqrt 2``, about 2 degrees), ``sigma^2`` being the full-rank fit's residual per
coordinate (degrees of freedom corrected). It looks at N and the noise, never at a direction's
share of the variance: noise-free data keep every direction with non-zero spread, and a
low-variance direction is kept once there are enough rows. Directions with no spread at all
(below the accumulation's rounding) are never kept. Below ``N < 2 D`` the residual cannot be
told from overfitting, so every direction with spread is kept and the caller warns.

The fitted map sends ``u_k -> v_k`` for k <= r, and on the rest is the orthogonal map closest to
the identity that completes it (a rotation the probe cannot see is not reported as one).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import torch

SE_MAX = 0.05  # radians: largest standard error of a kept direction's rotation angle
MIN_ROWS_PER_DIM = 2  # below N / D = 2 no direction is judged against the noise
REFLECTION_MARGIN = 0.002  # held out, the best proper rotation must leave 0.2% more of the
# change than the reflection

SVD: TypeAlias = "tuple[torch.Tensor, torch.Tensor, torch.Tensor]"  # U, s, V^T


def residual_variance(s: torch.Tensor, norms: float, n: float) -> float:
    """Residual per coordinate of the full-rank fit, ``(|A|^2 + |B|^2 - 2 sum s) / dof`` with
    ``dof = N D - D (D - 1) / 2`` (the fit's own parameters), at least 0."""
    d = s.numel()
    dof = max(n * d - d * (d - 1) / 2.0, 1.0)
    return max(norms - 2.0 * float(s.sum()), 0.0) / dof


def numerical_rank(s: torch.Tensor, eps: float) -> int:
    """Directions with spread above the rounding of the accumulation (``D eps s_1``)."""
    if s.numel() == 0 or float(s[0]) <= 0:
        return 0
    return int((s > s.numel() * eps * float(s[0])).sum())


def determined_rank(s: torch.Tensor, sigma2: float, n: float, eps: float) -> int:
    """The determinacy rule (module docstring): leading directions with ``sigma^2 / s_k <=
    SE_MAX^2``, all those with spread when ``N < 2 D``."""
    r = numerical_rank(s, eps)
    if n < MIN_ROWS_PER_DIM * s.numel() or sigma2 <= 0.0:
        return r
    keep = s[:r] * SE_MAX**2 >= sigma2
    return int(keep.sum())


def orthogonalize(R: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """Newton steps towards the nearest orthogonal matrix, ``R <- R (3 I - R^T R) / 2``
    (quadratic convergence: a float32 fit orthogonal to 1e-6 is left orthogonal to about
    1e-12 by one step)."""
    eye = torch.eye(R.shape[0], dtype=R.dtype)
    for _ in range(steps):
        R = R @ (1.5 * eye - 0.5 * (R.T @ R))
    return R


FLOAT32_SVD_ERROR = 1e-5  # largest share of the change a float32 SVD's error may leave


def needs_float64(s: torch.Tensor, r: int, base: float) -> bool:
    """Whether a float32 SVD of a cross-covariance with singular values ``s`` (rank ``r``)
    would leave more than ``FLOAT32_SVD_ERROR`` of the change ``base = ||A - B||^2``
    unexplained: rounding ``M`` to float32 errs by about ``eps32 s_1``, which turns direction
    k's fitted plane by about ``eps32 s_1 / s_k`` and leaves ``(eps32 s_1)^2 / s_k`` of
    residual there. Negligible for a change of the data's own size; not for a change that
    lives in directions 1e5 times weaker than the strongest (a rotation in a steep spectrum's
    weakest planes, read as 0.97 of itself in float32)."""
    if r == 0 or base <= 0:
        return False
    kept = s[:r].double()
    kept = kept[kept > 0]
    eps = float(torch.finfo(torch.float32).eps)
    return (eps * float(s[0])) ** 2 * float((1.0 / kept).sum()) > FLOAT32_SVD_ERROR * base


def fold_svd(M: torch.Tensor, precise: bool = False) -> SVD:
    """A fold complement's SVD in float32 (half the cost of float64), returned as float64:
    the fit made from it is then orthogonalised in float64 by :func:`orthogonalize`. The
    fit's error is first order in the singular vectors' error (about ``eps32 s_1 / s_k``
    for direction k) and a held-out residual at the fit's optimum second order in it; what
    float32 fits left behind, non-orthogonality of 3e-6 that swamped changes under 0.2
    degrees, the Newton step removes. ``precise``: in float64 (see :func:`needs_float64`)."""
    if precise:
        U, s, Vt = torch.linalg.svd(M.double())
        return U, s, Vt
    U, s, Vt = torch.linalg.svd(M.float())
    return U.double(), s.double(), Vt.double()


def polar(X: torch.Tensor, det_sign: float | None = None) -> torch.Tensor:
    """Orthogonal Q maximising ``tr(Q^T X)``; with ``det_sign`` the best Q of that determinant."""
    U, _, Vt = torch.linalg.svd(X)
    if det_sign is not None and float(torch.linalg.det(U @ Vt)) * det_sign < 0:
        U = U.clone()
        U[:, -1] = -U[:, -1]
    Q: torch.Tensor = U @ Vt
    return Q


def fit_rotation(svd: SVD, r: int, reflection: bool = False) -> torch.Tensor:
    """The rotation ``R`` (D x D, float64; ``A R ~ B``) of a cross-covariance with SVD ``svd``
    in its first ``r`` directions, completed by the orthogonal map closest to the identity.

    ``reflection``: allow ``det(R) = -1`` (else the best proper rotation).
    """
    U, s, Vt = svd
    d = s.numel()
    sign = -1.0 if reflection else 1.0
    if r >= d:
        if float(torch.linalg.det(U @ Vt)) * sign < 0:  # Kabsch: flip the weakest direction
            U = U.clone()
            U[:, -1] = -U[:, -1]
        R: torch.Tensor = U @ Vt
        return R
    Ur, Vr = U[:, :r], Vt[:r].T
    Uc, Vc = U[:, r:], Vt[r:].T
    # on the complement: Z maximising tr(R) = tr(Ur Vr^T) + tr(Uc Z Vc^T), i.e. tr(Z Vc^T Uc)
    det_part = float(torch.linalg.det(U)) * float(torch.linalg.det(Vt))
    # det(R) = det(U) det(blockdiag(I, Z)) det(V^T) = det_part * det(Z)
    Z = polar(Uc.T @ Vc, det_sign=sign * det_part)
    R = Ur @ Vr.T + Uc @ Z @ Vc.T
    return R


@dataclasses.dataclass
class Fit:
    """One modality's fit from its fold cross-covariances ``Ms`` (k, D, D), float64 throughout.

    ``R``: the fit (``A R ~ B``); ``s``: singular values of ``M = sum Ms``; ``rank``: the
    determined rank; ``sigma2``: the full-rank residual per coordinate; ``reflect``: a
    reflection that holds out of sample; ``fold_R``: each fold's complement fit (None for one
    fold); ``U``, ``Vt``: ``M``'s singular vectors."""

    R: torch.Tensor
    s: torch.Tensor
    rank: int
    sigma2: float
    reflect: bool
    fold_R: list[torch.Tensor] | None
    U: torch.Tensor
    Vt: torch.Tensor


def fit_folds(Ms: torch.Tensor, aa: torch.Tensor, bb: torch.Tensor, n: torch.Tensor,
              eps: float, base: float, rank: int | None = None,
              reflection: bool | None = None) -> Fit:
    """Fit, determined rank, reflection test and fold fits from one SVD per fold complement
    and one of the total (every fold SVD serves both the reflection test and the fold fits).

    ``aa``, ``bb``, ``n``: per-fold sums of squared norms and rows; ``eps``: the machine epsilon
    of the dtype the matrices were accumulated in; ``base``: ``||A - B||^2``. ``rank`` and
    ``reflection`` force those choices (the jitter null uses them)."""
    Ms = Ms.double()
    total = Ms.sum(0)
    N = float(n.sum())
    full = torch.linalg.svd(total)
    U, s, Vt = full
    sigma2 = residual_variance(s, float(aa.sum() + bb.sum()), N)
    r = determined_rank(s, sigma2, N, eps) if rank is None else rank
    k = Ms.shape[0]
    precise = needs_float64(s, r, base)
    svds = [fold_svd(total - Ms[f], precise) for f in range(k)] if k > 1 else []
    forced = rank is not None
    ranks = [_fold_rank(sv[1], r, sigma2, N - float(n[f]), eps, forced)
             for f, sv in enumerate(svds)]
    fits: dict[bool, list[torch.Tensor]] = {}  # fold fits by reflection, each made once

    def fold_fits(refl: bool) -> list[torch.Tensor]:
        if refl not in fits:
            fits[refl] = [orthogonalize(fit_rotation(sv, rf, refl))
                          for sv, rf in zip(svds, ranks, strict=True)]
        return fits[refl]

    if reflection is None:
        reflection = _reflection_holds(full, base, Ms, aa, bb, fold_fits if svds else None)
    fold_R = fold_fits(reflection) if svds else None
    return Fit(fit_rotation(full, r, reflection), s, r, sigma2, reflection, fold_R, U, Vt)


def _fold_rank(s: torch.Tensor, r: int, sigma2: float, n: float, eps: float,
               forced: bool = False) -> int:
    """A fold complement's rank: the full fit's, or fewer where the fold's rows determine
    fewer (with a forced rank only the numerical rank caps it)."""
    return min(r, numerical_rank(s, eps) if forced else determined_rank(s, sigma2, n, eps))


def _reflection_holds(svd: SVD, base: float, Ms: torch.Tensor, aa: torch.Tensor,
                      bb: torch.Tensor,
                      fold_fits: Callable[[bool], list[torch.Tensor]] | None) -> bool:
    """True when the best orthogonal fit is a reflection and that holds out of sample: scored
    on held-out folds (``fold_fits(reflection)``: each fold complement's fit), the best proper
    rotation leaves more of the change than the reflection by ``REFLECTION_MARGIN`` of it. A
    sign the probe barely determines (noise, or a direction it does not cover) does not
    generalise across folds, so it is not reported. Without folds, the in-sample cost of the
    proper rotation, ``4 s_min``, must exceed the margin."""
    U, s, Vt = svd
    if base <= 0 or float(torch.linalg.det(U @ Vt)) > 0:
        return False
    if float(s[-1]) <= 1e-9 * float(s[0]):  # a direction the probe does not cover at all
        return False
    if fold_fits is None:
        return 4.0 * float(s[-1]) > REFLECTION_MARGIN * base
    proper = heldout_left(Ms, aa, bb, fold_fits(False))
    improper = heldout_left(Ms, aa, bb, fold_fits(True))
    return proper - improper > REFLECTION_MARGIN * base


def principal_angles(R: npt.ArrayLike | torch.Tensor,
                     reflection: bool | None = None) -> tuple[np.ndarray, bool]:
    """Principal rotation angles (degrees, descending, one per plane) of an orthogonal matrix.

    A real orthogonal ``R`` is ``Q diag(rot(phi_1), ..., rot(phi_m), +-1, ...) Q^T`` (its real
    Schur form). The eigenvectors of the symmetric part ``(R + R^T)/2`` (eigenvalues
    ``cos phi_k``, twice each) span those planes, and the antisymmetric part ``(R - R^T)/2``
    maps each to a vector of length ``sin phi_k``; ``phi_k = atan2(sin, cos)`` is accurate at
    0 and 180 degrees alike. Eigenvalues -1 in pairs are 180-degree rotations, +1 in pairs are
    fixed planes (0). When ``det(R) = -1`` one eigenvalue -1 is a reflection axis, not a
    rotation: it is removed and ``reflection=True`` is returned. Returns ``(angles,
    reflection)`` with ``floor(m / 2)`` angles, ``m`` being D less the reflection axis.

    Parameters
    ----------
    R : array (D, D)
        An orthogonal matrix.
    reflection : bool, optional
        Whether ``R`` is a reflection (default: from the sign of its determinant).

    Returns
    -------
    angles : ndarray (floor(m / 2),)
        Rotation angle of each plane, degrees, descending.
    reflection : bool
        A reflection axis was removed.

    Raises
    ------
    InputError
        ``R`` is not a square (D, D) matrix, or is a tensor on the meta device.

    See Also
    --------
    procrustes : Fits the rotation whose angles are read here (``angles_deg``).
    deviation : Reads the relative rotation of images and captions the same way.

    References
    ----------
    1. G. H. Golub, C. F. Van Loan. Matrix Computations, 4th ed. Johns Hopkins University
       Press, 2013 (the real Schur decomposition).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    >>> R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    >>> angles, refl = sdtools.principal_angles(R)
    >>> angles.round(6), refl
    (array([30.]), False)
    """
    T = torch.as_tensor(np.asarray(R, dtype=np.float64) if not isinstance(R, torch.Tensor)
                        else R.detach().double())
    if T.ndim != 2 or T.shape[0] != T.shape[1]:
        from ..errors import InputError

        raise InputError(f"R must be a square matrix, got shape {tuple(T.shape)}")
    if reflection is None:
        reflection = bool(torch.linalg.det(T) < 0)
    cos, Q = torch.linalg.eigh((T + T.T) / 2.0)
    sin = torch.linalg.vector_norm(((T - T.T) / 2.0) @ Q, dim=0)
    phi = np.sort(np.degrees(torch.atan2(sin, cos).cpu().numpy()))[::-1]  # descending
    if reflection:
        phi = phi[1:]  # the axis with eigenvalue -1 (angle 180, sine 0) is the reflection
    m = phi.size // 2
    return (phi[0 : 2 * m : 2] + phi[1 : 2 * m : 2]) / 2.0, reflection


def heldout_left(Ms: torch.Tensor, aa: torch.Tensor, bb: torch.Tensor,
                 rotations: Sequence[torch.Tensor]) -> float:
    """``sum_f ||A_f R_{-f} - B_f||^2``: each fold scored by the fit of the other folds."""
    left = 0.0
    for f, R in enumerate(rotations):
        left += float(aa[f] + bb[f] - 2.0 * torch.sum(R * Ms[f]))
    return left


def jitter_null(s: torch.Tensor, n: torch.Tensor, base: float, r: int, seed: int = 0,
                center: bool = False, max_dim: int = 64, draws: int = 2, share: float = 0.0,
                per_group: float = 1.0, spread: float = 0.0, mean_share: float = 0.0) -> float:
    """Held-out explained share expected when B is A plus isotropic jitter of the same size.

    A scaled-down simulation with the same N/r and D/r ratios, no pass over the data: the
    probe's spectrum (``M``'s singular values: the determined ones summed in ``max_dim`` runs
    of consecutive ones, the rest spread evenly) gives Gaussian unit rows; each is turned by the
    mean change ``theta`` (``cos theta = 1 - base / 2N``) towards a random perpendicular
    direction; with ``center`` both are then centred, as the data were; the result is fitted
    with the same folds at the real fit's share of determined directions (``r2`` of ``d2``,
    as ``r`` of D: the rule itself depends on N, which the simulation scales down) and scored,
    averaged over ``draws``. Jitter with no rotation explains about 0 in sample's expectation
    and less out of sample, by what the fits pick up from noise at this N and r.

    With ``share`` > 0 (items in groups of ``per_group`` rows on average that share that part
    of their change, as measured on the probe) the simulated rows fall in groups of that size,
    each row's direction mixes a direction its group shares (``share`` of the energy) with its
    own, and the folds hold whole groups, as the probe's do: a drift per group is jitter. The
    groups are as clustered as the probe's labels (``spread``: the share of the variance
    between groups). ``mean_share``: ``|mean row|^2`` of unit rows (a cone's mean cosine):
    that part of the top direction's energy is simulated as the constant offset it is, not as
    spread along the axis.
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
    # each simulated direction carries the summed share of its own run of r / r2 consecutive
    # determined directions: the simulated rows spread their variance as the data do at any D
    # (sampling single points overweighted the top one: a cone axis got 97% for 50%)
    edges = torch.linspace(0, r, r2 + 1).round().long()
    head = torch.stack([lam[edges[i] : edges[i + 1]].sum() for i in range(r2)])
    rest = max(1.0 - float(head.sum()), 0.0)
    tail = torch.full((d2 - r2,), rest / max(d2 - r2, 1), dtype=torch.float64)
    offset = min(max(float(mean_share), 0.0), float(head[0]))
    head[0] -= offset  # the mean's energy: a constant offset along the top direction
    std = torch.cat([head, tail]).clamp(min=0).sqrt()
    gen = torch.Generator().manual_seed(seed)
    eps = torch.finfo(torch.float64).eps
    share = min(max(float(share), 0.0), 1.0)
    grouped = share > 0 or spread > 0  # labels given: folds hold whole (clustered) groups
    g2 = max(k, int(round(n2 / max(per_group, 1.0)))) if grouped else n2
    grp = torch.arange(n2) % g2
    folds = grp % k  # whole groups held out, as the probe's folds hold whole labels
    out = []
    for _ in range(draws):
        X = torch.randn(n2, d2, generator=gen, dtype=torch.float64) * std
        if spread > 0:
            Z = torch.randn(g2, d2, generator=gen, dtype=torch.float64) * std
            X = math.sqrt(1.0 - spread) * X + math.sqrt(spread) * Z[grp]
        X[:, 0] += math.sqrt(offset)
        X = X / torch.linalg.vector_norm(X, dim=1, keepdim=True)
        E = torch.randn(n2, d2, generator=gen, dtype=torch.float64)
        if share > 0:
            Eg = torch.randn(g2, d2, generator=gen, dtype=torch.float64)
            E = math.sqrt(1.0 - share) * E + math.sqrt(share) * Eg[grp]
        E = E - (E * X).sum(1, keepdim=True) * X
        E = E / torch.linalg.vector_norm(E, dim=1, keepdim=True)
        Y = cos * X + sin * E
        if center:
            X, Y = X - X.mean(0), Y - Y.mean(0)
        Ms = torch.stack([X[folds == f].T @ Y[folds == f] for f in range(k)])
        aa = torch.stack([(X[folds == f] ** 2).sum() for f in range(k)])
        bb = torch.stack([(Y[folds == f] ** 2).sum() for f in range(k)])
        nf = torch.bincount(folds, minlength=k).double()
        sim_base = float(((X - Y) ** 2).sum())
        # the real fit's share of determined directions, not the rule at this smaller N
        fit = fit_folds(Ms, aa, bb, nf, eps, sim_base, rank=r2, reflection=False)
        assert fit.fold_R is not None  # k >= 2 folds: each has its complement's fit
        left = heldout_left(Ms, aa, bb, fit.fold_R)
        out.append(1.0 - left / sim_base)
    return float(np.mean(out))
