"""Orthogonal Procrustes between two checkpoints' embeddings, and principal rotation angles."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .checks import checked_with_norms, common, normalize, same_shape, to_numpy
from .summary import Summary, jsonable


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
        raise ValueError(f"R must be a square matrix, got shape {tuple(R.shape)}")
    if reflection is None:
        reflection = bool(torch.linalg.det(R) < 0)
    # torch's LAPACK throughout: mixing numpy's BLAS threads with torch's slows both down
    cos, Q = torch.linalg.eigh((R + R.T) / 2.0)
    sin = torch.linalg.vector_norm(((R - R.T) / 2.0) @ Q, dim=0)
    phi = np.sort(np.degrees(torch.atan2(sin, cos).cpu().numpy()))[::-1]  # descending
    if reflection:
        phi = phi[1:]  # the axis with eigenvalue -1 (angle 180, sine 0) is the reflection
    m = phi.size // 2
    # each plane appears twice after sorting: average the two
    return (phi[0 : 2 * m : 2] + phi[1 : 2 * m : 2]) / 2.0, reflection


@dataclasses.dataclass(frozen=True)
class ProcrustesResult:
    """Orthogonal Procrustes fit ``R* = argmin_{R in O(D)} ||A R - B||_F`` and what it explains.

    ``angles_deg``: principal rotation angles of ``R*`` (descending, one per plane);
    ``explained``: ``1 - ||A R* - B||^2 / ||A - B||^2`` (1 when B is exactly a rotation of A);
    ``residual_angles_deg``: per-sample ``angle(A_i R*, B_i)``, what the rotation leaves.
    """

    rotation: np.ndarray
    det: float
    reflection: bool
    angles_deg: np.ndarray
    explained: float
    residual_angles_deg: np.ndarray
    centered: bool

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
        return jsonable(
            {
                "det": self.det,
                "reflection": self.reflection,
                "centered": self.centered,
                "angles_deg": self.angles_deg,
                "max_angle": self.max_angle,
                "mean_angle": self.mean_angle,
                "rms_angle": self.rms_angle,
                "geodesic_deg": self.geodesic_deg,
                "explained": self.explained,
                "residual": Summary.of(self.residual_angles_deg).to_dict(),
            }
        )


def procrustes(A, B, center: bool = False, chunk_size: int = 8192) -> ProcrustesResult:
    """Fit the orthogonal map that best takes A onto B (rows L2-normalised first).

    ``R* = U V^T`` with ``U S V^T = svd(A^T B)``; the D x D work (SVD, angles) is done in
    float64 whatever the input dtype. ``center=True`` subtracts each space's mean first (off by
    default: CLIP embeddings live on the sphere); residual angles are then between the centred
    rows. A reflection (``det = -1``) is reported in ``reflection`` and left out of the angles.
    Two passes over row chunks of ``chunk_size``: no copy of A or B is made.
    """
    a, na = checked_with_norms(A, "A")
    b, nb = checked_with_norms(B, "B")
    same_shape(a, b, "A", "B")
    a, b = common(a, b)
    n = a.shape[0]
    ia = 1.0 / na.to(device=a.device, dtype=a.dtype)
    ib = 1.0 / nb.to(device=a.device, dtype=a.dtype)
    ma = mb = None
    if center:
        ma = (a * ia).mean(0, keepdim=True)
        mb = (b * ib).mean(0, keepdim=True)

    def rows(s: int, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        ac, bc = a[s:e] * ia[s:e], b[s:e] * ib[s:e]
        if center:
            ac.sub_(ma)
            bc.sub_(mb)
        return ac, bc

    # rows already unit to within rounding (CLIP embeddings are usually stored normalised):
    # skip the scaled copies, which cost as much as a third of the whole fit
    tol = 8 * torch.finfo(a.dtype).eps
    unit = not center and bool(((na - 1).abs().max() <= tol) & ((nb - 1).abs().max() <= tol))
    M = torch.zeros(a.shape[1], a.shape[1], dtype=a.dtype, device=a.device)
    for s in range(0, n, chunk_size):
        if center:
            ac, bc = rows(s, s + chunk_size)
            M.addmm_(ac.T, bc)
        elif unit:
            M.addmm_(a[s : s + chunk_size].T, b[s : s + chunk_size])
        else:  # one scaled copy per chunk: diag(1/|a|) diag(1/|b|) folded into A
            M.addmm_((a[s : s + chunk_size] * (ia[s : s + chunk_size] * ib[s : s + chunk_size])).T,
                     b[s : s + chunk_size])
    U, _, Vt = torch.linalg.svd(M.double().cpu())
    R64 = U @ Vt
    det = float(torch.linalg.det(R64))
    angles, reflection = principal_angles(R64, reflection=det < 0)
    R = R64.numpy()

    # R stored transposed: the x @ R product is markedly faster with this layout on CPU BLAS
    Rt = R64.T.contiguous().to(device=a.device, dtype=a.dtype).T
    resid = torch.empty(n, dtype=a.dtype, device=a.device)
    left = base = 0.0
    cos_base = []
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        if center:  # centred rows are not unit: fit on them, compare directions
            ac, bc = rows(s, e)
            left += float((torch.linalg.vector_norm(ac @ Rt - bc, dim=1).double() ** 2).sum())
            base += float((torch.linalg.vector_norm(ac - bc, dim=1).double() ** 2).sum())
            ar, bc = normalize(ac @ Rt), normalize(bc)
        else:
            bc = b[s:e] if unit else b[s:e] * ib[s:e]
            ar = a[s:e] @ Rt if unit else (a[s:e] @ Rt).mul_(ia[s:e])  # (A_i / |A_i|) R
            # |a - b|^2 = 2 - 2 cos for unit rows; exact differences are taken below when the
            # change is so small that this would lose digits
            cos_base.append((a[s:e] * b[s:e]).sum(1) * (ia[s:e, 0] * ib[s:e, 0]))
        d = torch.linalg.vector_norm(ar.sub_(bc), dim=1)
        sm = torch.linalg.vector_norm(ar.add_(bc, alpha=2.0), dim=1)
        resid[s:e] = torch.rad2deg(2.0 * torch.atan2(d, sm))
        if not center:
            left += float((d.double() ** 2).sum())
    if not center:
        base = float((2.0 - 2.0 * torch.cat(cos_base).double()).clamp_(min=0).sum())
        if base < 1e-3 * n:  # mean angle under ~2 degrees: use exact differences
            base = 0.0
            for s in range(0, n, chunk_size):
                e = min(s + chunk_size, n)
                diff = a[s:e] * ia[s:e] - b[s:e] * ib[s:e]
                base += float((torch.linalg.vector_norm(diff, dim=1).double() ** 2).sum())
    explained = 1.0 if base == 0.0 else 1.0 - left / base
    return ProcrustesResult(
        rotation=R,
        det=det,
        reflection=reflection,
        angles_deg=angles,
        explained=float(explained),
        residual_angles_deg=to_numpy(resid).astype(np.float64),
        centered=center,
    )
