"""Intra-modal rotation: per-sample angles (RAD), self-angle drift (SAM), orthogonal Procrustes.

Every function L2-normalises its inputs row by row: pass raw or normalised embeddings alike.
``A`` and ``B`` are the same N samples of one modality under checkpoints a and b, shape (N, D),
as numpy arrays or torch tensors on any device; the heavy work runs on ``A``'s device.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ._checks import (
    as_embeddings,
    checked_with_norms,
    common,
    normalize,
    same_shape,
    stable_angle_deg,
    to_numpy,
)
from .results import DEFAULT_QUANTILES, Summary, jsonable

SAM_EDGES = tuple(float(x) for x in [*range(0, 21), 25, 30, 45, 60, 90, 180])
_FINE_BINS = 18000  # SAM drift histogram resolution: 0.01 degree over [0, 180]


def _pair(A, B, name_a="A", name_b="B") -> tuple[torch.Tensor, torch.Tensor]:
    a = as_embeddings(A, name_a)
    b = as_embeddings(B, name_b)
    same_shape(a, b, name_a, name_b)
    return common(a, b)


# --------------------------------------------------------------------------- per-sample angles


def sample_angles(A, B) -> np.ndarray:
    """Per-sample rotation angle ``angle(A_i, B_i)`` in degrees, shape (N,).

    Rows are L2-normalised first. Uses ``2 atan2(|a-b|, |a+b|)``, accurate near 0 and 180
    degrees (no NaN at cosine +-1). This is the paper's Rotation Angle Distribution (RAD).
    """
    a, b = _pair(A, B)
    return to_numpy(stable_angle_deg(normalize(a), normalize(b))).astype(np.float64)


def rad(A, B, bin_edges=None) -> Summary:
    """Summary of :func:`sample_angles`: histogram (15-degree bins by default), mean, quantiles."""
    kw = {} if bin_edges is None else {"bin_edges": bin_edges}
    return Summary.of(sample_angles(A, B), **kw)


# --------------------------------------------------------------------------- self-angle drift


@dataclasses.dataclass(frozen=True)
class SamDriftResult:
    """Distribution of ``|angle(A_i, A_j) - angle(B_i, B_j)|`` over pairs i < j, in degrees.

    ``exact`` is True when every pair was used. Otherwise the numbers are estimates from
    ``n_pairs`` pairs drawn uniformly (with replacement) and ``stderr`` is the standard error
    of ``mean``. For the exact computation quantiles come from a 0.01-degree histogram.
    """

    n_samples: int
    n_pairs: int
    exact: bool
    mean: float
    std: float
    stderr: float
    median: float
    max: float
    quantiles: dict[float, float]
    bin_edges: tuple[float, ...]
    histogram: tuple[int, ...]

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


def _drift_block(ga: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
    """In place: cosines of two Gram blocks -> absolute angle difference in degrees (in ``ga``)."""
    ga.clamp_(-1.0, 1.0).acos_()
    gb.clamp_(-1.0, 1.0).acos_()
    return ga.sub_(gb).abs_().mul_(180.0 / math.pi)


class _DriftAccumulator:
    def __init__(self, device):
        self.fine = torch.zeros(_FINE_BINS, dtype=torch.float64, device=device)
        self.total = 0.0
        self.total_sq = 0.0
        self.count = 0
        self.max = 0.0

    def add(self, d: torch.Tensor) -> None:
        if d.numel() == 0:
            return
        self.count += d.numel()
        # row sums in the input dtype (pairwise summation), accumulated in float64
        rows = d if d.ndim == 2 else d[None, :]
        self.total += float(rows.sum(1).double().sum())
        self.total_sq += float((torch.linalg.vector_norm(rows, dim=1).double() ** 2).sum())
        self.max = max(self.max, float(d.max()))
        self.fine += torch.histc(d, bins=_FINE_BINS, min=0.0, max=180.0).to(torch.float64)

    def result(self, n_samples: int, bin_edges, quantiles) -> SamDriftResult:
        fine = self.fine.cpu().numpy()
        width = 180.0 / _FINE_BINS
        cdf = np.cumsum(fine)
        n = self.count
        mean = self.total / n
        var = max(self.total_sq / n - mean * mean, 0.0) * n / max(n - 1, 1)

        def q(p: float) -> float:
            # interpolate inside the fine bin that holds the p-quantile
            target = p * n
            k = int(np.searchsorted(cdf, target, side="left"))
            k = min(k, _FINE_BINS - 1)
            before = cdf[k - 1] if k else 0.0
            frac = (target - before) / fine[k] if fine[k] else 0.0
            return min((k + frac) * width, self.max)

        centres = (np.arange(_FINE_BINS) + 0.5) * width
        edges = np.asarray(bin_edges, dtype=np.float64)
        idx = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, len(edges) - 2)
        hist = np.bincount(idx, weights=fine, minlength=len(edges) - 1)
        return SamDriftResult(
            n_samples=n_samples,
            n_pairs=n,
            exact=True,
            mean=mean,
            std=math.sqrt(var),
            stderr=0.0,
            median=q(0.5),
            max=self.max,
            quantiles={float(p): q(p) for p in quantiles},
            bin_edges=tuple(float(e) for e in edges),
            histogram=tuple(int(round(h)) for h in hist),
        )


def sam_drift(
    A,
    B,
    chunk_size: int = 4096,
    max_pairs: int | None = None,
    seed: int = 0,
    bin_edges=SAM_EDGES,
    quantiles=DEFAULT_QUANTILES,
    progress: bool = False,
) -> SamDriftResult:
    """Self-angle matrix drift ``|S^a_ij - S^b_ij|`` over pairs i < j (the paper's SAM), degrees.

    Rows are L2-normalised first. Exact by default: the Gram matrices are computed in row
    chunks of ``chunk_size`` rows (only the pairs i < j, so half of each product), so memory is
    about ``2 * chunk_size * N`` values; no N x N matrix is ever held. With ``max_pairs`` set and
    smaller than N(N-1)/2, the distribution is estimated from ``max_pairs`` uniformly sampled
    pairs (``exact=False``, with the standard error of the mean); memory is then O(N + max_pairs)
    and the inputs are never copied whole.

    A rigid rotation of B leaves the drift at zero; the paper's picture of rotation is a large
    :func:`sample_angles` with a small drift.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    a, b = _pair(A, B)
    n = a.shape[0]
    total_pairs = n * (n - 1) // 2
    if max_pairs is not None:
        if max_pairs < 2:
            raise ValueError(f"max_pairs must be at least 2, got {max_pairs}")
        if max_pairs < total_pairs:
            return _sam_drift_sampled(a, b, int(max_pairs), seed, bin_edges, quantiles)
    a = normalize(a)
    b = normalize(b)
    acc = _DriftAccumulator(a.device)
    starts = range(0, n, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="SAM drift", unit="chunk")
    for s in starts:
        e = min(s + chunk_size, n)
        ai, bi = a[s:e], b[s:e]
        # diagonal block: pairs inside the chunk, strictly upper triangle
        iu = torch.triu_indices(e - s, e - s, offset=1, device=a.device)
        acc.add(_drift_block((ai @ ai.T)[iu[0], iu[1]], (bi @ bi.T)[iu[0], iu[1]]))
        if e < n:  # every pair (i in chunk, j after the chunk)
            acc.add(_drift_block(ai @ a[e:].T, bi @ b[e:].T))
    return acc.result(n, bin_edges, quantiles)


def _sam_drift_sampled(a, b, max_pairs, seed, bin_edges, quantiles) -> SamDriftResult:
    n = a.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    inv_a = 1.0 / torch.linalg.vector_norm(a, dim=1)
    inv_b = 1.0 / torch.linalg.vector_norm(b, dim=1)
    out = torch.empty(max_pairs, dtype=a.dtype)
    batch = 1 << 17
    done = 0
    while done < max_pairs:
        m = min(batch, max_pairs - done)
        i = torch.randint(0, n, (2 * m,), generator=gen)
        j = torch.randint(0, n, (2 * m,), generator=gen)
        keep = i != j  # uniform over unordered pairs i != j (ordered draw, then drop i == j)
        i, j = i[keep][:m], j[keep][:m]
        k = i.numel()
        i, j = i.to(a.device), j.to(a.device)
        ca = (a[i] * a[j]).sum(1) * inv_a[i] * inv_a[j]
        cb = (b[i] * b[j]).sum(1) * inv_b[i] * inv_b[j]
        out[done : done + k] = _drift_block(ca, cb).cpu()
        done += k
    s = Summary.of(out.numpy(), bin_edges=bin_edges, quantiles=quantiles, thresholds=())
    return SamDriftResult(
        n_samples=n,
        n_pairs=max_pairs,
        exact=False,
        mean=s.mean,
        std=s.std,
        stderr=s.std / math.sqrt(max_pairs),
        median=s.median,
        max=s.max,
        quantiles=s.quantiles,
        bin_edges=s.bin_edges,
        histogram=s.histogram,
    )


# --------------------------------------------------------------------------- Procrustes


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
