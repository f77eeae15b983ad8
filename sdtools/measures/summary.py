"""Result containers: frozen dataclasses with ``to_dict()`` that ``json.dumps`` accepts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from .checks import check_count, check_groups, check_seed

DEFAULT_ANGLE_EDGES = tuple(float(x) for x in range(0, 181, 15))
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DEFAULT_THRESHOLDS = (15.0, 30.0, 45.0, 60.0, 90.0)
BOOT_N = 1000  # bootstrap resamples
BOOT_SEED = 0
BOOT_LEVEL = 0.95


def clean_edges(edges: Iterable[float]) -> tuple[float, ...]:
    """Bin edges as floats without rounding noise (-0.4, not -0.3999999999999999)."""
    return tuple(float(round(float(e), 10)) for e in edges)


BLOCK_DRAWS = 1 << 22  # bootstrap draws held at a time (16 MB of indices): memory flat in N


def bootstrap_means(values: npt.ArrayLike, n_boot: int = BOOT_N,
                    seed: int = BOOT_SEED) -> np.ndarray:
    """The mean of ``values`` (n,), or of each column of ``values`` (n, m), in each of
    ``n_boot`` resamples of the n rows with replacement: shape (n_boot,) or (n_boot, m).

    Resamples are drawn a block at a time (at most ``BLOCK_DRAWS`` indices held), so memory
    does not grow with ``n_boot * n``; the stream of draws is the same for any block size."""
    v = np.asarray(values, dtype=np.float64)
    cols = v[:, None] if v.ndim == 1 else v
    n = cols.shape[0]
    check_count(n_boot, "n_boot", 1)
    rng = np.random.default_rng(check_seed(seed))
    out = np.empty((n_boot, cols.shape[1]))
    step = max(1, BLOCK_DRAWS // max(n, 1))  # resamples at a time
    for s in range(0, n_boot, step):
        m = min(step, n_boot - s)
        block = rng.integers(0, n, size=(m, n), dtype=np.int32)
        # how often each item is drawn in each resample, then one product for every column
        flat = (block + (np.arange(m, dtype=np.int64) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=m * n).reshape(m, n)
        out[s : s + m] = (counts @ cols) / n
    res: np.ndarray = out[:, 0] if v.ndim == 1 else out
    return res


def cluster_means(values: npt.ArrayLike, clusters: npt.ArrayLike | None, n_boot: int = BOOT_N,
                  seed: int = BOOT_SEED) -> np.ndarray:
    """:func:`bootstrap_means` resampling whole clusters (``clusters``: (n,) integer labels,
    e.g. each caption's image): each resample's mean is the sum of the drawn clusters' values
    over their item count. Items of one cluster share its fate, so they are drawn together;
    without clusters (None) every item is its own."""
    v = np.asarray(values, dtype=np.float64)
    if clusters is None:
        return bootstrap_means(v, n_boot, seed)
    cols = v[:, None] if v.ndim == 1 else v
    _, label = np.unique(check_groups(clusters, cols.shape[0], "clusters"), return_inverse=True)
    c = int(label.max()) + 1
    # per cluster: the sum of each column and the item count (bincount: np.add.at is slow)
    sums = np.stack([*(np.bincount(label, weights=col, minlength=c) for col in cols.T),
                     np.bincount(label, minlength=c).astype(np.float64)], 1)
    means = bootstrap_means(sums, n_boot, seed)
    out = means[:, :-1] / means[:, -1:]
    res: np.ndarray = out[:, 0] if v.ndim == 1 else out
    return res


def percentile_ci(samples: npt.ArrayLike, level: float = BOOT_LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap samples (percentile method)."""
    lo, hi = np.quantile(np.asarray(samples, dtype=np.float64), [(1 - level) / 2,
                                                                  (1 + level) / 2])
    return float(lo), float(hi)


@dataclasses.dataclass(frozen=True)
class Interval:
    """A confidence interval and how it was made (percentile bootstrap over probe items)."""

    low: float
    high: float
    level: float = BOOT_LEVEL
    n_boot: int = BOOT_N
    seed: int = BOOT_SEED

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "level": self.level, "n_boot": self.n_boot,
                "seed": self.seed}


def interval_text(iv: Interval | dict[str, float] | None, fmt: str = "{:.2f}",
                  scale: float = 1.0) -> str:
    """`` [low, high]`` of an interval (an :class:`Interval` or its dict), each bound times
    ``scale`` in ``fmt``; nothing when there is none."""
    if not iv:
        return ""
    lo, hi = (iv["low"], iv["high"]) if isinstance(iv, dict) else (iv.low, iv.high)
    return f" [{fmt.format(scale * lo)}, {fmt.format(scale * hi)}]"


