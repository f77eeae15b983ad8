"""Orthogonal Procrustes between two checkpoints' embeddings, on the subspace the probe
determines, with its in-sample and held-out shares and a jitter null.

One pass over the rows gives per-fold cross-covariances (:mod:`.crosscov`); the fit, the
principal angles, ``explained``, ``explained_heldout`` (k-fold over probe items) and
``rigidity`` follow from D x D matrices (:mod:`.rotations`). Per-sample residual angles need a
second pass and are computed only when asked.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..errors import InputError
from .checks import (
    PRECISION_EPS,
    Array,
    check_count,
    check_groups,
    check_seed,
    coarsest,
    repeated_rows,
    value_precision,
)
from .crosscov import (
    GROUPS_PER_FOLD,
    cross_covariance,
    prepare,
    split_by,
)
from .rotations import (
    MIN_ROWS_PER_DIM,
    fit_folds,
    heldout_left,
    jitter_null,
    needs_float64,
    numerical_rank,
    principal_angles,
)
from .rownull import MAX_OWN_ROW_SIZE, own_rows_null
from .shares import ShareIntervals, group_values, residual_share, second_pass, share_intervals
from .summary import (
    BOOT_N,
    BOOT_SEED,
    Interval,
    Summary,
    jsonable,
)

__all__ = ["ProcrustesResult", "procrustes", "principal_angles"]

MIN_ITEMS_PER_DIM = 10
PRECISION_FACTOR = 2.0  # a change under 2 machine epsilons of the inputs' format is rounding


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
      size at the same N, D, rank (centred when the data are); ``rigidity = (explained_heldout
      - null_heldout) / (1 - null_heldout)``: about 0 for jitter, 1 for a rotation with little
      noise; None (and ``explained_heldout`` None) when the change is below
      ``precision_floor_deg`` (the RMS angle that rounding to ``precision``, the inputs' float
      format, can make) or A or B spans a single direction (a collapsed space), with a warning.
    - ``n``: distinct probe items; items whose rows repeat another's in both A and B (an image
      listed once per caption) are counted once, with a warning.
    - ``residual_angles_deg``: per-sample ``angle(A_i R*, B_i)``, with ``residuals=True``.
    - ``explained_ci``, ``explained_heldout_ci``, ``rigidity_ci``: percentile bootstrap
      intervals over probe items, resampled in ``ci_groups`` groups (each fold's rows dealt into
      11 groups) with the fitted rotations held fixed: how the shares vary over probes of this
      size given the fit (the fit's own variation, small when N is much larger than ``rank``,
      is not in them). The null is held fixed too. None with ``ci=False``.
    - ``warnings``: when N is small for the rank or the change below the precision floor.

    See Also
    --------
    procrustes : The measure that returns it.
    principal_angles : How ``angles_deg`` is read from ``rotation``.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(1)
    >>> A = rng.standard_normal((400, 6))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    >>> turned = sdtools.procrustes(A, A @ Q + 0.05 * rng.standard_normal(A.shape))
    >>> jitter = sdtools.procrustes(A, A + 0.3 * rng.standard_normal(A.shape))
    >>> turned.rank, turned.rigidity > 0.9, abs(jitter.rigidity) < 0.1
    (6, True, True)
    """

    rotation: np.ndarray
    det: float
    reflection: bool
    rank: int
    angles_deg: np.ndarray
    explained: float
    explained_heldout: float | None
    null_heldout: float
    rigidity: float | None
    folds: int
    n: int
    residual_angles_deg: np.ndarray | None
    centered: bool
    warnings: tuple[str, ...] = ()
    explained_ci: Interval | None = None
    explained_heldout_ci: Interval | None = None
    rigidity_ci: Interval | None = None
    ci_groups: int = 0
    precision: str = "float32"
    precision_floor_deg: float = 0.0

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

    def to_dict(self) -> dict[str, Any]:
        out = {"det": self.det, "reflection": self.reflection, "centered": self.centered,
               "rank": self.rank, "n": self.n, "angles_deg": self.angles_deg,
               "max_angle": self.max_angle, "mean_angle": self.mean_angle,
               "rms_angle": self.rms_angle, "geodesic_deg": self.geodesic_deg,
               "explained": self.explained, "explained_heldout": self.explained_heldout,
               "null_heldout": self.null_heldout, "rigidity": self.rigidity,
               "folds": self.folds, "warnings": list(self.warnings),
               "precision": self.precision, "precision_floor_deg": self.precision_floor_deg}
        if self.explained_ci is not None:
            out.update(explained_ci=self.explained_ci, rigidity_ci=self.rigidity_ci,
                       explained_heldout_ci=self.explained_heldout_ci, ci_groups=self.ci_groups)
        if self.residual_angles_deg is not None:
            out["residual"] = Summary.of(self.residual_angles_deg).to_dict()
        return jsonable(out)


