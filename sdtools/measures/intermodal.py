"""Inter-modal deviation: do the image and text spaces move in step between two checkpoints?

Inputs: image embeddings ``V_a, V_b`` (n_images, D) and caption embeddings ``T_a, T_b``
(n_texts, D) of one probe set under checkpoints a and b, and ``image_of_text`` (n_texts,).
Rows are L2-normalised first.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from ..errors import InputError
from .checks import (
    PRECISION_EPS,
    Array,
    as_embeddings,
    check_image_of_text,
    coarsest,
    normalize,
    same_shape,
    stable_angle_deg,
    to_numpy,
    value_precision,
)
from .crossnull import CrossNull
from .relative import relative_rotation
from .retrieval import ranks
from .summary import Summary, jsonable, mean_interval

PRECISION_FACTOR = 2.0  # as procrustes: a change under 2 machine epsilons of the format is rounding
SHIFT_EDGES = tuple(float(x) for x in np.linspace(-1.0, 1.0, 21))
UNSYNC_EDGES = tuple(float(x) for x in range(-90, 91, 10))

# what relative_rotation returns: angles, reflection, rank, both cross residuals, their null


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
      ``to_dict()`` gives each angle beside its null: what the relative rotation reads when
      both modalities turn in step at this probe's sizes and noise (from the same halvings
      as the cross residual's null; ``null_angles_deg``, ``null_high_deg``, ``above_null``).
      A turn out of one modality's span (a direction only captions cover) is outside the
      shared subspace: the relative rotation cannot see it; the cross-applied residual does.
    - ``cross_text`` / ``cross_image``: the cross-applied residual, how much more of the
      change of the captions (images) is left when they are moved by the images' (captions')
      rotation instead of their own, as a share of that change: 0 in step, large out of step.
      None when no direction is determined by both fits. ``cross_null``: what it reads when
      both modalities turn in step at this probe's sizes and noise (see :func:`cross_null`);
      only a residual above the null's range (by more than the null's ``tolerance``, the
      rounding of the shares) says "out of step". All three are withheld (None, with
      ``cross_withheld`` saying why) when either modality's change is below the precision floor
      of the inputs' float format (as ``procrustes`` withholds rigidity): rounding has no step.
    - ``t2i_rank_a/b`` per caption, ``i2t_rank_a/b`` per image; top-1 hits lost and gained.
    - ``gap_a`` / ``gap_b``: modality gap ``||mean(V) - mean(T)||``.

    ``to_dict()`` gives the means of ``pos_shift`` and ``|unsync|`` with 95% bootstrap
    intervals (``mean_ci``, ``unsync_abs_mean_ci``) that resample images with all their
    captions (captions of one image share its change).

    See Also
    --------
    deviation : The measure that returns it.
    deviation_report : The same from two :class:`Embeddings`.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> V = rng.standard_normal((100, 8)); iot = np.repeat(np.arange(100), 2)
    >>> T = V[iot] + 0.3 * rng.standard_normal((200, 8))
    >>> d = sdtools.deviation(V, T, V, T, iot)
    >>> float(np.abs(d.pos_sim_b - d.pos_sim_a).max()), d.to_dict()["top1"]["t2i"]["lost"]
    (0.0, 0)
    """

    pos_sim_a: np.ndarray
    pos_sim_b: np.ndarray
    image_angles: np.ndarray
    text_angles: np.ndarray
    relative_angles_deg: np.ndarray
    relative_reflection: bool
    relative_rank: int
    cross_text: float | None
    cross_image: float | None
    t2i_rank_a: np.ndarray
    t2i_rank_b: np.ndarray
    i2t_rank_a: np.ndarray
    i2t_rank_b: np.ndarray
    gap_a: float
    gap_b: float
    cross_null: CrossNull | None = None
    image_of_text: np.ndarray | None = None
    cross_withheld: str | None = None

    @property
    def pos_shift(self) -> np.ndarray:
        shift: np.ndarray = self.pos_sim_b - self.pos_sim_a
        return shift

    @property
    def unsync(self) -> np.ndarray:
        unsync: np.ndarray = self.image_angles - self.text_angles
        return unsync

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

    def _cross_dict(self) -> dict[str, Any]:
        # both directions, or the one left when the other modality's change was rounding
        both: tuple[tuple[float | None, Literal["text_by_image", "image_by_text"]], ...] = (
            (self.cross_text, "text_by_image"), (self.cross_image, "image_by_text"))
        given = [(v, key) for v, key in both if v is not None]
        mean = sum(v for v, _ in given) / len(given) if given else None
        out: dict[str, Any] = {"text_by_image": self.cross_text,
                               "image_by_text": self.cross_image, "mean": mean,
                               "null": self.cross_null}
        if self.cross_withheld:
            out["withheld"] = self.cross_withheld
        if mean is not None and self.cross_null is not None:
            ref = self.cross_null["mean" if len(given) == 2 else given[0][1]]
            out["excess"] = mean - ref["value"]
            out["above_null"] = bool(mean > ref["high"] + self.cross_null.get("tolerance", 0.0))
        return out

    def _relative_null(self, rel: np.ndarray) -> dict[str, Any]:
        """Each relative angle beside what it reads when both modalities turn in step (the
        null's mean and range over halvings, per angle) and whether it is above that range."""
        null = None if self.cross_null is None else self.cross_null.get("relative_angles")
        if null is None or not rel.size:
            return {}
        m = min(rel.size, len(null["high"]))
        high = np.asarray(null["high"])[:m]
        return {"null_angles_deg": np.asarray(null["value"])[:m], "null_high_deg": high,
                "above_null": rel[:m] > high, "max_above_null": bool(rel[0] > high[0])}

    def to_dict(self) -> dict[str, Any]:
        rel = self.relative_angles_deg
        return jsonable(
            {
                "pos_shift": Summary.of(self.pos_shift, bin_edges=SHIFT_EDGES,
                                        thresholds=(), ci=True,
                                        clusters=self.image_of_text).to_dict(),
                "pos_sim_a_mean": float(self.pos_sim_a.mean()),
                "pos_sim_b_mean": float(self.pos_sim_b.mean()),
                "unsync": Summary.of(self.unsync, bin_edges=UNSYNC_EDGES, thresholds=()).to_dict(),
                "unsync_abs_mean": float(np.abs(self.unsync).mean()),
                "unsync_abs_mean_ci": mean_interval(np.abs(self.unsync),
                                                    clusters=self.image_of_text),
                "relative_rotation": {
                    "angles_deg": rel,
                    "max_angle": float(rel.max()) if rel.size else 0.0,
                    "mean_angle": float(rel.mean()) if rel.size else 0.0,
                    "geodesic_deg": float(np.sqrt(np.sum(rel**2))),
                    "reflection": self.relative_reflection,
                    "rank": self.relative_rank,
                    **self._relative_null(rel),
                },
                "cross_residual": self._cross_dict(),
                "t2i_mean_rank_a": float(self.t2i_rank_a.mean()),
                "t2i_mean_rank_b": float(self.t2i_rank_b.mean()),
                "rank_shift_t2i_mean": float((self.t2i_rank_b - self.t2i_rank_a).mean()),
                "rank_shift_i2t_mean": float((self.i2t_rank_b - self.i2t_rank_a).mean()),
                "top1": self.top1_changes(),
                "modality_gap_a": self.gap_a,
                "modality_gap_b": self.gap_b,
            }
        )