def mean_interval(values: npt.ArrayLike, n_boot: int = BOOT_N, seed: int = BOOT_SEED,
                  level: float = BOOT_LEVEL, clusters: npt.ArrayLike | None = None) -> Interval:
    """Bootstrap interval of the mean of per-item values; with ``clusters`` (one label per
    item) whole clusters are resampled (see :func:`cluster_means`)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    boot = cluster_means(v, clusters, n_boot, seed)
    return Interval(*percentile_ci(boot, level), level, n_boot, seed)


@overload
def jsonable(x: dict[Any, Any]) -> dict[str, Any]: ...
@overload
def jsonable(x: object) -> Any: ...
def jsonable(x: object) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and dataclasses into JSON-ready values."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        if hasattr(x, "to_dict"):
            return x.to_dict()
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if hasattr(x, "tolist") and hasattr(x, "detach"):  # torch tensor
        return jsonable(x.detach().cpu().numpy())
    return x


@dataclasses.dataclass(frozen=True)
class Summary:
    """Summary of a 1-D distribution: moments, quantiles, histogram, shares above thresholds.

    Attributes
    ----------
    n : int
        Values summarised.
    mean, std, min, max, median : float
        Moments and order statistics.
    quantiles : dict float -> float
        Values at 5%, 25%, 50%, 75% and 95%.
    bin_edges, histogram : tuple
        Histogram edges and counts.
    share_above : dict float -> float
        Share of values above each threshold (15, 30, 45, 60, 90 for angles).
    mean_ci, share_above_ci : Interval, dict or None
        95% bootstrap intervals (with ``ci=True``).

    See Also
    --------
    rad : Returns a Summary of the per-sample rotation angles.
    sample_angles : The angles it is most often made of.

    Examples
    --------
    >>> import numpy as np
    >>> from sdtools import Summary
    >>> s = Summary.of(np.array([10.0, 20.0, 50.0, 100.0]))
    >>> s.n, s.mean, s.share_above[45.0]
    (4, 45.0, 0.5)
    """

    n: int
    mean: float
    std: float
    min: float
    max: float
    median: float
    quantiles: dict[float, float]
    bin_edges: tuple[float, ...]
    histogram: tuple[int, ...]
    share_above: dict[float, float]
    mean_ci: Interval | None = None
    share_above_ci: dict[float, Interval] | None = None

    @classmethod
    def of(
        cls,
        values: npt.ArrayLike,
        bin_edges: Sequence[float] = DEFAULT_ANGLE_EDGES,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        ci: bool = False,
        n_boot: int = BOOT_N,
        seed: int = BOOT_SEED,
        clusters: npt.ArrayLike | None = None,
    ) -> Summary:
        """``ci``: bootstrap intervals of the mean and the shares (``n_boot`` resamples of the
        items, ``seed``; with ``clusters``, one label per value, of whole clusters)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            from ..errors import InputError

            raise InputError("cannot summarise an empty set of values")
        if clusters is not None:  # checked also where no interval reads them
            clusters = check_groups(clusters, v.size, "clusters")
        mean_ci = share_ci = None
        if ci:
            cols = np.stack([v, *[(v > t).astype(np.float64) for t in thresholds]], 1)
            boot = cluster_means(cols, clusters, n_boot, seed)
            mean_ci = Interval(*percentile_ci(boot[:, 0]), n_boot=n_boot, seed=seed)
            share_ci = {float(t): Interval(*percentile_ci(boot[:, j + 1]), n_boot=n_boot,
                                           seed=seed) for j, t in enumerate(thresholds)}
        edges = np.asarray(bin_edges, dtype=np.float64)
        hist, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
        qs: np.ndarray | list[float] = np.quantile(v, quantiles) if quantiles else []
        return cls(
            n=int(v.size),
            mean=float(v.mean()),
            std=float(v.std(ddof=1)) if v.size > 1 else 0.0,
            min=float(v.min()),
            max=float(v.max()),
            median=float(np.median(v)),
            quantiles={float(q): float(x) for q, x in zip(quantiles, qs, strict=True)},
            bin_edges=clean_edges(edges),
            histogram=tuple(int(h) for h in hist),
            share_above={float(t): float((v > t).mean()) for t in thresholds},
            mean_ci=mean_ci,
            share_above_ci=share_ci,
        )

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "n": self.n,
                "mean": self.mean,
                "std": self.std,
                "min": self.min,
                "max": self.max,
                "median": self.median,
                "quantiles": self.quantiles,
                "bin_edges": self.bin_edges,
                "histogram": self.histogram,
                "share_above": self.share_above,
                **({"mean_ci": self.mean_ci, "share_above_ci": self.share_above_ci}
                   if self.mean_ci is not None else {}),
            }
        )
