"""sdtools: measure spatial disorder between CLIP checkpoints.

Attributes are imported lazily so that ``import sdtools`` (and the CLI's ``--help``) stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "sample_angles": "rotation",
    "rad": "rotation",
    "sam_drift": "rotation",
    "procrustes": "rotation",
    "principal_angles": "rotation",
    "SamDriftResult": "rotation",
    "ProcrustesResult": "rotation",
    "deviation": "intermodal",
    "DeviationResult": "intermodal",
    "retrieval": "ranking",
    "RetrievalResult": "ranking",
    "linear_cka": "similarity",
    "mutual_knn": "similarity",
    "Summary": "results",
    "Embeddings": "embeddings",
    "load_checkpoint": "checkpoints",
    "embed": "extract",
    "open_data": "data",
    "SyntheticConfig": "synthetic",
    "SyntheticStream": "synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sdtools' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sdtools.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
