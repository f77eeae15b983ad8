"""Result containers: frozen dataclasses with ``to_dict()`` that ``json.dumps`` accepts."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DEFAULT_ANGLE_EDGES = tuple(float(x) for x in range(0, 181, 15))
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DEFAULT_THRESHOLDS = (15.0, 30.0, 45.0, 60.0, 90.0)


def jsonable(x):
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
    """Summary of a 1-D distribution: moments, quantiles, histogram, shares above thresholds."""

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

    @classmethod
    def of(
        cls,
        values,
        bin_edges=DEFAULT_ANGLE_EDGES,
        quantiles=DEFAULT_QUANTILES,
        thresholds=DEFAULT_THRESHOLDS,
    ) -> Summary:
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            raise ValueError("cannot summarise an empty set of values")
        edges = np.asarray(bin_edges, dtype=np.float64)
        hist, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
        qs = np.quantile(v, quantiles) if quantiles else []
        return cls(
            n=int(v.size),
            mean=float(v.mean()),
            std=float(v.std(ddof=1)) if v.size > 1 else 0.0,
            min=float(v.min()),
            max=float(v.max()),
            median=float(np.median(v)),
            quantiles={float(q): float(x) for q, x in zip(quantiles, qs, strict=True)},
            bin_edges=tuple(float(e) for e in edges),
            histogram=tuple(int(h) for h in hist),
            share_above={float(t): float((v > t).mean()) for t in thresholds},
        )

    def to_dict(self) -> dict:
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
            }
        )
