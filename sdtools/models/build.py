"""Architectures: open_clip model configs, models, transforms and tokenizers built from them."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..errors import CheckpointError


class Loaded(NamedTuple):
    model: torch.nn.Module
    preprocess: Callable[..., Any]
    tokenizer: Callable[..., Any]


def resolve_model_cfg(arch) -> tuple[str, dict]:
    """``arch`` is a built-in open_clip name, a model-config JSON path, or a config dict."""
    import open_clip

    if isinstance(arch, dict):
        return arch.get("name", "custom"), unwrap_cfg(copy.deepcopy(arch))
    arch = str(arch)
    if arch.endswith(".json") or os.path.sep in arch:
        p = Path(arch)
        if not p.exists():
            raise CheckpointError(f"model config file not found: {p}")
        from ..io import check_regular_input

        check_regular_input(p, "the model config", CheckpointError)
        try:
            cfg = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{p} is not valid JSON ({exc})") from None
        return p.stem, unwrap_cfg(cfg)
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        names = open_clip.list_models()
        near = [n for n in names if arch.lower().split("-")[0] in n.lower()][:8] or names[:8]
        raise CheckpointError(
            f"unknown architecture {arch!r}; use an open_clip model name (e.g. {near}) or a "
            "model-config JSON file"
        )
    return arch, copy.deepcopy(cfg)


def unwrap_cfg(cfg: dict) -> dict:
    if not isinstance(cfg, dict):
        raise CheckpointError(f"a model config must be a JSON object with vision_cfg and "
                              f"text_cfg, got a {type(cfg).__name__}")
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
    except (TypeError, ValueError, RuntimeError, KeyError, ZeroDivisionError) as exc:
        why = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointError(f"the model config cannot build a model ({why}); check its "
                              "values (widths, layers, sizes must be positive)") from None
    return model.float().eval()


def preprocess_cfg(cfg: dict) -> dict:
    """The image preprocessing of a model config as open_clip composes it: its defaults, the
    config's ``preprocess_cfg`` (mean, std, interpolation, resize mode, fill colour; for
    ``ARCH:TAG`` the pretrained tag's), the vision tower's image size."""
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    d = merge_preprocess_dict(dataclasses.asdict(PreprocessCfg()), cfg.get("preprocess_cfg") or {})
    size = cfg["vision_cfg"].get("image_size", 224)
    d["size"] = tuple(size) if isinstance(size, (list, tuple)) else size
    return d


def make_preprocess(cfg: dict, train: bool = False):
    """open_clip's evaluation transform for a model config (``train``: its training
    augmentation, a random resized crop)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**preprocess_cfg(cfg)), is_train=train)


def make_tokenizer(cfg: dict):
    import open_clip

    text = cfg["text_cfg"]
    if text.get("hf_tokenizer_name"):
        return open_clip.tokenizer.HFTokenizer(text["hf_tokenizer_name"],
                                               context_length=text.get("context_length", 77))
    return open_clip.tokenizer.SimpleTokenizer(context_length=text.get("context_length", 77))


def clean_state_dict(sd: dict) -> dict:
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    # OpenAI's archives carry these as tensors; attn_mask is a buffer traced archives keep
    for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):
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


