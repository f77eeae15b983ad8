"""What identifies a model and its embeddings: content hashes of weights and checkpoint
files, a hash of the parameter shapes, the float format the weights fit, and the embedding
cache's keys and folder (used by :mod:`sdtools.models.extract`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..data.base import ImageTextData
from ..measures.checks import PRECISION_EPS, value_precision
from .build import Loaded
from .reading import file_sha256

CACHE_VERSION = 3  # 2: device and precision in the key; 3: image content in the probe


def default_cache_dir() -> Path:
    return Path(os.environ.get("SDTOOLS_CACHE", Path.home() / ".cache" / "sdtools"))


def model_hash(model: torch.nn.Module) -> str:
    """Content hash of a model's weights (used when it did not come from a file)."""
    info = getattr(model, "sdtools_info", None)
    if info and info.get("sha256"):
        return info["sha256"]
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def weights_precision(model: torch.nn.Module) -> str:
    """The float format all floating weights' values fit (a bf16 or fp16 re-save loaded into
    float32 still shows its rounding): the finest over the tensors, since a tensor of ones
    or zeros fits any format."""
    names = [value_precision(p.detach().reshape(-1)[:4096].cpu())
             for p in model.parameters() if p.is_floating_point()]
    return min(names, key=PRECISION_EPS.__getitem__) if names else "float32"


def param_shapes(model: torch.nn.Module) -> str:
    """A hash of the parameter names and shapes: the same network however its config is
    spelled (a modx checkpoint, its bare state dict, its safetensors copy)."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(f"{k}:{tuple(v.shape)};".encode())
    return h.hexdigest()[:16]


def cache_key(model_id: str, data: ImageTextData, compute: dict | None = None) -> str:
    """``compute``: where and how the forward passes run (device type, autocast dtype)."""
    parts = {"v": CACHE_VERSION, "model": model_id, "data": data.fingerprint(),
             "compute": compute or {}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _model_id(loaded: Loaded) -> str:
    tok = loaded.tokenizer
    return json.dumps({
        "weights": model_hash(loaded.model),
        "transform": repr(loaded.preprocess),
        "tokenizer": f"{type(tok).__name__}:{getattr(tok, 'context_length', '')}",
    }, sort_keys=True)


def _spec_id(spec, arch) -> str | None:
    """Identity of a checkpoint file from its bytes and the --model argument, without loading
    it (architecture, transform and tokenizer all follow from these two)."""
    p = Path(str(spec))
    if not p.is_file():
        return None
    arch_id = arch
    if arch is not None and Path(str(arch)).is_file():
        arch_id = file_sha256(arch)
    return json.dumps({"file": file_sha256(p), "arch": arch_id}, sort_keys=True)
