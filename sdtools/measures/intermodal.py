"""Inter-modal deviation: do the image and text spaces move in step between two checkpoints?

Inputs: image embeddings ``V_a, V_b`` (n_images, D) and caption embeddings ``T_a, T_b``
(n_texts, D) of one probe set under checkpoints a and b, and ``image_of_text`` (n_texts,).
Rows are L2-normalised first.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..errors import InputError
from .checks import (
    as_embeddings,
    check_image_of_text,
    normalize,
    same_shape,
    stable_angle_deg,
    to_numpy,
)
from .crosscov import cross_covariance, prepare
from .retrieval import ranks
from .rotations import effective_rank, fit_rotation, principal_angles, reflection_significant
from .summary import Summary, jsonable, mean_interval

SHIFT_EDGES = tuple(float(x) for x in np.linspace(-1.0, 1.0, 21))
UNSYNC_EDGES = tuple(float(x) for x in range(-90, 91, 10))


@dataclasses.dataclass(frozen=True)
class DeviationResult:
    """Per-caption arrays (length n_texts) and whole-space summaries.

    - ``pos_sim_a`` / ``pos_sim_b``: cosine of each caption with its image under a and b;
      ``pos_shift = pos_sim_b - pos_sim_a``.
    - ``image_angles`` (per caption's image) and ``text_angles``: per-sample rotation angles;
      ``unsync = image_angles - text_angles`` (0 when a pair rotated in step).
    - ``relative_angles_deg``: principal angles of ``R_V^T R_T`` in the subspace where the
      probe determines both fits (``relative_rank`` dimensions; see
      :func:`relative_rotation`): 0 when both modalities rotate by the same map, near 0 for a
      shared rotation with independent jitter.
    - ``cross_text`` / ``cross_image``: the cross-applied residual, how much more of the
      change of the captions (images) is left when they are moved by the images' (captions')
      rotation instead of their own, as a share of that change: 0 in step, large out of step.
      Unlike the per-pair ``unsync`` it has no floor under a shared rotation.
    - ``t2i_rank_a/b`` per caption, ``i2t_rank_a/b`` per image; top-1 hits lost and gained.
    - ``gap_a`` / ``gap_b``: modality gap ``||mean(V) - mean(T)||``.

    ``to_dict()`` gives the means of ``pos_shift`` and ``|unsync|`` with 95% bootstrap
    intervals over captions (``mean_ci``, ``unsync_abs_mean_ci``).
    """

    pos_sim_a: np.ndarray
    pos_sim_b: np.ndarray
    image_angles: np.ndarray
    text_angles: np.ndarray
    relative_angles_deg: np.ndarray
    relative_reflection: bool
    relative_rank: int
    cross_text: float
    cross_image: float
    t2i_rank_a: np.ndarray
    t2i_rank_b: np.ndarray
    i2t_rank_a: np.ndarray
    i2t_rank_b: np.ndarray
    gap_a: float
    gap_b: float

    @property
    def pos_shift(self) -> np.ndarray:
        return self.pos_sim_b - self.pos_sim_a

    @property
    def unsync(self) -> np.ndarray:
        return self.image_angles - self.text_angles

    def top1_changes(self) -> dict[str, dict[str, int]]:
        out = {}
        for name, ra, rb in (
            ("t2i", self.t2i_rank_a, self.t2i_rank_b),
            ("i2t", self.i2t_rank_a, self.i2t_rank_b),
        ):
            out[name] = {
                "lost": int(np.sum((ra == 1) & (rb != 1))),
                "gained": int(np.sum((ra != 1) & (rb == 1))),
                "kept": int(np.sum((ra == 1) & (rb == 1))),
                "queries": int(ra.size),
            }
        return out

    def to_dict(self) -> dict:
        rel = self.relative_angles_deg
        return jsonable(
            {
                "pos_shift": Summary.of(self.pos_shift, bin_edges=SHIFT_EDGES,
                                        thresholds=(), ci=True).to_dict(),
                "pos_sim_a_mean": float(self.pos_sim_a.mean()),
                "pos_sim_b_mean": float(self.pos_sim_b.mean()),
                "unsync": Summary.of(self.unsync, bin_edges=UNSYNC_EDGES, thresholds=()).to_dict(),
                "unsync_abs_mean": float(np.abs(self.unsync).mean()),
                "unsync_abs_mean_ci": mean_interval(np.abs(self.unsync)),
                "relative_rotation": {
                    "angles_deg": rel,
                    "max_angle": float(rel.max()) if rel.size else 0.0,
                    "mean_angle": float(rel.mean()) if rel.size else 0.0,
                    "geodesic_deg": float(np.sqrt(np.sum(rel**2))),
                    "reflection": self.relative_reflection,
                    "rank": self.relative_rank,
                },
                "cross_residual": {"text_by_image": self.cross_text,
                                   "image_by_text": self.cross_image,
                                   "mean": (self.cross_text + self.cross_image) / 2.0},
                "t2i_mean_rank_a": float(self.t2i_rank_a.mean()),
                "t2i_mean_rank_b": float(self.t2i_rank_b.mean()),
                "rank_shift_t2i_mean": float((self.t2i_rank_b - self.t2i_rank_a).mean()),
                "rank_shift_i2t_mean": float((self.i2t_rank_b - self.i2t_rank_a).mean()),
                "top1": self.top1_changes(),
                "modality_gap_a": self.gap_a,
                "modality_gap_b": self.gap_b,
            }
        )


def deviation(V_a, T_a, V_b, T_b, image_of_text, chunk_size: int = 2048) -> DeviationResult:
    """Positive-pair similarity shift, unsynchronised rotation, rank shift and modality gap."""
    va = as_embeddings(V_a, "V_a")
    vb = as_embeddings(V_b, "V_b")
    ta = as_embeddings(T_a, "T_a", min_rows=1)
    tb = as_embeddings(T_b, "T_b", min_rows=1)
    same_shape(va, vb, "V_a", "V_b")
    same_shape(ta, tb, "T_a", "T_b")
    if va.shape[1] != ta.shape[1]:
        raise InputError(
            f"V_a has dimension {va.shape[1]} but T_a has {ta.shape[1]}; image and text "
            "embeddings must share one space"
        )
    dtype = torch.promote_types(torch.promote_types(va.dtype, vb.dtype),
                                torch.promote_types(ta.dtype, tb.dtype))
    dev = va.device
    va, vb, ta, tb = (normalize(x.to(device=dev, dtype=dtype)) for x in (va, vb, ta, tb))
    iot = check_image_of_text(image_of_text, va.shape[0], ta.shape[0], dev)

    pos_a = (va[iot] * ta).sum(1)
    pos_b = (vb[iot] * tb).sum(1)
    img_ang = stable_angle_deg(va, vb)[iot]
    txt_ang = stable_angle_deg(ta, tb)

    rel, refl, rel_rank, cross_t, cross_i = relative_rotation(va, vb, ta, tb)

    i2t_a, t2i_a = ranks(va, ta, iot, chunk_size=chunk_size)
    i2t_b, t2i_b = ranks(vb, tb, iot, chunk_size=chunk_size)
    gap_a = float(torch.linalg.vector_norm(va.mean(0) - ta.mean(0)))
    gap_b = float(torch.linalg.vector_norm(vb.mean(0) - tb.mean(0)))
    f64 = lambda x: to_numpy(x).astype(np.float64)  # noqa: E731
    return DeviationResult(
        pos_sim_a=f64(pos_a),
        pos_sim_b=f64(pos_b),
        image_angles=f64(img_ang),
        text_angles=f64(txt_ang),
        relative_angles_deg=rel,
        relative_reflection=refl,
        relative_rank=rel_rank,
        cross_text=cross_t,
        cross_image=cross_i,
        t2i_rank_a=to_numpy(t2i_a),
        t2i_rank_b=to_numpy(t2i_b),
        i2t_rank_a=to_numpy(i2t_a),
        i2t_rank_b=to_numpy(i2t_b),
        gap_a=gap_a,
        gap_b=gap_b,
    )


def _fit(a, b, energy: float):
    """The modality's rotation, its cross-covariance and the a-space directions it determines."""
    cc = cross_covariance(prepare(a, b, False), 3)
    M = cc.total
    svd = torch.linalg.svd(M)  # one SVD serves the reflection test, the fit and the subspace
    reflect = reflection_significant(M, cc.base, svd, folds=(cc.M, cc.aa, cc.bb))
    R, _, _ = fit_rotation(M, None, reflect, svd)
    U, sv, _ = svd
    return R, cc, U[:, :effective_rank(sv, energy)]


