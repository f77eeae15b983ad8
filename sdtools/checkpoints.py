"""One loader for every CLIP checkpoint kind, never unpickling arbitrary code.

Supported specs (see :func:`load_checkpoint`):

- a modx checkpoint (``.pt``): ``{"format": "modx", "model_cfg": ..., "state_dict": ...}``;
- an open_clip trainer checkpoint ``{"epoch", "name", "state_dict", ...}`` (keys possibly
  prefixed ``module.``) or a bare state dict, with ``model=ARCH`` (a built-in open_clip name or
  a model-config JSON file);
- the official Mod-X checkpoints ``{"model_state_dict": ...}`` and any state dict in OpenAI
  CLIP's key layout (ViT or ModifiedResNet, any text depth): the architecture is inferred from
  the tensors, with QuickGELU, in float32;
- ``.safetensors`` files (a ``model_cfg`` JSON in their metadata names the architecture);
- ``ARCH:PRETRAINED_TAG`` (``ViT-B-32:openai``) resolved by open_clip from its local cache only.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import NamedTuple

import torch

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
MODX_FORMAT = "modx"


class CheckpointError(ValueError):
    """A checkpoint spec that cannot be loaded; the message says why and what to do."""


class Loaded(NamedTuple):
    model: torch.nn.Module
    preprocess: object
    tokenizer: object


# --------------------------------------------------------------------------- reading files


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_checkpoint_file(path) -> tuple[dict, dict]:
    """Read a ``.pt``/``.pth``/``.bin`` (``weights_only=True``) or ``.safetensors`` file.

    Returns ``(obj, safetensors_metadata)``. Pickles that need arbitrary code are refused.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass the checkpoint file inside it")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            return load_file(str(path)), meta
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "unpickling error"
        if "Weights only load failed" in str(exc) or "Unsupported" in str(exc):
            raise CheckpointError(
                f"refused to load {path}: it needs arbitrary code to unpickle "
                f"({msg[:120]}); only tensor checkpoints are loaded (weights_only=True). "
                "Re-save it as a state dict or .safetensors"
            ) from None
        raise CheckpointError(f"{path} is not a checkpoint ({msg[:160]})") from None
    except Exception as exc:  # torch raises many types on garbage (KeyError, RuntimeError, ...)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is not a checkpoint ({msg[:160]})") from None
    return obj, {}


# --------------------------------------------------------------------------- architectures


def resolve_model_cfg(arch) -> tuple[str, dict]:
    """``arch`` is a built-in open_clip name, a model-config JSON path, or a config dict."""
    import open_clip

    if isinstance(arch, dict):
        return arch.get("name", "custom"), _unwrap_cfg(copy.deepcopy(arch))
    arch = str(arch)
    if arch.endswith(".json") or os.path.sep in arch:
        p = Path(arch)
        if not p.exists():
            raise CheckpointError(f"model config file not found: {p}")
        try:
            cfg = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{p} is not valid JSON ({exc})") from None
        return p.stem, _unwrap_cfg(cfg)
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        names = open_clip.list_models()
        near = [n for n in names if arch.lower().split("-")[0] in n.lower()][:8] or names[:8]
        raise CheckpointError(
            f"unknown architecture {arch!r}; use an open_clip model name (e.g. {near}) or a "
            "model-config JSON file"
        )
    return arch, copy.deepcopy(cfg)


def _unwrap_cfg(cfg: dict) -> dict:
    cfg = cfg.get("model_cfg", cfg)
    if not isinstance(cfg, dict) or "vision_cfg" not in cfg or "text_cfg" not in cfg:
        raise CheckpointError(
            "a model config needs 'embed_dim', 'vision_cfg' and 'text_cfg' (open_clip's format)"
        )
    cfg.pop("name", None)
    return cfg


