"""Planted truths shaped like real CLIP embeddings, for validating measures.

Real CLIP embeddings are not isotropic: they sit in a cone (mean pairwise cosine often 0.5-0.9)
with variance decaying roughly like a power law, change little between nearby checkpoints, and
come with several captions per image. Every generator here returns unit rows and takes a numpy
``Generator``; the tests and ``benchmarks/validity.py`` plant rotations and jitter in such data
and check that each measure reads back what was planted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def clip_like(rng: np.random.Generator, n: int, d: int, spectrum: str = "power", cone: float = 0.0,
              alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit rows in ``d`` dimensions and the orthonormal basis (columns, strongest
    first) they are drawn in.

    ``spectrum``: ``iso`` (equal variance) or ``power`` (variance of axis k ~ ``k^-alpha``).
    ``cone`` > 0: every row is ``sqrt(cone)`` along the first basis axis plus ``sqrt(1 -
    cone)`` of a unit vector drawn from the spectrum over the other axes, so the mean pairwise
    cosine is about ``cone``.
    """
    if spectrum not in ("iso", "power"):
        raise ValueError(f"spectrum must be iso or power, got {spectrum!r}")
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    k = np.arange(1, d + 1, dtype=np.float64)
    std = np.ones(d) if spectrum == "iso" else k ** (-alpha / 2.0)
    z = rng.standard_normal((n, d)) * std
    if cone > 0:
        z[:, 0] = 0.0
        z = unit(z) * np.sqrt(1.0 - cone)
        z[:, 0] = np.sqrt(cone)
    return unit(z @ basis.T), basis


def plane_rotation(basis: np.ndarray, angles_deg: Sequence[float] | npt.NDArray[np.float64],
                   where: str = "high") -> np.ndarray:
    """A rotation (D x D, acting on rows: ``X @ R``) turning consecutive pairs of basis axes by
    ``angles_deg``: the strongest axes (``where="high"``, axes 1-2, 3-4, ...; axis 0, a cone's
    axis, is left alone) or the weakest (``"low"``)."""
    d = basis.shape[0]
    R = np.eye(d)
    for i, a in enumerate(angles_deg):
        p, q = (1 + 2 * i, 2 + 2 * i) if where == "high" else (d - 1 - 2 * i, d - 2 - 2 * i)
        u, v = basis[:, p], basis[:, q]
        t = np.radians(a)
        R += (np.cos(t) - 1.0) * (np.outer(u, u) + np.outer(v, v)) + np.sin(t) * (
            np.outer(u, v) - np.outer(v, u))
    return R


def jitter(X: np.ndarray, deg: npt.ArrayLike, rng: np.random.Generator) -> np.ndarray:
    """Every row turned by ``deg`` degrees (a scalar or one per row) towards a random
    perpendicular direction: a change with no rotation in it."""
    E = rng.standard_normal(X.shape)
    E -= (E * X).sum(1, keepdims=True) * X
    E = unit(E)
    t = np.radians(np.asarray(deg, dtype=np.float64))
    t = t[:, None] if t.ndim else t
    out: np.ndarray = np.cos(t) * X + np.sin(t) * E
    return out


def captions(rng: np.random.Generator, V: np.ndarray, per_image: tuple[int, int] = (3, 5),
             spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Captions near their images: ``per_image`` (low, high) captions each, every one its
    image plus isotropic noise of relative size ``spread``. Returns ``(T, image_of_text)``."""
    n, d = V.shape
    counts = rng.integers(per_image[0], per_image[1] + 1, size=n)
    iot = np.repeat(np.arange(n), counts)
    T = unit(V[iot] + spread * unit(rng.standard_normal((iot.size, d))))
    return T, iot
