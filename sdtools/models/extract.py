"""Embedding extraction: batched, inference mode, mixed precision on GPU, cached on disk.

The cache key is (checkpoint content hash, data fingerprint, transform, tokenizer, device type,
compute precision), so a second analysis of the same checkpoint and probe set costs no forward
pass, and embeddings computed in bf16 are never served for an fp32 request (they differ by
about as much as the rotations measured between nearby checkpoints). Under ``torchrun`` each
rank embeds a disjoint shard and all ranks receive the gathered result.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.base import ImageDataset, ImageTextData, from_workers
from ..data.specs import open_data
from ..dist import check_device, rank_world
from ..errors import UserError
from ..log import get_logger
from ..measures.checks import coarsest
from ..progress import bar
from .build import Loaded, make_preprocess, make_tokenizer
from .checkpoints import load_checkpoint
from .embeddings import Embeddings
from .identity import (
    CACHE_VERSION,
    _model_id,
    _spec_id,
    cache_key,
    default_cache_dir,
    model_hash,
    param_shapes,
    weights_precision,
)

log = get_logger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 autocast on CUDA, fp32 elsewhere


def _resolve(model_or_spec, arch=None) -> Loaded:
    if isinstance(model_or_spec, Loaded):
        return model_or_spec
    if isinstance(model_or_spec, (str, Path)):
        return load_checkpoint(model_or_spec, model=arch)
    if isinstance(model_or_spec, tuple) and len(model_or_spec) == 3:
        return Loaded(*model_or_spec)
    if isinstance(model_or_spec, torch.nn.Module):
        info = getattr(model_or_spec, "sdtools_info", None)
        if not info:
            raise UserError(
                "a bare model needs its preprocess and tokenizer: pass "
                "(model, preprocess, tokenizer) or a checkpoint spec"
            )
        cfg = info["model_cfg"]
        return Loaded(model_or_spec, make_preprocess(cfg), make_tokenizer(cfg))
    raise UserError(f"cannot embed with a {type(model_or_spec).__name__}")


def embed(
    model_or_spec,
    dataset,
    batch_size: int = 256,
    device=None,
    *,
    arch=None,
    cache: bool = True,
    cache_dir=None,
    num_workers: int = 0,
    progress: bool = True,
    amp: bool = True,
    shard: bool = True,
    precision: str = "auto",
) -> Embeddings:
    """Embed every image and caption of ``dataset`` (a dataset or data SPEC) with a model.

    ``model_or_spec``: a checkpoint spec (see :func:`sdtools.load_checkpoint`), the
    ``(model, preprocess, tokenizer)`` it returns, or a model that came from it. Embeddings
    are L2-normalised float32. ``precision``: ``fp32``, ``bf16`` (bfloat16 autocast, on any
    device) or ``auto`` (bf16 on CUDA, fp32 elsewhere; ``amp=False`` makes it fp32). With
    ``cache`` a result is stored under (checkpoint content, data, transform, device type,
    precision); a checkpoint file that hits the cache is not even loaded. ``shard``: under
    ``torchrun`` every rank embeds a share and all receive the result (a collective: every
    rank must call); ``shard=False`` embeds everything here.

    Parameters
    ----------
    model_or_spec : str, Loaded or model
        What to embed with.
    dataset : str or dataset
        A data SPEC (``synthetic:...``, ``csv:PATH``, ...) or an opened dataset.
    batch_size : int
        Images or captions per forward pass.
    device : str, optional
        Where to run (default: CPU).
    arch : str, optional
        Architecture for checkpoint files that do not name one.
    cache, cache_dir : bool, str
        Use the embedding cache (``$SDTOOLS_CACHE`` by default).
    num_workers : int
        DataLoader workers decoding images.
    progress : bool
        Progress bars.
    amp : bool
        With ``precision="auto"``: bfloat16 autocast on CUDA (False: float32 there too).
    shard : bool
        Under ``torchrun``, split the work over the ranks (a collective: every rank must
        call); False embeds everything in this process.
    precision : str
        ``auto``, ``fp32`` or ``bf16``: the compute precision, recorded in ``meta``.

    Returns
    -------
    Embeddings
        ``image`` (n_images, D), ``text`` (n_texts, D), ``image_of_text`` and ``meta``.

    Raises
    ------
    UserError
        ``dataset`` is neither a SPEC nor a dataset; ``batch_size`` is not an integer of at
        least 1 or ``num_workers`` not one of at least 0; ``precision`` is not ``auto``,
        ``fp32`` or ``bf16``; ``model_or_spec`` is something that cannot embed (a bare
        model without its preprocess and tokenizer).
    DeviceError
        ``device`` is not one this machine has.
    CheckpointError
        A checkpoint spec that cannot be loaded (see :func:`load_checkpoint`).
    DataError
        A data SPEC that cannot be opened, or an image that cannot be read.

    See Also
    --------
    Embeddings : The result.
    load_checkpoint : What a checkpoint spec resolves to.
    open_data : What a data SPEC resolves to.
    rotation_report : Compares two checkpoints' Embeddings of one probe.

    Examples
    --------
    >>> import os, tempfile, sdtools
    >>> from sdtools.models.build import build_model
    >>> from sdtools.models.checkpoints import save_safetensors
    >>> from sdtools.models.configs import tiny_clip_cfg
    >>> cfg = tiny_clip_cfg(embed_dim=16, width=64, layers=1, patch_size=8)
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> save_safetensors(build_model(cfg), path, cfg)
    >>> e = sdtools.embed(path, "synthetic:domain=0,split=test,n=8", cache=False, progress=False)
    >>> e.image.shape, e.n_texts, e.meta["precision"]
    ((8, 16), 24, 'float32')
    """
    if not isinstance(dataset, (str, Path, ImageTextData)):
        raise UserError(f"dataset must be a data SPEC (such as 'synthetic' or 'csv:PATH') or a "
                        f"dataset, got {type(dataset).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise UserError(f"num_workers must be an integer >= 0 (0: decode in this process), got "
                        f"{num_workers!r}")
    device, use_amp, compute = _compute(device, precision, amp)
    data = open_data(dataset) if isinstance(dataset, (str, Path)) else dataset
    is_spec = isinstance(model_or_spec, (str, Path))
    model_id = _spec_id(model_or_spec, arch) if (cache and is_spec) else None
    loaded = None
    if cache and model_id is None:
        loaded = _resolve(model_or_spec, arch)
        model_id = _model_id(loaded)
    path = None
    if cache:
        assert model_id is not None  # set above whenever cache is on
        path = (Path(cache_dir or default_cache_dir())
                / f"{cache_key(model_id, data, compute)}.npz")
        if path.exists():
            try:
                return Embeddings.load(path)
            except UserError:  # a damaged entry is a miss: recompute and rewrite it
                if progress:
                    log.warning("embedding cache entry %s is damaged; recomputing it",
                                path.name)
    loaded = loaded or _resolve(model_or_spec, arch)
    model: Any = loaded.model.to(device).eval()  # open_clip's CLIP: encode_image, encode_text
    rank, world = rank_world() if shard else (0, 1)
    img_idx = np.arange(data.n_images)[rank::world]
    txt_idx = np.arange(len(data.captions))[rank::world]
    dim = None
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                enabled=use_amp):
        # ImageDataset is a map-style dataset by protocol, without torch's base class
        images: torch.utils.data.Dataset[tuple[int, torch.Tensor]] = torch.utils.data.Subset(
            ImageDataset(data, loaded.preprocess), img_idx.tolist())  # type: ignore[arg-type]
        loader = torch.utils.data.DataLoader(
            images,
            batch_size=batch_size, num_workers=num_workers,
            pin_memory=device.type == "cuda",
        )
        pbar = bar(progress and rank == 0, len(img_idx) + len(txt_idx), "embedding")
        img_out = _encode_images(model, loader, device, pbar)
        txt_out = []
        for s in range(0, len(txt_idx), batch_size):
            caps = [data.captions[j] for j in txt_idx[s : s + batch_size]]
            f = model.encode_text(loaded.tokenizer(caps).to(device), normalize=True)
            txt_out.append(f.float().cpu())
            pbar.update(len(caps))
        pbar.close()
    img = torch.cat(img_out) if img_out else None
    txt = torch.cat(txt_out) if txt_out else None
    assert img is not None and txt is not None  # each process has images and captions
    if world > 1:
        img, txt = _gather(img, img_idx, data.n_images), _gather(txt, txt_idx,
                                                                 len(data.captions))
    dim = img.shape[1]
    info = getattr(loaded.model, "sdtools_info", {}) or {}
    meta = {
        "checkpoint": info.get("spec", "in-memory model"),
        "arch": info.get("arch"),
        "model_cfg": info.get("model_cfg"),
        "model_sha256": model_hash(loaded.model),
        "param_shapes": param_shapes(loaded.model),
        "data": data.spec,
        "probe": data.probe_id(),
        "n_images": data.n_images,
        "n_texts": len(data.captions),
        "dim": dim,
        **compute,  # device type and autocast dtype: part of the embeddings' identity
        # the coarsest float format in play: weights rounded to half precision, or bf16 autocast
        "precision": coarsest(weights_precision(loaded.model),
                              "bfloat16" if use_amp else "float32"),
    }
    if data.domains is not None:
        meta["domains"] = [d.item() if hasattr(d, "item") else d for d in data.domains]
    emb = Embeddings(img.numpy(), txt.numpy(), data.image_of_text, meta)
    if path is not None and rank == 0 and rank_world()[0] == 0:
        try:
            emb.save(path)
        except OSError as exc:  # a cache is a convenience: the result stands without it
            log.warning("cannot write the embedding cache entry %s (%s); going on without it",
                        path, exc.strerror or type(exc).__name__)
    return emb


def _compute(device, precision: str, amp: bool = True):
    """``(torch device, autocast on?, compute record)`` of a device and precision request."""
    check_device(device)
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    use_amp = precision == "bf16" or (precision == "auto" and amp and device.type == "cuda")
    return device, use_amp, {"device": device.type, "autocast": "bfloat16" if use_amp else None}


def _encode_images(model, loader, device, pbar) -> list[torch.Tensor]:
    out = []
    for _, images in from_workers(loader):
        f = model.encode_image(images.to(device, non_blocking=True), normalize=True)
        out.append(f.float().cpu())
        pbar.update(len(images))
    return out


class ModelRef:
    """A checkpoint spec or a loaded model, loaded at most once (and not at all when every
    result it is asked for is in the cache), with the identity the cache files it under."""

    def __init__(self, model_or_spec, arch=None, cache: bool = True):
        self.source, self.arch = model_or_spec, arch
        self._loaded = model_or_spec if isinstance(model_or_spec, Loaded) else None
        self._id = None
        if cache and self._loaded is None and isinstance(model_or_spec, (str, Path)):
            self._id = _spec_id(model_or_spec, arch)

    @property
    def loaded(self) -> Loaded:
        if self._loaded is None:
            self._loaded = _resolve(self.source, self.arch)
        return self._loaded

    @property
    def model_id(self) -> str:
        if self._id is None:
            self._id = _model_id(self.loaded)
        return self._id

    def info(self) -> dict:
        """What names the model in results: checkpoint, architecture (loads nothing)."""
        if isinstance(self.source, (str, Path)):
            return {"checkpoint": str(self.source), "arch": self.arch}
        i = getattr(self.loaded.model, "sdtools_info", None) or {}
        return {"checkpoint": i.get("spec", "in-memory model"), "arch": i.get("arch")}


def _cached_array(path: Path | None, make, progress: bool) -> np.ndarray:
    """An array from the cache file ``path`` (an ``.npz`` of one array, no pickles), else
    ``make()`` written there atomically; a damaged entry is a miss."""
    from ..io import atomic_path

    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["x"]
        except (OSError, ValueError, KeyError, EOFError):
            if progress:
                log.warning("cache entry %s is damaged; recomputing it", path.name)
    x = make()
    if path is not None and rank_world()[0] == 0:
        with atomic_path(path, ".npz") as tmp:
            np.savez(tmp, x=x)
    return x


def embed_images(ref: ModelRef, data: ImageTextData, batch_size: int = 256, device=None, *,
                 cache: bool = True, cache_dir=None, num_workers: int = 0,
                 progress: bool = True, precision: str = "auto") -> np.ndarray:
    """(n_images, D) L2-normalised float32 image embeddings of ``data`` alone (no captions:
    what classification needs), cached like :func:`embed` under (checkpoint content, data,
    transform, device type, precision). Runs in this process (no sharding)."""
    device, use_amp, compute = _compute(device, precision)
    path = None
    if cache:
        key = cache_key(ref.model_id, data, {**compute, "images_only": True})
        path = Path(cache_dir or default_cache_dir()) / f"{key}.images.npz"

    def make():
        loaded = ref.loaded
        model = loaded.model.to(device).eval()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                    enabled=use_amp):
            loader = torch.utils.data.DataLoader(
                ImageDataset(data, loaded.preprocess), batch_size=batch_size,
                num_workers=num_workers, pin_memory=device.type == "cuda")
            pbar = bar(progress, data.n_images, "images")
            out = _encode_images(model, loader, device, pbar)
            pbar.close()
        return torch.cat(out).numpy()

    return _cached_array(path, make, progress)


def embed_classes(ref: ModelRef, classnames, templates, device=None, *, batch_size: int = 256,
                  cache: bool = True, cache_dir=None, progress: bool = False,
                  precision: str = "auto") -> np.ndarray:
    """(n_classes, D) class text embeddings: each class's prompts (every template filled with
    its name as ``{c}``) embedded and L2-normalised, their mean normalised again (CLIP's and
    CLIP_benchmark's zero-shot classifier). Computed once per checkpoint, class names and
    templates, then read from the cache."""
    device, use_amp, compute = _compute(device, precision)
    path = None
    if cache:
        h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "model": ref.model_id,
                                       "classes": list(classnames), "templates": list(templates),
                                       "compute": compute}, sort_keys=True).encode())
        path = Path(cache_dir or default_cache_dir()) / f"{h.hexdigest()[:32]}.classes.npz"

    def make():
        loaded = ref.loaded
        model = loaded.model.to(device).eval()
        prompts = [t.format(c=c) for c in classnames for t in templates]
        feats = []
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                    enabled=use_amp):
            pbar = bar(progress, len(prompts), "class prompts")
            for s in range(0, len(prompts), batch_size):
                tok = loaded.tokenizer(prompts[s : s + batch_size]).to(device)
                feats.append(model.encode_text(tok, normalize=True).float().cpu())
                pbar.update(min(batch_size, len(prompts) - s))
            pbar.close()
        f = torch.cat(feats).reshape(len(classnames), len(templates), -1).mean(1)
        return torch.nn.functional.normalize(f, dim=-1).numpy()

    return _cached_array(path, make, progress)


def _gather(local: torch.Tensor, idx: np.ndarray, n: int) -> torch.Tensor:
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, (idx, local.numpy()))
    out = np.empty((n, parts[0][1].shape[1]), dtype=np.float32)
    for i, f in parts:
        out[i] = f
    return torch.from_numpy(out)