def build_model(cfg: dict) -> torch.nn.Module:
    """Build an open_clip model (float32, eval mode) from a model-config dict."""
    import open_clip

    cfg = copy.deepcopy(cfg)
    cfg.pop("preprocess_cfg", None)
    custom = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    cls = open_clip.CustomTextCLIP if custom else open_clip.CLIP
    try:
        model = cls(**cfg)
    except TypeError as exc:
        raise CheckpointError(f"model config is not understood by open_clip ({exc})") from None
    return model.float().eval()


def make_preprocess(cfg: dict):
    import open_clip

    pp = cfg.get("preprocess_cfg", {})
    size = cfg["vision_cfg"].get("image_size", 224)
    return open_clip.image_transform(
        size, is_train=False, mean=tuple(pp.get("mean", OPENAI_MEAN)),
        std=tuple(pp.get("std", OPENAI_STD)),
    )


def make_tokenizer(cfg: dict):
    import open_clip

    text = cfg["text_cfg"]
    if text.get("hf_tokenizer_name"):
        return open_clip.tokenizer.HFTokenizer(text["hf_tokenizer_name"],
                                               context_length=text.get("context_length", 77))
    return open_clip.tokenizer.SimpleTokenizer(context_length=text.get("context_length", 77))


def infer_openai_cfg(sd: dict) -> dict:
    """Infer an open_clip config from a state dict in OpenAI CLIP's layout (ViT or ResNet).

    Attention heads are not stored in the weights: like OpenAI (and open_clip), heads are
    ``width // 64``. QuickGELU is used, as in OpenAI's and the official Mod-X models.
    """
    def count(prefix: str) -> int:
        return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})

    if "visual.proj" in sd:
        width = sd["visual.conv1.weight"].shape[0]
        patch = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = {
            "layers": count("visual.transformer.resblocks."),
            "width": width,
            "patch_size": patch,
            "image_size": patch * grid,
            "mlp_ratio": sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        }
    else:
        out = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = {
            "layers": [count(f"visual.layer{b}.") for b in (1, 2, 3, 4)],
            "width": sd["visual.layer1.0.conv1.weight"].shape[0],
            "image_size": out * 32,
        }
    width = sd["ln_final.weight"].shape[0]
    text = {
        "context_length": sd["positional_embedding"].shape[0],
        "vocab_size": sd["token_embedding.weight"].shape[0],
        "width": width,
        "heads": max(width // 64, 1),
        "layers": count("transformer.resblocks."),
        "mlp_ratio": sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
    }
    return {"embed_dim": sd["text_projection"].shape[1], "quick_gelu": True,
            "vision_cfg": vision, "text_cfg": text}


def _looks_openai(sd: dict) -> bool:
    return "text_projection" in sd and "ln_final.weight" in sd and (
        "visual.proj" in sd or "visual.attnpool.positional_embedding" in sd
    ) and "transformer.resblocks.0.mlp.c_fc.weight" in sd


def _clean_state_dict(sd: dict) -> dict:
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    for key in ("input_resolution", "context_length", "vocab_size"):
        sd.pop(key, None)
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def load_state_dict_checked(model: torch.nn.Module, sd: dict, arch: str) -> None:
    """Load ``sd`` strictly; on mismatch say which keys are missing/unexpected/misshapen."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {shapes[:2]})")
        raise CheckpointError(
            f"the tensors do not fit architecture {arch}: " + "; ".join(parts)
            + ". Pass the right --model ARCH (or model-config JSON)"
        )
    model.load_state_dict(sd, strict=True)


# --------------------------------------------------------------------------- pretrained tags


def _cached_pretrained(arch: str, tag: str, cache_dir=None) -> str:
    """Path of cached weights for ``arch:tag``; never touches the network."""
    import open_clip
    from open_clip import pretrained as P

    cfg = P.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = P.list_pretrained_tags_by_model(arch)
        raise CheckpointError(
            f"open_clip has no pretrained tag {tag!r} for {arch!r}"
            + (f"; known tags: {tags}" if tags else "; is the architecture name right?")
        )
    del open_clip
    looked = []
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub ships with open_clip
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (
                hub.rstrip("/"), "open_clip_pytorch_model.bin")
            names = [filename, *P._get_safe_alternatives(filename)]
            for name in names:
                hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
                if isinstance(hit, str) and os.path.isfile(hit):
                    return hit
            looked.append(f"Hugging Face cache ({repo}/{filename})")
    url = cfg.get("url", "")
    if url:
        d = cache_dir or os.path.expanduser("~/.cache/clip")
        target = os.path.join(d, os.path.basename(url))
        if os.path.isfile(target):
            return target
        looked.append(target)
    raise CheckpointError(
        f"weights for {arch}:{tag} are not cached (looked in {', '.join(looked) or 'nothing'}) "
        "and nothing is downloaded here; fetch them once on a machine with network access "
        "(open_clip.create_model_and_transforms) or pass a local checkpoint file with --model"
    )


def _is_pretrained_spec(spec: str) -> bool:
    if os.path.exists(spec) or ":" not in spec:
        return False
    arch, _, tag = spec.partition(":")
    return bool(arch) and bool(tag) and "/" not in arch and not arch.endswith((".pt", ".pth"))


# --------------------------------------------------------------------------- entry point


def load_checkpoint(spec, model=None, device=None, cache_dir=None) -> Loaded:
    """Load a checkpoint spec into ``(model, preprocess, tokenizer)`` (float32, eval mode).

    ``model``: open_clip architecture name or model-config JSON for files that do not name
    their architecture (open_clip trainer checkpoints, bare state dicts in open_clip layout).
    The returned model carries ``model.sdtools_info`` (spec, content hash, model config).
    """
    spec = str(spec)
    if _is_pretrained_spec(spec):
        arch, _, tag = spec.partition(":")
        if model is not None:
            raise CheckpointError(f"{spec} names its architecture; drop --model")
        name, cfg = resolve_model_cfg(arch)
        path = _cached_pretrained(arch, tag, cache_dir=cache_dir)
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
    net = build_model(cfg)
    load_state_dict_checked(net, sd, name)
    if device is not None:
        net = net.to(device)
    net.sdtools_info = {"spec": spec, "sha256": content, "arch": name, "model_cfg": cfg}
    return Loaded(net, make_preprocess(cfg), make_tokenizer(cfg))


def _state_dict_and_cfg(obj, meta, arch, name, cfg, spec):
    if not isinstance(obj, dict):
        raise CheckpointError(f"{spec} is not a checkpoint (found a {type(obj).__name__})")
    if obj.get("format") == MODX_FORMAT:
        name, cfg = obj.get("arch", "modx"), _unwrap_cfg(obj["model_cfg"])
        sd = obj["state_dict"]
    elif "model_state_dict" in obj:  # official Mod-X checkpoints (OpenAI layout)
        sd = obj["model_state_dict"]
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
    sd = _clean_state_dict(dict(sd))
    if arch is not None:
        name, cfg = resolve_model_cfg(arch)
    elif cfg is None and "model_cfg" in meta:
        name, cfg = meta.get("arch", "safetensors"), _unwrap_cfg(json.loads(meta["model_cfg"]))
    elif cfg is None and _looks_openai(sd):
        name, cfg = "openai-layout (inferred)", infer_openai_cfg(sd)
    elif cfg is None:
        raise CheckpointError(
            f"{spec} does not name its architecture; pass --model ARCH (an open_clip name such "
            "as ViT-B-32, or a model-config JSON file)"
        )
    return sd, name, cfg


def save_safetensors(model: torch.nn.Module, path, model_cfg: dict, arch: str = "custom"):
    """Write a model's weights and config as ``.safetensors`` (atomic)."""
    from safetensors.torch import save_file

    from .io import atomic_path

    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(sd, str(tmp), metadata={"model_cfg": json.dumps(model_cfg), "arch": arch})