def _gram(x) -> torch.Tensor:
    return (x.T @ x).double().cpu()


def _cross(R_own, R_mix, cc, G) -> float:
    """(||A R_mix - B||^2 - ||A R_own - B||^2) / ||A - B||^2 from D x D matrices (``G = A^T A``;
    ``R_mix`` need not be orthogonal)."""
    if cc.base <= 0:
        return 0.0
    M = cc.total
    own = float(cc.aa.sum() + cc.bb.sum() - 2.0 * torch.sum(R_own * M))
    mix = float(torch.sum((R_mix.T @ G) * R_mix.T) + cc.bb.sum() - 2.0 * torch.sum(R_mix * M))
    return (mix - own) / cc.base


def relative_rotation(va, vb, ta, tb, energy: float = 0.95, min_cos: float = 0.9):
    """Principal angles of ``R_V^T R_T`` where the probe determines both fits, and the
    cross-applied residuals (see :class:`DeviationResult`).

    Each fit determines the directions holding ``energy`` of its cross-covariance; the
    common subspace ``P`` is spanned by the pairs of those directions closer than
    ``acos(min_cos)``. Moving one modality by the other's rotation is done inside ``P`` only
    (its own rotation elsewhere), so a direction only one modality covers cannot count as
    unsynchronised.
    """
    d = va.shape[1]
    if ta.shape[0] < 2:
        return np.zeros(d // 2), False, 0, 0.0, 0.0
    rv, ccv, uv = _fit(va, vb, energy)
    rt, cct, ut = _fit(ta, tb, energy)
    a, cosines, _ = torch.linalg.svd(uv.T @ ut)
    P = uv @ a[:, : cosines.numel()][:, cosines > min_cos]
    k = P.shape[1]
    if k == 0:
        return np.zeros(0), False, 0, 0.0, 0.0
    U, _, Vt = torch.linalg.svd(P.T @ rv.T @ rt @ P)
    rel, refl = principal_angles(U @ Vt)
    PP = P @ P.T
    eye = torch.eye(d, dtype=PP.dtype)
    text_by_image = _cross(rt, PP @ rv + (eye - PP) @ rt, cct, _gram(ta))
    image_by_text = _cross(rv, PP @ rt + (eye - PP) @ rv, ccv, _gram(va))
    return rel, refl, k, text_by_image, image_by_text
