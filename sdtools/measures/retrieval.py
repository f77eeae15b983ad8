"""Cross-modal retrieval: Recall@K both ways with several captions per image, and ranks.

Semantics follow CLIP_benchmark: image->text is a hit at K when any of the image's captions is
among its K best-scoring captions (averaged over images); text->image is a hit when the
caption's image is among its K best-scoring images (averaged over captions).

Ties are counted against the query: the rank of the true match is 1 + the number of wrong
candidates scoring *at least* as high as it. So a collapsed model whose scores are all equal
gets rank N (chance or worse), never a perfect score. With continuous embeddings ties have
probability zero and the numbers equal CLIP_benchmark's ``recall_at_k``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..errors import InputError
from .checks import Array, as_embeddings, check_image_of_text, normalize, to_numpy
from .summary import Interval, bootstrap_means, cluster_means, jsonable, percentile_ci


@dataclasses.dataclass(frozen=True)
class RetrievalResult:
    """Recalls in percent, ranks 1-based (``i2t_ranks``: per image, ``t2i_ranks``: per caption).

    Attributes
    ----------
    i2t, t2i : dict int -> float
        Recall@K (percent) image->text and text->image.
    i2t_mean_rank, i2t_median_rank, t2i_mean_rank, t2i_median_rank : float
        Ranks of the first correct item (1 = top).
    i2t_ranks : ndarray (n_images,)
        Per image; ``t2i_ranks``: (n_texts,) per caption.
    i2t_ci, t2i_ci, mean_r1_ci : optional
        95% bootstrap intervals (``ci=True``), ``mean_r1_ci`` of the mean R@1 of both ways.

    See Also
    --------
    retrieval : The measure that returns it.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> V = np.eye(3); r = sdtools.retrieval(V, V, np.arange(3))
    >>> r.i2t[1], r.t2i_mean_rank
    (100.0, 1.0)
    """

    i2t: dict[int, float]
    t2i: dict[int, float]
    i2t_mean_rank: float
    i2t_median_rank: float
    t2i_mean_rank: float
    t2i_median_rank: float
    i2t_ranks: np.ndarray
    t2i_ranks: np.ndarray
    i2t_ci: dict[int, Interval] | None = None
    t2i_ci: dict[int, Interval] | None = None
    mean_r1_ci: Interval | None = None  # of the mean of both directions' R@1 (images resampled)

    def __getitem__(self, key: str) -> Any:  # allows result["i2t"][1] as in the API contract
        return getattr(self, key)

    @property
    def mean_r1(self) -> float:
        """Mean of image->text and text->image Recall@1 (percent)."""
        return (self.i2t.get(1, float("nan")) + self.t2i.get(1, float("nan"))) / 2.0

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "i2t": self.i2t,
                "t2i": self.t2i,
                "i2t_mean_rank": self.i2t_mean_rank,
                "i2t_median_rank": self.i2t_median_rank,
                "t2i_mean_rank": self.t2i_mean_rank,
                "t2i_median_rank": self.t2i_median_rank,
                **({"i2t_ci": self.i2t_ci, "t2i_ci": self.t2i_ci, "mean_r1_ci": self.mean_r1_ci}
                   if self.i2t_ci else {}),
            }
        )


def ranks(V: Array, T: Array, image_of_text: npt.ArrayLike | torch.Tensor,
          chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based ranks of the true match: (per image for image->text, per caption for text->image).

    One pass over text chunks: each chunk of the score matrix ``T_c V^T`` (``chunk_size`` x
    n_images) serves both directions, so peak extra memory is one chunk.
    """
    v = as_embeddings(V, "V")
    t = as_embeddings(T, "T", min_rows=1)
    if v.shape[1] != t.shape[1]:
        raise InputError(
            f"V has dimension {v.shape[1]} but T has {t.shape[1]}; image and text embeddings "
            "must share one space"
        )
    dtype = torch.promote_types(v.dtype, t.dtype)
    v = normalize(v.to(dtype))
    t = normalize(t.to(device=v.device, dtype=dtype))
    iot = check_image_of_text(image_of_text, v.shape[0], t.shape[0], v.device)
    n_img, n_txt = v.shape[0], t.shape[0]
    # best positive score of each image over its captions (needed before the pass)
    pos_all = (t * v[iot]).sum(1)
    best = torch.full((n_img,), -torch.inf, dtype=dtype, device=v.device)
    best.scatter_reduce_(0, iot, pos_all, reduce="amax")
    # int32 counts: summing booleans into int32 is about twice as fast as into int64
    above = torch.zeros(n_img, dtype=torch.int32, device=v.device)
    t2i = torch.empty(n_txt, dtype=torch.int32, device=v.device)
    for s in range(0, n_txt, chunk_size):
        e = min(s + chunk_size, n_txt)
        S = t[s:e] @ v.T
        rows = torch.arange(e - s, device=v.device)
        cols = iot[s:e]
        pos = S[rows, cols].clone()
        S[rows, cols] = -torch.inf  # what remains are the wrong candidates
        t2i[s:e] = (S >= pos[:, None]).sum(1, dtype=torch.int32) + 1
        above += (S >= best[None, :]).sum(0, dtype=torch.int32)
    return (above + 1).long(), t2i.long()


