"""sdtools: measure spatial disorder between CLIP checkpoints.

Attributes are imported lazily so that ``import sdtools`` (and the CLI's ``--help``) stays fast.
"""

from __future__ import annotations

import importlib
import inspect
import sys

__version__ = "0.1.0"

_EXPORTS = {
    "sample_angles": "measures.angles",
    "rad": "measures.angles",
    "sam_drift": "measures.sam",
    "SamDriftResult": "measures.sam",
    "procrustes": "measures.procrustes",
    "topology_kept": "measures.topology",
    "TopologyResult": "measures.topology",
    "principal_angles": "measures.procrustes",
    "ProcrustesResult": "measures.procrustes",
    "deviation": "measures.intermodal",
    "DeviationResult": "measures.intermodal",
    "retrieval": "measures.retrieval",
    "RetrievalResult": "measures.retrieval",
    "linear_cka": "measures.similarity",
    "mutual_knn": "measures.similarity",
    "Summary": "measures.summary",
    "Embeddings": "models.embeddings",
    "load_checkpoint": "models.checkpoints",
    "embed": "models.extract",
    "open_data": "data.specs",
    "SyntheticConfig": "data.synthetic",
    "SyntheticStream": "data.synthetic",
    "zero_shot": "classify",
    "linear_probe": "classify",
    "ZeroShotResult": "classify",
    "LinearProbeResult": "classify",
    "rotation_report": "report",
    "deviation_report": "report",
    "build_report": "report",
    "RunDir": "runs",
    "UserError": "errors",
    "plot_rotation": "viz.pairwise",
    "plot_deviation": "viz.pairwise",
    "draw_all": "viz.phases",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sdtools' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sdtools.{module}"), name)
    if module.startswith("measures.") and inspect.isfunction(value):
        value = _no_meta(value)
    globals()[name] = value
    return value


def _no_meta(fn):
    """A public measure that refuses tensors on the meta device (shapes without values) with
    a one-line :class:`UserError`, before the maths meets them."""
    import functools

    @functools.wraps(fn)
    def measure(*args, **kwargs):
        torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
        if torch is not None:
            for k, x in [*enumerate(args), *kwargs.items()]:
                if isinstance(x, torch.Tensor) and x.device.type == "meta":
                    from .errors import InputError

                    where = f"argument {k + 1}" if isinstance(k, int) else k
                    raise InputError(f"{fn.__name__}: {where} is a tensor on the meta device "
                                     "(a shape without values); pass a tensor that holds data")
        return fn(*args, **kwargs)

    return measure


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
