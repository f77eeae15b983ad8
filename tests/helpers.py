"""Shared test helpers: tiny open_clip models (random init) and checkpoint files."""

import json

import torch

from sdtools.checkpoints import Loaded, build_model, make_preprocess, make_tokenizer
from sdtools.models import tiny_clip_cfg


def tiny_cfg(**kw):
    base = dict(embed_dim=32, width=64, layers=1, image_size=32, patch_size=8,
                context_length=24)
    base.update(kw)
    return tiny_clip_cfg(**base)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = tiny_cfg(**kw)
    m = build_model(cfg)
    m.sdtools_info = {"spec": f"tiny-{seed}", "sha256": None, "arch": "tiny", "model_cfg": cfg}
    return Loaded(m, make_preprocess(cfg), make_tokenizer(cfg)), cfg


def save_modx(path, seed=0, **kw):
    loaded, cfg = tiny_model(seed, **kw)
    torch.save({"format": "modx", "arch": "tiny", "model_cfg": cfg,
                "state_dict": loaded.model.state_dict(), "phase": 0, "step": 0}, path)
    return loaded, cfg


def write_cfg(path, cfg):
    path.write_text(json.dumps(cfg))
    return path
