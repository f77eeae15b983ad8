"""Benchmarks of extraction, the embedding cache and the synthetic stream."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .harness import ROOT, measure

# a small but not trivial model: 64 px images, width 256, 4 layers per tower
MODEL = dict(embed_dim=256, width=256, layers=4, image_size=64, patch_size=8, context_length=32)
DATA = "synthetic:image_size=64,n=600,domain=0+1"


def _model(seed=0):
    from sdtools.models.build import Loaded, build_model, make_preprocess, make_tokenizer
    from sdtools.models.configs import tiny_clip_cfg

    torch.manual_seed(seed)
    cfg = tiny_clip_cfg(**MODEL)
    net = build_model(cfg)
    net.sdtools_info = {"spec": f"bench-{seed}", "sha256": None, "arch": "bench",
                        "model_cfg": cfg}
    return Loaded(net, make_preprocess(cfg), make_tokenizer(cfg)), cfg


def bench_extraction() -> dict:
    from sdtools.data.base import ImageDataset
    from sdtools.data.specs import open_data
    from sdtools.models.extract import embed

    from .harness import device

    loaded, _ = _model()
    data = open_data(DATA)
    bs = 256
    dev = torch.device(device())
    loaded.model.to(dev)
    amp = dev.type == "cuda"  # extraction runs in bfloat16 autocast on a GPU, as embed does

    def bare():
        loader = torch.utils.data.DataLoader(ImageDataset(data, loaded.preprocess),
                                             batch_size=bs)
        out = []
        with torch.inference_mode(), torch.autocast(dev.type, torch.bfloat16, enabled=amp):
            for _, x in loader:
                out.append(loaded.model.encode_image(x.to(dev)).float().cpu())
            for s in range(0, len(data.captions), bs):
                tok = loaded.tokenizer(data.captions[s:s + bs]).to(dev)
                out.append(loaded.model.encode_text(tok).float().cpu())
        return out

    base = measure(bare, repeat=3)
    ours = measure(lambda: embed(loaded, data, batch_size=bs, cache=False, progress=False,
                                 device=dev), repeat=3)
    items = data.n_images + len(data.captions)
    ratio = base["seconds"] / ours["seconds"]
    return {
        "name": f"extraction {data.n_images} images + {len(data.captions)} captions, "
                f"ViT width 256 x 4 layers, 64 px, batch {bs}",
        "baseline": "bare loop: same DataLoader, encode_image/encode_text, inference_mode",
        "baseline_s": base["seconds"],
        "ours_s": ours["seconds"],
        "items_per_s": items / ours["seconds"],
        "throughput_ratio": ratio,
        "target": "throughput >= 0.95x the bare loop",
        "pass": ratio >= 0.95,
    }


def bench_cached_rotation() -> dict:
    from sdtools.models.checkpoints import save_safetensors

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in (0, 1):
            loaded, cfg = _model(seed)
            save_safetensors(loaded.model, tmp / f"m{seed}.safetensors", cfg, arch="bench")
        env = dict(os.environ, SDTOOLS_CACHE=str(tmp / "cache"), HF_HUB_OFFLINE="1")
        cmd = [sys.executable, "-m", "sdtools.cli", "rotation", str(tmp / "m0.safetensors"),
               str(tmp / "m1.safetensors"), "--data", DATA.replace("n=600", "n=1500"), "-q"]
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
            times.append(time.perf_counter() - t0)
    speedup = times[0] / times[1]
    return {
        "name": "sdtools rotation end to end (2 checkpoints, 3000 images, 9000 captions), "
                "second run from the cache",
        "baseline": "the same command, first run (cold cache)",
        "baseline_s": times[0],
        "ours_s": times[1],
        "speedup": speedup,
        "target": "second run >= 10x faster",
        "pass": speedup >= 10,
    }


def bench_synthetic_rate() -> dict:
    from sdtools.data.synthetic import SyntheticConfig, SyntheticData

    res = {}
    for size in (32, 64):
        cfg = SyntheticConfig(image_size=size)
        m = measure(lambda cfg=cfg: SyntheticData(cfg, (0,), "train", n=5000), repeat=2)
        res[f"{size}px_images_per_s"] = 5000 / m["seconds"]
    return {
        "name": "synthetic stream generation (render + captions), 5000 images",
        "baseline": "none (rate recorded)",
        **res,
        "target": "thousands of images per second",
        "pass": res["32px_images_per_s"] >= 1000,
    }


BENCHES = {
    "extraction": bench_extraction,
    "cached_rotation": bench_cached_rotation,
    "synthetic_rate": bench_synthetic_rate,
}
