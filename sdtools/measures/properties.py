"""What each measure promises for each kind of change, and a seeded generator that checks it
over drawn data shapes (the tests draw a few, ``benchmarks/validity.py --properties`` many).

A draw picks a data shape (spectrum ``iso`` or power law with exponent 0.5-2, a cone of mean
cosine 0-0.9, 0-100 clusters or 1-20 captions per image, D 16-``max_d``, N/D 1.5-100 capped by
a budget of N x D) and a change:

=========  ====================================================  ===========================
change     what is planted                                       invariants (tolerance)
=========  ====================================================  ===========================
rotation   a rotation of 1-8 planes, 5-90 degrees each, in the   topology_kept and
           strongest or weakest directions, no noise             metric_kept 1 (1e-3);
                                                                 rigidity 1 (1e-3, at N/D
                                                                 >= 3)
order      the cone's axis scaled by 0.7-1.4 (every angle         topology_kept 1 (1e-3)
           reshaped monotonically; on data with a cone)
jitter     each row turned 2-30 degrees, independently (sizes     topology_kept, metric_kept
           per row or one size), along strong or weak            0 (0.05, or 1 / sqrt(items
           directions, or shared by each cluster / image          or groups) when larger);
           (given as groups)                                      rigidity 0 (0.1 or 1 /
                                                                  sqrt(groups), at N/D >= 3);
                                                                  then two random planes
                                                                  turned 30 and 20 degrees:
                                                                  rigidity the rotation's
                                                                  share (as for jitter)
partial    10-50% of the rows unchanged, the others jittered     topology_kept, metric_kept
                                                                 0 (as for jitter)
nothing    B = A                                                 topology_kept, rigidity None
=========  ====================================================  ===========================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import TypeAlias

import numpy as np

from .planted import plane_rotation, unit

# one invariant as checked: (measure, expected, read, tolerance, holds)
Invariant: TypeAlias = "tuple[str, str, str, str, bool]"


@dataclasses.dataclass(frozen=True)
class Shape:
    """A drawn data shape (see the module docstring)."""

    n: int
    d: int
    alpha: float  # 0: isotropic
    cone: float
    clusters: int  # 0: none
    captions: int  # rows per image (1: every row its own item)

    def text(self) -> str:
        spec = "iso" if self.alpha == 0 else f"power {self.alpha:.1f}"
        grp = (f", {self.clusters} clusters" if self.clusters else "") + (
            f", {self.captions} captions/image" if self.captions > 1 else "")
        return f"N={self.n} D={self.d} {spec}, cone {self.cone:.2f}{grp}"


def draw_shape(rng: np.random.Generator, max_d: int = 1024, budget: int = 3_000_000) -> Shape:
    """A data shape: D log-uniform in [16, max_d], N/D log-uniform in [1.5, 100] (N x D at most
    ``budget``, N/D at least 1.5)."""
    d = int(round(math.exp(rng.uniform(math.log(16), math.log(max_d)))))
    ratio = math.exp(rng.uniform(math.log(1.5), math.log(100)))
    n = max(int(1.5 * d) + 1, min(int(ratio * d), budget // d))
    alpha = 0.0 if rng.random() < 0.25 else float(rng.uniform(0.5, 2.0))
    cone = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.1, 0.9))
    clusters = int(rng.integers(2, 101)) if rng.random() < 0.4 else 0
    captions = int(rng.integers(2, 21)) if (not clusters and rng.random() < 0.3) else 1
    return Shape(n, d, alpha, cone, clusters, captions)


def make_data(rng: np.random.Generator,
              s: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Unit rows of shape ``s``, their basis (columns, cone axis first) and group labels (the
    cluster or image of each row; None when rows are independent). Every row has the same
    component on the cone axis, so scaling that axis reshapes every angle monotonically."""
    d = s.d
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    std = np.arange(1, d, dtype=np.float64) ** (-s.alpha / 2.0)  # the axes off the cone's
    labels = None
    if s.captions > 1:
        images = max(3, s.n // s.captions)
        labels = np.repeat(np.arange(images), s.captions)[: s.n]
        labels = np.concatenate([labels, rng.integers(0, images, s.n - labels.size)])
        centre = rng.standard_normal((images, d - 1)) * std
        z = centre[labels] + 0.5 * rng.standard_normal((s.n, d - 1)) * std
    elif s.clusters:
        labels = rng.integers(0, s.clusters, s.n)
        centre = rng.standard_normal((s.clusters, d - 1)) * std
        z = centre[labels] + 0.5 * rng.standard_normal((s.n, d - 1)) * std
    else:
        z = rng.standard_normal((s.n, d - 1)) * std
    z = unit(z) * math.sqrt(1.0 - s.cone)
    X = np.concatenate([np.full((s.n, 1), math.sqrt(s.cone)), z], 1) @ basis.T
    return unit(X), basis, labels


def _turn(X: np.ndarray, E: np.ndarray, deg: float | np.ndarray) -> np.ndarray:
    """Rows turned by ``deg`` (scalar or per row) toward the perpendicular part of ``E``."""
    E = unit(E - (E * X).sum(1, keepdims=True) * X)
    t = np.radians(np.asarray(deg, dtype=np.float64))
    t = t[:, None] if t.ndim else t
    turned: np.ndarray = np.cos(t) * X + np.sin(t) * E
    return turned


def draw_change(rng: np.random.Generator, X: np.ndarray, basis: np.ndarray,
                labels: np.ndarray | None,
                s: Shape) -> tuple[str, str, np.ndarray, np.ndarray | None]:
    """``(kind, detail, B, groups)``: a change of X of one kind (module docstring) and the
    groups a measure should be given (None for independent items)."""
    kinds = ["rotation", "jitter", "jitter", "partial", "nothing"] + (["order"] if s.cone else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    n: int
    d: int
    n, d = X.shape
    if kind == "nothing":
        return kind, "B = A", X.copy(), labels
    if kind == "rotation":
        planes = int(rng.integers(1, min(8, (d - 1) // 2) + 1))
        angles = rng.uniform(5.0, 90.0, planes)
        where = "high" if rng.random() < 0.5 else "low"
        return (kind, f"{planes} planes, {where}, up to {angles.max():.0f} deg",
                X @ plane_rotation(basis, angles, where), labels)
    if kind == "order":
        f = float(rng.uniform(0.7, 1.4))
        axis = basis[:, 0]
        return kind, f"cone axis x{f:.2f}", unit(X + (f - 1.0) * np.outer(X @ axis, axis)), labels
    size = rng.uniform(2.0, 30.0, n) if rng.random() < 0.5 else float(rng.uniform(2.0, 30.0))
    what = "sizes per row" if np.ndim(size) else f"{size:.0f} deg"
    if kind == "partial":
        still = rng.random(n) < rng.uniform(0.1, 0.5)
        B = _turn(X, rng.standard_normal(X.shape), size)
        B[still] = X[still]
        return kind, f"{still.mean():.0%} still, others jittered ({what})", B, labels
    styles = ["independent", "strong", "weak"] + (["shared"] if labels is not None else [])
    style = styles[int(rng.integers(len(styles)))]
    E = rng.standard_normal(X.shape)
    if style in ("strong", "weak"):  # along the data's strongest or weakest spread (the
        # cone's axis, where every row sits alike, excluded)
        w = np.arange(1, d, dtype=np.float64) ** (-s.alpha / 2.0 if s.alpha else -0.5)
        w = np.concatenate([[0.0], w if style == "strong" else 1.0 / w])
        E = (E * w / w.max()) @ basis.T
    elif style == "shared":  # every row of a group moves along its group's direction
        assert labels is not None  # "shared" is drawn only for data with groups
        E = rng.standard_normal((int(labels.max()) + 1, d))[labels] + 0.3 * E
    return kind, f"{style} jitter ({what})", _turn(X, E, size), labels


def check(kind: str, X: np.ndarray, B: np.ndarray, groups: np.ndarray | None, s: Shape,
          seed: int = 0) -> list[Invariant]:
    """Each invariant of ``kind`` as ``(measure, expected, read, tolerance, holds)``."""
    from .procrustes import procrustes
    from .topology import topology_kept

    rows: list[Invariant] = []
    top = topology_kept(X, B, seed=seed, groups=groups)
    ratio = X.shape[0] / X.shape[1]

    def rigidity(want: float, tol: float, B: np.ndarray = B, name: str = "rigidity") -> None:
        """Rigidity near ``want``; with fewer groups than held-out folds the fit must refuse
        in one line instead (a documented refusal, not a number)."""
        from ..errors import InputError

        try:
            near(name, procrustes(X, B, ci=False, groups=groups).rigidity, want, tol)
        except InputError as exc:
            said = "distinct label" in str(exc)
            rows.append((name, "refused (too few groups)", "refused" if said else str(exc),
                         "-", said))

    def near(name: str, value: float | None, want: float, tol: float) -> None:
        ok = value is not None and abs(value - want) <= tol
        rows.append((name, f"{want:g}", "None" if value is None else f"{value:+.3f}",
                     f"+- {tol:g}", ok))

    if kind == "nothing":
        fit = procrustes(X, B, ci=False)
        rows.append(("topology_kept", "None", str(top.topology_kept), "-",
                     top.topology_kept is None))
        rows.append(("rigidity", "None", str(fit.rigidity), "-", fit.rigidity is None))
    elif kind == "rotation":
        near("topology_kept", top.topology_kept, 1.0, 1e-3)
        near("metric_kept", top.metric_kept, 1.0, 1e-3)
        if ratio >= 3:  # below, fold fits barely determine the weak directions
            rigidity(1.0, 1e-3)
    elif kind == "order":
        near("topology_kept", top.topology_kept, 1.0, 1e-3)
    else:  # jitter and partial changes: no agreement between the samples' moves
        # the null is drawn once: its noise falls with the items (or groups) it draws from
        units = X.shape[0] if groups is None else int(np.unique(groups).size)
        tol = round(max(0.05, 1.0 / math.sqrt(units)), 3)
        near("topology_kept", top.topology_kept, 0.0, tol)
        near("metric_kept", top.metric_kept, 0.0, tol)
        if kind == "jitter" and ratio >= 3:  # held-out folds of few groups are noisy
            tol = round(max(0.1, 1.0 / math.sqrt(units)), 3)
            rigidity(0.0, tol)
            # the same jitter, then a rotation: rigidity reads the rotation's share (the null
            # describes what the rotation leaves, whatever the rotation)
            rng = np.random.default_rng([seed, 1])
            planes = np.linalg.qr(rng.standard_normal((X.shape[1], 5)))[0]
            R = plane_rotation(planes, [30.0, 20.0])
            BR = B @ R
            share = 1.0 - float(np.sum((X @ R - BR) ** 2) / np.sum((X - BR) ** 2))
            rigidity(share, tol, BR, "rigidity, jitter + rotation")
    return rows


def draws(n_draws: int, seed: int = 0, max_d: int = 1024,
          budget: int = 3_000_000) -> Iterator[tuple[Shape, str, str, list[Invariant]]]:
    """Yield ``(shape, kind, detail, rows)`` for ``n_draws`` seeded draws."""
    for i in range(n_draws):
        rng = np.random.default_rng([seed, i])
        s = draw_shape(rng, max_d, budget)
        X, basis, labels = make_data(rng, s)
        kind, detail, B, groups = draw_change(rng, X, basis, labels, s)
        yield s, kind, detail, check(kind, X, B, groups, s, seed=i)


__all__ = ["Shape", "check", "draw_change", "draw_shape", "draws", "make_data"]