def _recall_ci(ranks_: np.ndarray, ks: Sequence[int], n_boot: int, seed: int,
               clusters: np.ndarray | None = None) -> dict[int, Interval]:
    hits = np.stack([(ranks_ <= k).astype(np.float64) for k in ks], 1)
    boot = 100.0 * cluster_means(hits, clusters, n_boot, seed)
    return {k: Interval(*percentile_ci(boot[:, j]), n_boot=n_boot, seed=seed)
            for j, k in enumerate(ks)}


def retrieval(V: Array, T: Array, image_of_text: npt.ArrayLike | torch.Tensor,
              ks: Sequence[int] = (1, 5, 10), chunk_size: int = 1024, ci: bool = False,
              n_boot: int = 1000, seed: int = 0) -> RetrievalResult:
    """Recall@K (percent) image->text and text->image, plus mean and median ranks.

    ``V``: (n_images, D) image embeddings; ``T``: (n_texts, D) caption embeddings;
    ``image_of_text``: (n_texts,) index of each caption's image. Rows are L2-normalised.
    Never holds more than ``chunk_size`` x n_images scores at once. See the module docstring
    for how ties are counted. ``ci``: bootstrap intervals of each recall (``n_boot``
    resamples, ``seed``), resampling images: image->text over images, text->image over
    images with all their captions (captions of one image share its fate).

    Parameters
    ----------
    V : array (n_images, D)
        Image embeddings.
    T : array (n_texts, D)
        Caption embeddings.
    image_of_text : array (n_texts,) of int
        Index of each caption's image.
    ks : tuple of int
        The K of Recall@K.
    chunk_size : int
        Captions or images scored at a time.
    ci : bool
        Bootstrap 95% intervals (``n_boot`` resamples, ``seed``).
    n_boot, seed : int
        Bootstrap resamples and their seed (used with ``ci``).

    Returns
    -------
    RetrievalResult
        Recalls (percent) and ranks both ways.

    Raises
    ------
    InputError
        ``ks`` empty or holding a K below 1; ``V`` or ``T`` not a real float 2-D array or
        tensor, holding a NaN, Inf or all-zero row, or the two differing in dimension; fewer
        than 2 images; ``image_of_text`` not a 1-D integer array with one index in
        ``[0, n_images)`` per caption, or leaving an image without a caption; with ``ci``,
        a bad ``n_boot`` or ``seed``; or a tensor on the meta device.

    See Also
    --------
    RetrievalResult : The result's fields.
    deviation : How the ranks of the true matches change between two checkpoints.
    zero_shot : Zero-shot classification, the other evaluation of a checkpoint.

    References
    ----------
    1. Z. Ni, L. Wei, S. Tang, Y. Zhuang, Q. Tian. Continual Vision-Language Representation
       Learning with Off-Diagonal Information. ICML 2023, PMLR 202:26129-26149
       (arXiv:2305.07437).
       Reports image-text retrieval Recall@K, as here.
    2. A. Radford et al. Learning Transferable Visual Models From Natural Language
       Supervision. ICML 2021 (arXiv:2103.00020).

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> V = np.eye(3)
    >>> T = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0.1]])  # 3rd caption: nearer image 0
    >>> r = sdtools.retrieval(V, T, np.array([0, 1, 2]))
    >>> round(r.t2i[1], 2), r.t2i_ranks.tolist()
    (66.67, [1, 1, 2])
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise InputError(f"ks must be positive integers, got {ks}")
    rank_i2t, rank_t2i = ranks(V, T, image_of_text, chunk_size=chunk_size)
    r_i2t, r_t2i = to_numpy(rank_i2t), to_numpy(rank_t2i)
    return RetrievalResult(
        i2t={k: float(100.0 * np.mean(r_i2t <= k)) for k in ks},
        t2i={k: float(100.0 * np.mean(r_t2i <= k)) for k in ks},
        i2t_mean_rank=float(r_i2t.mean()),
        i2t_median_rank=float(np.median(r_i2t)),
        t2i_mean_rank=float(r_t2i.mean()),
        t2i_median_rank=float(np.median(r_t2i)),
        i2t_ranks=r_i2t,
        t2i_ranks=r_t2i,
        i2t_ci=_recall_ci(r_i2t, ks, n_boot, seed) if ci else None,
        t2i_ci=_recall_ci(r_t2i, ks, n_boot, seed, _labels(image_of_text)) if ci else None,
        mean_r1_ci=_mean_r1_ci(r_i2t, r_t2i, _labels(image_of_text), n_boot, seed) if ci
        else None,
    )


def _mean_r1_ci(r_i2t: np.ndarray, r_t2i: np.ndarray, iot: np.ndarray, n_boot: int,
                seed: int) -> Interval:
    """Interval of ``(R@1 i2t + R@1 t2i) / 2`` over resamples of images (each with all its
    captions): per image its hit, its captions' hits and their count, as one resample."""
    n = r_i2t.size
    cols = np.stack([(r_i2t <= 1).astype(np.float64),
                     np.bincount(iot, weights=(r_t2i <= 1).astype(np.float64), minlength=n),
                     np.bincount(iot, minlength=n).astype(np.float64)], 1)
    m = bootstrap_means(cols, n_boot, seed)
    r1 = 50.0 * (m[:, 0] + m[:, 1] / m[:, 2])
    return Interval(*percentile_ci(r1), n_boot=n_boot, seed=seed)


def _labels(image_of_text: npt.ArrayLike | torch.Tensor) -> np.ndarray:
    if isinstance(image_of_text, torch.Tensor):
        return image_of_text.detach().cpu().numpy()
    return np.asarray(image_of_text)
