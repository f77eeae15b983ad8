"""Orthogonal Procrustes between two checkpoints' embeddings, on the subspace the probe
determines, with its in-sample and held-out shares and a jitter null.

One pass over the rows gives per-fold cross-covariances (:mod:`.crosscov`); the fit, the
principal angles, ``explained``, ``explained_heldout`` (k-fold over probe items) and
``rigidity`` follow from D x D matrices (:mod:`.rotations`). Per-sample residual angles need a
second pass and are computed only when asked.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .checks import normalize, to_numpy
from .crosscov import block_size, cross_covariance, prepare, rows
from .rotations import (
    fit_rotation,
    fold_rotations,
    heldout_left,
    jitter_null,
    principal_angles,
    reflection_significant,
)
from .summary import Summary, jsonable

__all__ = ["ProcrustesResult", "procrustes", "principal_angles"]

MIN_ITEMS_PER_DIM = 10


@dataclasses.dataclass(frozen=True)
class ProcrustesResult:
    """Orthogonal Procrustes fit ``R* = argmin_R ||A R - B||_F`` where the probe determines it.

    - ``rank``: dimensions the probe determines (see :mod:`sdtools.measures.rotations`); the
      rotation is fitted there and completed by the map closest to the identity elsewhere.
    - ``angles_deg``: principal rotation angles of ``R*`` (descending, one per plane).
    - ``det`` / ``reflection``: -1 / True only for a reflection that holds out of sample (on
      held-out folds the best proper rotation leaves 0.2% more of the change); a noisy sign
      is not one.
    - ``explained``: ``1 - ||A R* - B||^2 / ||A - B||^2`` in sample (optimistic when N is not
      much larger than ``rank``); ``explained_heldout``: the same with each fold of probe
      items scored by the fit of the others (can be negative).
    - ``null_heldout``: ``explained_heldout`` expected under isotropic jitter of the same
      size at the same N, D, rank; ``rigidity = (explained_heldout - null_heldout) / (1 -
      null_heldout)``: about 0 for jitter, 1 for a rotation with little noise.
    - ``residual_angles_deg``: per-sample ``angle(A_i R*, B_i)``, with ``residuals=True``.
    - ``warnings``: when N is small for the rank.
    """

    rotation: np.ndarray
    det: float
    reflection: bool
    rank: int
    angles_deg: np.ndarray
    explained: float
    explained_heldout: float
    null_heldout: float
    rigidity: float
    folds: int
    n: int
    residual_angles_deg: np.ndarray | None
    centered: bool
    warnings: tuple[str, ...] = ()

    @property
    def max_angle(self) -> float:
        return float(self.angles_deg.max()) if self.angles_deg.size else 0.0

    @property
    def mean_angle(self) -> float:
        return float(self.angles_deg.mean()) if self.angles_deg.size else 0.0

    @property
    def rms_angle(self) -> float:
        return float(np.sqrt(np.mean(self.angles_deg**2))) if self.angles_deg.size else 0.0

    @property
    def geodesic_deg(self) -> float:
        """Geodesic size of the rotation, ``sqrt(sum phi_k^2)`` in degrees."""
        return float(np.sqrt(np.sum(self.angles_deg**2)))

    def to_dict(self) -> dict:
        out = {"det": self.det, "reflection": self.reflection, "centered": self.centered,
               "rank": self.rank, "n": self.n, "angles_deg": self.angles_deg,
               "max_angle": self.max_angle, "mean_angle": self.mean_angle,
               "rms_angle": self.rms_angle, "geodesic_deg": self.geodesic_deg,
               "explained": self.explained, "explained_heldout": self.explained_heldout,
               "null_heldout": self.null_heldout, "rigidity": self.rigidity,
               "folds": self.folds, "warnings": list(self.warnings)}
        if self.residual_angles_deg is not None:
            out["residual"] = Summary.of(self.residual_angles_deg).to_dict()
        return jsonable(out)


def procrustes(A, B, center: bool = False, residuals: bool = False, folds: int = 3,
               chunk_size: int = 8192, seed: int = 0) -> ProcrustesResult:
    """Fit the orthogonal map that best takes A onto B (rows L2-normalised first).

    ``R* = U V^T`` with ``U S V^T = svd(A^T B)`` inside the determined subspace (float64 D x D
    work whatever the input dtype). ``center=True`` subtracts each space's mean first (off by
    default: CLIP embeddings live on the sphere). ``folds``: k of the held-out share (probe
    items in blocks of 1024 rows, block b in fold b % k). ``residuals``: also the per-sample
    angles left after the rotation (a second pass over the rows).

    Example
    -------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((500, 8))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> fit = sdtools.procrustes(A, A @ Q)
    >>> round(fit.explained, 6), round(fit.explained_heldout, 6), fit.rank
    (1.0, 1.0, 8)
    """
    prep = prepare(A, B, center)
    a = prep[0]
    n, d = a.shape
    cc = cross_covariance(prep, folds)
    M = cc.total
    base = cc.base
    exact = base < 1e-3 * n  # a tiny change: sums of squares lose digits; take differences
    svd = torch.linalg.svd(M)
    reflect = reflection_significant(M, base, svd, (cc.M, cc.aa, cc.bb))
    R, s, r = fit_rotation(M, None, reflect, svd)
    det = -1.0 if reflect else 1.0
    angles, _ = principal_angles(R, reflection=reflect)
    left = float(cc.aa.sum() + cc.bb.sum() - 2.0 * torch.sum(R * M))
    k = cc.M.shape[0]
    ho_left = heldout_left(cc.M, cc.aa, cc.bb, r, reflect) if k > 1 else left
    resid = None
    if residuals or exact:
        base2, left2, ho2, resid = _second_pass(prep, R, cc, r, reflect, chunk_size, exact)
        if exact:
            base, left, ho_left = base2, left2, ho2 if k > 1 else left2
    explained = 1.0 if base == 0.0 else 1.0 - left / base
    heldout = 1.0 if base == 0.0 else 1.0 - ho_left / base
    null = jitter_null(s, cc.n, base, r, seed) if not center and base > 0 else 0.0
    rigidity = (heldout - null) / (1.0 - null) if null < 1.0 else 0.0
    warns = []
    if n < MIN_ITEMS_PER_DIM * r:
        warns.append(f"only {n} probe items for a rotation determined in {r} dimensions: the "
                     f"fit explains noise in sample; judge it by explained_heldout and "
                     f"rigidity, and use at least {MIN_ITEMS_PER_DIM * r} items")
    if r < d:
        warns.append(f"the probe determines {r} of {d} dimensions; the rotation is reported "
                     "there only (the identity elsewhere)")
    return ProcrustesResult(
        rotation=R.numpy(), det=det, reflection=reflect, rank=r, angles_deg=angles,
        explained=float(explained), explained_heldout=float(heldout), null_heldout=float(null),
        rigidity=float(rigidity), folds=k, n=n,
        residual_angles_deg=None if resid is None or not residuals else resid,
        centered=center, warnings=tuple(warns))


def _second_pass(prep, R, cc, r, reflect, chunk_size, exact):
    """Per-sample residual angles; with ``exact`` also ``||A - B||^2``, ``||A R - B||^2`` and
    the held-out residual from row differences (no cancellation for tiny changes)."""
    a = prep[0]
    n = a.shape[0]
    k = cc.M.shape[0]
    dev, dt = a.device, a.dtype
    Rt = R.T.contiguous().to(device=dev, dtype=dt).T  # x @ R is faster with this layout
    fold_R = ([m.T.contiguous().to(device=dev, dtype=dt).T
               for m in fold_rotations(cc.M, r, reflect)] if exact and k > 1 else None)
    resid = torch.empty(n, dtype=dt, device=dev)
    base = left = ho = 0.0
    block = block_size(n, k)
    for i, s in enumerate(range(0, n, block)):
        e = min(s + block, n)
        ac, bc = rows(*prep, s, e)
        ar = ac @ Rt
        if exact:
            base += float((torch.linalg.vector_norm(ac - bc, dim=1).double() ** 2).sum())
            left += float((torch.linalg.vector_norm(ar - bc, dim=1).double() ** 2).sum())
            if fold_R is not None:
                diff = ac @ fold_R[i % k] - bc
                ho += float((torch.linalg.vector_norm(diff, dim=1).double() ** 2).sum())
        if prep[5] is not None:  # centred rows are not unit: compare directions
            ar, bc = normalize(ar), normalize(bc)
        d_ = torch.linalg.vector_norm(ar - bc, dim=1)
        sm = torch.linalg.vector_norm(ar + bc, dim=1)
        resid[s:e] = torch.rad2deg(2.0 * torch.atan2(d_, sm))
    return base, left, ho, to_numpy(resid).astype(np.float64)
