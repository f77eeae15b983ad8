"""One loader for every CLIP checkpoint kind, never unpickling arbitrary code.

Supported specs (see :func:`load_checkpoint`):

- a modx checkpoint (``.pt``): ``{"format": "modx", "model_cfg": ..., "state_dict": ...}``;
- an open_clip trainer checkpoint ``{"epoch", "name", "state_dict", ...}`` (keys possibly
  prefixed ``module.``) or a bare state dict, with ``model=ARCH`` (a built-in open_clip name or
  a model-config JSON file);
- the official Mod-X checkpoints ``{"model_state_dict": ...}`` and OpenAI's released
  TorchScript archives (read with ``torch.jit.load`` for their tensors only): OpenAI CLIP's key
  layout (ViT or ModifiedResNet, any text depth), the architecture inferred from the tensors,
  with QuickGELU (these formats settle it), in float32. Other files in that layout (open_clip
  trainer checkpoints, bare state dicts) need ``model=ARCH``: their activation cannot be read
  from the weights;
- ``.safetensors`` files (a ``model_cfg`` JSON in their metadata names the architecture);
- ``ARCH:PRETRAINED_TAG`` (``ViT-B-32:openai``) resolved by open_clip from its local cache only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..dist import check_device
from ..errors import CheckpointError
from .build import (
    Loaded,
    build_model,
    clean_state_dict,
    load_state_dict_checked,
    make_preprocess,
    make_tokenizer,
    resolve_model_cfg,
    unwrap_cfg,
)
from .openai import infer_openai_cfg, looks_openai
from .pretrained import cached_pretrained, is_pretrained_spec
from .reading import TORCHSCRIPT, file_sha256, read_checkpoint_file

MODX_FORMAT = "modx"

__all__ = ["CheckpointError", "Loaded", "load_checkpoint", "save_safetensors", "MODX_FORMAT"]


def pretrained_model_cfg(arch: str, tag: str) -> tuple[str, dict]:
    """The model config open_clip builds for ``ARCH:TAG``: the architecture's, with the tag's
    activation (QuickGELU for OpenAI's weights) and its preprocessing (mean, std,
    interpolation, resize mode)."""
    from open_clip import pretrained as P
    from open_clip.transform import merge_preprocess_dict

    name, cfg = resolve_model_cfg(arch)
    pcfg = P.get_pretrained_cfg(arch, tag) or {}
    if pcfg.get("quick_gelu"):
        cfg = {**cfg, "quick_gelu": True}
    pp = merge_preprocess_dict(cfg.get("preprocess_cfg") or {}, pcfg)
    if pp:
        cfg = {**cfg, "preprocess_cfg": {k: list(v) if isinstance(v, tuple) else v
                                         for k, v in pp.items()}}
    return name, cfg


def load_checkpoint(spec, model=None, device=None, cache_dir=None) -> Loaded:
    """Load a checkpoint spec into ``(model, preprocess, tokenizer)`` (float32, eval mode).

    ``model``: open_clip architecture name or model-config JSON for files that do not name
    their architecture (open_clip trainer checkpoints, bare state dicts in open_clip layout).
    The returned model carries ``model.sdtools_info`` (spec, content hash, model config).

    Parameters
    ----------
    spec : str or Path
        A checkpoint file (.pt, .safetensors, OpenAI's archives) or ``ARCH:PRETRAINED_TAG``.
    model : str, optional
        Architecture (open_clip name or model-config JSON) for files that do not name one.
    device : str, optional
        Where the model goes (default: CPU).
    cache_dir : str, optional
        open_clip's pretrained cache (``ARCH:TAG`` is read from it only, never downloaded).

    Returns
    -------
    Loaded
        ``(model, preprocess, tokenizer)``.

    Raises
    ------
    DeviceError
        ``device`` is not one this machine has.
    CheckpointError
        The file does not exist or is not a readable checkpoint; it does not name its
        architecture and ``model`` is not given, or names another one than ``model``; the
        architecture is unknown; an ``ARCH:TAG`` has no such tag or its weights are not
        cached; the state dict does not fit the architecture; or a weight holds NaN or Inf.

    See Also
    --------
    embed : Embeds a data set with the loaded model (or straight from the spec).
    zero_shot : Zero-shot classification with a checkpoint.
    linear_probe : A linear probe of a checkpoint's image embeddings.

    Examples
    --------
    >>> import os, tempfile, sdtools
    >>> from sdtools.models.build import build_model
    >>> from sdtools.models.checkpoints import save_safetensors
    >>> from sdtools.models.configs import tiny_clip_cfg
    >>> cfg = tiny_clip_cfg(embed_dim=16, width=64, layers=1, patch_size=8)
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> save_safetensors(build_model(cfg), path, cfg)
    >>> model, preprocess, tokenizer = sdtools.load_checkpoint(path)
    >>> model.training, tokenizer(["a red circle"]).shape[0]
    (False, 1)
    """
    check_device(device)
    spec = str(spec)
    if is_pretrained_spec(spec):
        arch, _, tag = spec.partition(":")
        if model is not None:
            raise CheckpointError(f"{spec} names its architecture; drop --model")
        name, cfg = pretrained_model_cfg(arch, tag)
        path: str | Path = cached_pretrained(arch, tag, cache_dir=cache_dir)
        obj, meta = read_checkpoint_file(path)
        content = f"{spec}:{file_sha256(path)}"
    else:
        path = Path(spec)
        if not path.exists():
            raise CheckpointError(
                f"checkpoint not found: {spec} (give a file, or ARCH:TAG such as ViT-B-32:openai)"
            )
        obj, meta = read_checkpoint_file(path)
        content = file_sha256(path)
        name, cfg = None, None
    sd, name, cfg = _state_dict_and_cfg(obj, meta, model, name, cfg, spec)
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{spec} holds NaN or Inf in {len(bad)} weight tensor(s) (first: "
                              f"{bad[0]}): the checkpoint is damaged or its training diverged")
    net = build_model(cfg)
    load_state_dict_checked(net, sd, name)
    if device is not None:
        net = net.to(device)
    # torch types a Module's attributes as Tensor | Module; this one is a plain dict
    net.sdtools_info = {  # type: ignore[assignment]
        "spec": spec, "sha256": content, "arch": name, "model_cfg": cfg}
    return Loaded(net, make_preprocess(cfg), make_tokenizer(cfg))


def _state_dict_and_cfg(obj, meta, arch, name, cfg, spec):
    settled = False  # does the file's format settle the activation (QuickGELU)?
    if not isinstance(obj, dict):
        raise CheckpointError(f"{spec} is not a checkpoint (found a {type(obj).__name__})")
    if obj.get("format") == MODX_FORMAT:
        if not isinstance(obj.get("model_cfg"), dict) or "state_dict" not in obj:
            raise CheckpointError(f"{spec} is a modx checkpoint without its model config or "
                                  "weights (damaged or hand-made); pass --model ARCH with a "
                                  "bare state dict, or re-save it with modx")
        name, cfg = obj.get("arch", "modx"), unwrap_cfg(obj["model_cfg"])
        sd = obj["state_dict"]
        _same_architecture(spec, name, cfg, arch)
        arch = None  # the file's own config, which --model may only repeat
    elif "model_state_dict" in obj:  # official Mod-X checkpoints (OpenAI layout)
        sd = obj["model_state_dict"]
        settled = True
    elif TORCHSCRIPT in obj:  # OpenAI's released archives (QuickGELU)
        sd = obj[TORCHSCRIPT]
        settled = True
    elif "state_dict" in obj and isinstance(obj["state_dict"], dict):  # open_clip trainer
        sd = obj["state_dict"]
    else:
        sd = obj
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor)
                                                     for v in sd.values()):
        raise CheckpointError(
            f"{spec} is not a checkpoint: no state dict of tensors found (keys: "
            f"{list(obj)[:5]})"
        )
    sd = clean_state_dict(dict(sd))
    if arch is not None and cfg is None and "model_cfg" in meta:
        _same_architecture(spec, meta.get("arch", "safetensors"),
                           unwrap_cfg(json.loads(meta["model_cfg"])), arch)
    if arch is not None:
        name, cfg = resolve_model_cfg(arch)
    elif cfg is None and "model_cfg" in meta:
        name, cfg = meta.get("arch", "safetensors"), unwrap_cfg(json.loads(meta["model_cfg"]))
    elif cfg is None and looks_openai(sd) and settled:
        name, cfg = "openai-layout (inferred)", infer_openai_cfg(sd)
    elif cfg is None and looks_openai(sd):
        raise CheckpointError(
            f"{spec} holds CLIP weights in OpenAI's key layout but does not say which activation "
            "its model uses (GELU or QuickGELU give different embeddings, and the weights "
            "cannot tell); pass --model ARCH (e.g. ViT-B-32 or ViT-B-32-quickgelu) or a "
            "model-config JSON"
        )
    elif cfg is None:
        raise CheckpointError(
            f"{spec} does not name its architecture; pass --model ARCH (an open_clip name such "
            "as ViT-B-32, or a model-config JSON file)"
        )
    return sd, name, cfg


def _same_architecture(spec, name: str, cfg: dict, arch) -> None:
    """A file that names its own architecture takes ``--model`` only when it says the same."""
    if arch is None:
        return
    other_name, other = resolve_model_cfg(arch)
    if unwrap_cfg(other) != cfg:
        raise CheckpointError(f"{spec} names its own architecture ({name}) and --model {arch} "
                              f"({other_name}) differs from it; drop --model for this file")


def save_safetensors(model: torch.nn.Module, path, model_cfg: dict, arch: str = "custom"):
    """Write a model's weights and config as ``.safetensors`` (atomic)."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(sd, str(tmp), metadata={"model_cfg": json.dumps(model_cfg), "arch": arch})