def procrustes(A: Array, B: Array, center: bool = False, residuals: bool = False, folds: int = 3,
               seed: int = 0, ci: bool = True, n_boot: int = BOOT_N, ci_seed: int = BOOT_SEED,
               precision: str | None = None,
               groups: npt.ArrayLike | torch.Tensor | None = None) -> ProcrustesResult:
    """Fit the orthogonal map that best takes A onto B (rows L2-normalised first).

    ``R* = U V^T`` with ``U S V^T = svd(A^T B)`` inside the determined subspace (float64 D x D
    work whatever the input dtype; the determinacy rule is in
    :mod:`sdtools.measures.rotations`). ``center=True`` subtracts each space's mean first (off
    by default: CLIP embeddings live on the sphere; the jitter null is then centred too).
    ``folds`` (at least 2): k of the held-out share (probe items in blocks of at most 1024 rows,
    block b in fold b % k). ``residuals``: also the per-sample angles left after the rotation (a
    second pass over the rows). ``ci``: bootstrap intervals of the shares and rigidity
    (``n_boot`` resamples, ``ci_seed``); they need no pass over the data, only one D x D matrix
    per group of items. ``seed``: the jitter null's: the held-out share the probe's own rows
    read when turned by jitter of the change's mean angle in directions drawn as the residual
    rows ``b_i - a_i R`` lie, at the fit's rank and folds (N x D up to ``MAX_OWN_ROW_SIZE``;
    above, a scaled simulation with the probe's spectrum and isotropic jitter). The intervals
    hold the null fixed. ``precision``: the float format the
    embeddings were computed or stored in (``bfloat16``, ``float16``, ``float32``); by default
    read from the values. A change whose RMS angle is under ``PRECISION_FACTOR`` machine
    epsilons of that format is rounding, not a rotation: ``rigidity`` is then None, with a
    warning. ``groups``: a label per item for items that change together (a class, a domain, an
    image's captions): folds and bootstrap groups then hold whole labels, and the jitter null
    shares the part that a label's items share of what the rotation leaves (each label against
    the fit of the folds without it), so a drift per class is jitter, not a rotation, and reads
    rigidity about 0, and the null is the same whatever rotation comes with the drift. Up to
    ``MAX_OWN_ROW_SIZE`` the null's jitter shares that part within labels on the probe's own
    rows (the groups' geometry is the probe's); above, a scaled simulation whose groups are
    as clustered as the labels on average.

    Parameters
    ----------
    A, B : array (N, D)
        Embeddings of the same N items under checkpoints a and b.
    center : bool
        Subtract each space's mean first.
    residuals : bool
        Also the per-item angles the rotation leaves.
    folds : int
        Folds of the held-out share (at least 2).
    seed : int
        Seed of the jitter null.
    ci : bool
        Bootstrap 95% intervals (``n_boot`` resamples, ``ci_seed``).
    n_boot, ci_seed : int
        Bootstrap resamples and their seed (used with ``ci``).
    precision : str, optional
        Float format of the embeddings (default: read from the values).
    groups : array (N,), optional
        A label per item; items of one label are held out and resampled together.

    Returns
    -------
    ProcrustesResult
        The rotation (D, D), its rank, principal angles, explained shares and rigidity.

    Raises
    ------
    InputError
        ``A`` or ``B`` is not a real float (N, D) numpy array or torch tensor, the two differ
        in shape, have fewer than 2 rows, or hold a NaN, Inf or all-zero row; or a tensor is
        on the meta device.
        Also: ``folds`` not an integer of at least 2; fewer than ``2 * folds`` (distinct)
        items; a single dimension; ``precision`` not one of ``bfloat16``, ``float16``,
        ``float32``, ``float64``; ``groups`` without one label per item, or with fewer
        distinct labels than ``folds``; ``seed``, ``ci_seed`` or ``n_boot`` out of range.

    See Also
    --------
    ProcrustesResult : The result's fields.
    principal_angles : The rotation angles of an orthogonal matrix, as read from the fit.
    sample_angles : The per-sample angles before alignment.
    topology_kept : Whether the angles between samples are kept, against a null.

    References
    ----------
    1. P. H. Schönemann. A generalized solution of the orthogonal Procrustes problem.
       Psychometrika 31(1):1-10, 1966.
    2. Z. Ni, L. Wei, S. Tang, Y. Zhuang, Q. Tian. Continual Vision-Language Representation
       Learning with Off-Diagonal Information. ICML 2023, PMLR 202:26129-26149
       (arXiv:2305.07437). The intra-modal rotation this fit quantifies; the paper itself
       does not fit one.

    Examples
    --------
    >>> import numpy as np, sdtools
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((500, 8))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> fit = sdtools.procrustes(A, A @ Q)
    >>> round(fit.explained, 6), round(fit.explained_heldout, 6), fit.rank
    (1.0, 1.0, 8)
    """
    check_count(folds, "folds", 2, why="; the held-out share needs items the fit has not seen")
    check_seed(seed)
    check_seed(ci_seed, "ci_seed")
    prep = prepare(A, B, center)
    a = prep[0]
    n, d = a.shape
    if n < 2 * folds:
        raise InputError(f"{n} probe items are too few for {folds} folds; give at least "
                         f"{2 * folds} items or fewer folds")
    if d < 2:
        raise InputError(f"A and B have {d} dimension; a rotation needs at least 2 (with one, "
                         "every change is a sign: compare the embeddings directly)")
    if precision is not None and precision not in PRECISION_EPS:
        raise InputError(f"precision must be one of {', '.join(PRECISION_EPS)}, got "
                         f"{precision!r}")
    fmt = coarsest(precision, value_precision(A), value_precision(B))
    repeats = repeated_rows(prep[0], prep[1])
    n_all = n
    if repeats is not None:  # each distinct item once: repeats would count as evidence
        keep = torch.as_tensor(repeats[0], device=prep[0].device)
        prep = prepare(prep[0][keep], prep[1][keep], center)
        n = prep[0].shape[0]
        if groups is not None:
            groups = check_groups(groups, n_all)[repeats[0]]
        if n < 2 * folds:
            raise InputError(f"only {n} distinct probe items (of {n_all}) for {folds} folds; "
                             f"give at least {2 * folds} distinct items")
    split = None if groups is None else split_by(groups, n, folds, GROUPS_PER_FOLD, seed)
    if split is not None and split.n_labels == n:
        split = None  # every item its own label: the usual blocks
    cc = cross_covariance(prep, folds, GROUPS_PER_FOLD, split)  # the same folds with or without ci
    M = cc.total
    base = cc.base
    exact = base < 1e-3 * n  # a tiny change: sums of squares lose digits; take differences
    fit = fit_folds(cc.M, cc.aa, cc.bb, cc.n, cc.eps, base)
    R, r, reflect, fold_R = fit.R, fit.rank, fit.reflect, fit.fold_R
    det = -1.0 if reflect else 1.0
    angles, _ = principal_angles(R, reflection=reflect)
    left = float(cc.aa.sum() + cc.bb.sum() - 2.0 * torch.sum(R * M))
    k = cc.M.shape[0]
    assert fold_R is not None  # folds >= 2: each has its complement's fit
    ho_left = heldout_left(cc.M, cc.aa, cc.bb, fold_R)
    resid = None
    per_group: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    if residuals or exact:
        base2, left2, ho2, resid, per_group = second_pass(prep, R, fold_R, cc, exact)
        if exact:
            base, left, ho_left = base2, left2, ho2
    explained = 1.0 if base == 0.0 else 1.0 - left / base
    heldout = 1.0 if base == 0.0 else 1.0 - ho_left / base
    assert cc.sum_a is not None  # cross_covariance sets it
    share = 0.0  # the part of the jitter a label's items share (independent items: none)
    labelled = cc.split is not None  # (cross_covariance then keeps the label sums, moves)
    if (ci or labelled) and (per_group is None or not exact):
        per_group = group_values(cc, R, fold_R)  # exact ones from the second pass otherwise
    if labelled:  # the structure of what the rotation leaves, not of the raw change
        assert per_group is not None
        share = residual_share(cc, fold_R, per_group)
    if base <= 0:
        null = 0.0
    elif prep[0].numel() <= MAX_OWN_ROW_SIZE:  # the probe's rows, turned
        null = own_rows_null(prep, cc.split if labelled else None, k, base, r, share,
                             center=center, seed=seed, precise=needs_float64(fit.s, r, base),
                             fits=[R])
    else:  # a scaled simulation (as clustered and shared as the probe's labels on average)
        null = jitter_null(fit.s, cc.n, base, r, seed, center=center, share=share,
                           per_group=n / cc.labels if cc.labels else 1.0,
                           spread=cc.group_spread,
                           mean_share=float((cc.sum_a / n).square().sum()))
    floor = PRECISION_FACTOR * PRECISION_EPS[fmt]
    collapsed = numerical_rank(fit.s, cc.eps) <= 1  # one space (or both) spans one direction
    resolved = base > 0 and math.sqrt(base / n) >= floor and not collapsed
    rigidity = ((heldout - null) / (1.0 - null) if null < 1.0 else 0.0) if resolved else None
    cis: ShareIntervals = {}
    if ci:
        assert per_group is not None  # computed above
        cis = share_intervals(*per_group, null, n_boot, ci_seed, resolved)
    warns = []
    if repeats is not None:
        warns.append(f"{n_all - n} of {n_all} probe items repeat another item in both A and B "
                     "(e.g. an image listed once per caption); each distinct item is counted "
                     f"once (N = {n})")
    if collapsed:
        warns.append("A or B spans a single direction (a collapsed space): there is no "
                     "rotation to judge; rigidity and explained_heldout are not given")
    if n < MIN_ROWS_PER_DIM * d:
        warns.append(f"only {n} probe items for {d} dimensions: every direction with spread is "
                     "kept, none can be judged against the noise; use at least "
                     f"{MIN_ROWS_PER_DIM * d} items")
    elif n < MIN_ITEMS_PER_DIM * r:
        warns.append(f"only {n} probe items for a rotation determined in {r} dimensions: the "
                     f"fit explains noise in sample; judge it by explained_heldout and "
                     f"rigidity, and use at least {MIN_ITEMS_PER_DIM * r} items")
    if r < d:
        warns.append(f"the probe determines {r} of {d} dimensions; the rotation is reported "
                     "there only (the identity elsewhere)")
    if not resolved and not collapsed:
        warns.append("no change above the resolution of the inputs' precision "
                     f"({fmt}: RMS angle under {math.degrees(floor):.2g} degrees): rounding, "
                     "not a rotation; rigidity and explained_heldout are not given")
    if resid is not None and repeats is not None:
        resid = resid[repeats[1]]  # every input item, repeats included
    return ProcrustesResult(
        rotation=R.numpy(), det=det, reflection=reflect, rank=r, angles_deg=angles,
        explained=float(explained), explained_heldout=float(heldout) if resolved else None,
        null_heldout=float(null),
        rigidity=None if rigidity is None else float(rigidity), folds=k, n=n,
        residual_angles_deg=None if resid is None or not residuals else resid,
        centered=center, warnings=tuple(warns), precision=fmt,
        precision_floor_deg=math.degrees(floor), **cis)
