"""Zero-shot classification throughput from JPEG files: ``sdtools.zero_shot`` on an
ImageFolder against CLIP_benchmark's zero-shot classifier and classification loop
(``zero_shot_classifier`` + ``run_classification``) on torchvision's ImageFolder, one random-init
ViT-B-32 at 224 px, the same transform, batch size and DataLoader workers, fp32."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .harness import device

N_CLASSES = 8
PER_CLASS = 16
WORKERS = 2
BATCH = 32


def _folder(root: Path) -> None:
    """Photo-like 640 x 480 JPEGs (smooth colour fields with texture), one folder per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    for k in range(N_CLASSES):
        (root / f"class_{k}").mkdir(parents=True)
        for i in range(PER_CLASS):
            a, b, c = rng.uniform(0.005, 0.03, 3)
            base = np.stack([np.sin(a * xx + k), np.cos(b * yy - i), np.sin(c * (xx + yy))], -1)
            img = (127 + 90 * base + rng.normal(0, 12, base.shape)).clip(0, 255)
            Image.fromarray(img.astype(np.uint8)).save(root / f"class_{k}" / f"{i:03d}.jpg",
                                                       quality=90)


def bench_zeroshot_jpeg() -> dict:
    import torchvision
    from clip_benchmark.metrics import zeroshot_classification as cb

    import sdtools
    from sdtools.data.labels import SIMPLE_TEMPLATES
    from sdtools.models.build import (
        Loaded,
        build_model,
        make_preprocess,
        make_tokenizer,
        resolve_model_cfg,
    )

    dev = device()
    torch.manual_seed(0)
    _, cfg = resolve_model_cfg("ViT-B-32")
    model = build_model(cfg).to(dev).eval()
    model.sdtools_info = {"spec": "ViT-B-32 (random init)", "sha256": None, "arch": "ViT-B-32",
                          "model_cfg": cfg}
    loaded = Loaded(model, make_preprocess(cfg), make_tokenizer(cfg))
    n = N_CLASSES * PER_CLASS
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "val"
        _folder(root)
        names = [f"class {k}" for k in range(N_CLASSES)]
        res = {}

        def ours():
            res["ours"] = sdtools.zero_shot(loaded, f"imagefolder:{root}", device=dev,
                                            batch_size=BATCH, cache=False,
                                            num_workers=WORKERS, precision="fp32")

        def theirs():
            ds = torchvision.datasets.ImageFolder(str(root), transform=loaded.preprocess)
            loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, num_workers=WORKERS)
            clf = cb.zero_shot_classifier(model, loaded.tokenizer, names, list(SIMPLE_TEMPLATES),
                                          dev, amp=False)
            res["theirs"] = cb.run_classification(model, clf, loader, dev, amp=False)

        t = {"ours": [], "theirs": []}
        for _ in range(2):  # interleaved, best of 2
            for name, fn in (("theirs", theirs), ("ours", ours)):
                t0 = time.perf_counter()
                fn()
                t[name].append(time.perf_counter() - t0)
    o, b = min(t["ours"]), min(t["theirs"])
    logits, _ = res["theirs"]
    same = bool(np.array_equal(res["ours"].pred, logits.argmax(1).numpy()))
    return {
        "name": f"zero-shot, {n} JPEGs 640x480 in an ImageFolder ({N_CLASSES} classes, 1 "
                f"template), ViT-B-32 random init at 224 px, batch {BATCH}, {WORKERS} workers, "
                f"fp32 on {dev}",
        "baseline": "CLIP_benchmark zero_shot_classifier + run_classification on torchvision "
                    "ImageFolder, same transform, batch and workers",
        "baseline_s": b, "ours_s": o, "ours_img_s": n / o, "baseline_img_s": n / b,
        "throughput_ratio": b / o, "same_predictions": same,
        "target": "throughput >= 0.9x CLIP_benchmark's; the same predictions",
        "pass": b / o >= 0.9 and same,
    }


BENCHES = {"zeroshot_jpeg": bench_zeroshot_jpeg}
