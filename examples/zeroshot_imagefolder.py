"""Zero-shot and linear-probe classification of an ImageFolder, offline, on data it writes.

    python examples/zeroshot_imagefolder.py --out out/zeroshot

It writes a small ImageFolder (``OUT/colours/{train,val}/CLASS/*.png``: noisy squares of six
colours), a class-names file and a small random-init CLIP, then classifies ``val`` zero-shot
with OpenAI's 80 ImageNet templates and probes ``train`` -> ``val`` linearly. Give your own
checkpoint and folder to classify real data:

    sdtools zeroshot CKPT --data imagefolder:ROOT:templates=openai --json zs.json --plot cm.png
    sdtools linear-probe CKPT --train imagefolder:TRAIN --test imagefolder:VAL

A random-init model is at chance zero-shot (its text tower knows no colour words) while a
linear probe of its image features separates colours that differ this much: the two numbers
measure different things.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sdtools

COLOURS = {"red": (200, 40, 40), "green": (40, 170, 50), "blue": (40, 50, 200),
           "yellow": (220, 210, 40), "grey": (128, 128, 128), "purple": (130, 20, 140)}


def write_folder(root: Path, per_class: int, seed: int) -> None:
    """torchvision's ImageFolder layout: one folder per class, images inside."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = np.clip(np.array(rgb) + rng.normal(0, 40, (32, 32, 3)), 0, 255)
            Image.fromarray(a.astype(np.uint8)).save(root / name / f"{i:03d}.png")


def tiny_checkpoint(path: Path) -> Path:
    """A small random-init CLIP saved as safetensors (it names its own architecture)."""
    import torch

    from sdtools.models.build import build_model
    from sdtools.models.checkpoints import save_safetensors
    from sdtools.models.configs import tiny_clip_cfg

    torch.manual_seed(0)
    cfg = tiny_clip_cfg(embed_dim=32, width=64, layers=1, patch_size=8)
    save_safetensors(build_model(cfg), path, cfg)
    return path


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="zeroshot_example")
    ap.add_argument("--ckpt", default=None, help="a checkpoint (default: a tiny random CLIP)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    write_folder(out / "colours" / "train", 20, seed=0)
    write_folder(out / "colours" / "val", 10, seed=1)
    # display names in sorted folder order (blue, green, grey, purple, red, yellow)
    (out / "classnames.txt").write_text("\n".join(f"{c} square" for c in sorted(COLOURS)))
    ckpt = args.ckpt or str(tiny_checkpoint(out / "tiny.safetensors"))

    val = (f"imagefolder:{out / 'colours' / 'val'}:classnames={out / 'classnames.txt'},"
           "templates=openai")
    zs = sdtools.zero_shot(ckpt, val, precision="fp32", cache=False)
    print(f"zero-shot on {zs.n_images} images, {len(zs.classnames)} classes, "
          f"{zs.n_templates} templates: top-1 {zs.top1:.1f}%, top-5 {zs.top5:.1f}%, "
          f"mean per-class recall {zs.mean_per_class_recall:.1f}%")
    from sdtools.viz.classes import plot_confusion

    plot_confusion(zs, out / "confusion.png")

    lp = sdtools.linear_probe(ckpt, f"imagefolder:{out / 'colours' / 'train'}",
                              f"imagefolder:{out / 'colours' / 'val'}", precision="fp32",
                              cache=False)
    s = lp.settings
    print(f"linear probe ({s['n_train']} train + {s['n_val']} val images, lambda "
          f"{s['lambda']:.2g} chosen on val): top-1 {lp.top1:.1f}%")
    print(f"wrote {out / 'confusion.png'}")
    return {"zero_shot": zs.to_dict(), "linear_probe": lp.to_dict()}


if __name__ == "__main__":
    main()