def deviation(V_a: Array, T_a: Array, V_b: Array, T_b: Array,
              image_of_text: npt.ArrayLike | torch.Tensor,
              chunk_size: int = 2048) -> DeviationResult:
    """Positive-pair similarity shift, unsynchronised rotation, rank shift and modality gap.

    Parameters
    ----------
    V_a : array (n_images, D)
        Image embeddings under checkpoint a.
    T_a : array (n_texts, D)
        Caption embeddings under checkpoint a.
    V_b : array (n_images, D)
        Image embeddings under checkpoint b (the same images, in the same order).
    T_b : array (n_texts, D)
        Caption embeddings under checkpoint b.
    image_of_text : array (n_texts,) of int
        Index of each caption's image.
    chunk_size : int
        Rows per block of the rank computation.

    Returns
    -------
    DeviationResult
        Per-caption arrays and whole-space summaries (``to_dict()`` for JSON).

    Raises
    ------
    InputError
        An embedding matrix is not a real float 2-D array or tensor, or holds a NaN, Inf or
        all-zero row; ``V_a`` and ``V_b`` (or ``T_a`` and ``T_b``) differ in shape; images
        and captions differ in dimension; fewer than 2 images; ``image_of_text`` is not a
        1-D integer array with one index in ``[0, n_images)`` per caption, or leaves an
        image without a caption; or a tensor is on the meta device.

    See Also
    --------
    DeviationResult : The result's fields.
    deviation_report : The same from two :class:`Embeddings` of one probe.
    sample_angles : The per-sample angles compared across modalities here.
    retrieval : Recall@K and ranks under one checkpoint.

    References
    ----------
    1. Z. Ni, L. Wei, S. Tang, Y. Zhuang, Q. Tian. Continual Vision-Language Representation
       Learning with Off-Diagonal Information. ICML 2023, PMLR 202:26129-26149
       (arXiv:2305.07437).
    2. W. Liang, Y. Zhang, Y. Kwon, S. Yeung, J. Zou. Mind the Gap: Understanding the
       Modality Gap in Multi-modal Contrastive Representation Learning. NeurIPS 2022
       (the modality gap).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> V = rng.standard_normal((300, 8)); iot = np.repeat(np.arange(300), 2)
    >>> T = V[iot] + 0.3 * rng.standard_normal((600, 8))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> d = sdtools.deviation(V, T, V @ Q, T @ Q, iot)  # both turned by one rotation
    >>> bool(np.abs(d.image_angles - d.text_angles).mean() < 30), d.relative_rank
    (True, 8)
    >>> round(float(d.relative_angles_deg.max()), 3)
    0.0
    """
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
    fmt = coarsest(*(value_precision(x) for x in (V_a, V_b, T_a, T_b)))
    floor = PRECISION_FACTOR * PRECISION_EPS[fmt]  # radians, as procrustes
    dtype = torch.promote_types(torch.promote_types(va.dtype, vb.dtype),
                                torch.promote_types(ta.dtype, tb.dtype))
    dev = va.device
    va, vb, ta, tb = (normalize(x.to(device=dev, dtype=dtype)) for x in (va, vb, ta, tb))
    iot = check_image_of_text(image_of_text, va.shape[0], ta.shape[0], dev)

    pos_a = (va[iot] * ta).sum(1)
    pos_b = (vb[iot] * tb).sum(1)
    img_ang = stable_angle_deg(va, vb)[iot]
    txt_ang = stable_angle_deg(ta, tb)

    rel, refl, rel_rank, cross_t, cross_i, null = relative_rotation(va, vb, ta, tb, iot)
    withheld = None
    still = [float(torch.sqrt(((x - y) ** 2).sum(1).mean())) < floor
             for x, y in ((va, vb), (ta, tb))]
    if cross_t is not None and any(still):
        # a share of a change below the precision floor is a share of rounding: withheld; the
        # other direction (the moving modality against the still one's map) still reads
        which = "images and captions" if all(still) else "images" if still[0] else "captions"
        withheld = (f"the {which} moved less than the resolution of the inputs' precision "
                    f"({fmt}: RMS angle under {math.degrees(floor):.2g} degrees): rounding, "
                    "not a step to compare")
        cross_i = None if still[0] else cross_i
        cross_t = None if still[1] else cross_t
        if all(still):
            null = None

    i2t_a, t2i_a = ranks(va, ta, iot, chunk_size=chunk_size)
    i2t_b, t2i_b = ranks(vb, tb, iot, chunk_size=chunk_size)
    gap_a = float(torch.linalg.vector_norm(va.mean(0) - ta.mean(0)))
    gap_b = float(torch.linalg.vector_norm(vb.mean(0) - tb.mean(0)))

    def f64(x: torch.Tensor) -> np.ndarray:
        return to_numpy(x).astype(np.float64)

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
        cross_null=null,
        cross_withheld=withheld,
        image_of_text=to_numpy(iot),
        t2i_rank_a=to_numpy(t2i_a),
        t2i_rank_b=to_numpy(t2i_b),
        i2t_rank_a=to_numpy(i2t_a),
        i2t_rank_b=to_numpy(i2t_b),
        gap_a=gap_a,
        gap_b=gap_b,
    )
