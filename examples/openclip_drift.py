"""Drift between a pretrained open_clip model and a fine-tuned copy of it.

    python examples/openclip_drift.py ViT-B-32:openai finetuned.pt --data csv:probe.csv

The pretrained weights come from open_clip's local cache (nothing is downloaded); the
fine-tuned file can be any checkpoint sdtools loads (pass --model for a bare state dict).
"""

from __future__ import annotations

import argparse

import sdtools


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pretrained", help="ARCH:TAG (e.g. ViT-B-32:openai) or a checkpoint file")
    ap.add_argument("finetuned", help="the fine-tuned checkpoint")
    ap.add_argument("--data", required=True, help="probe set SPEC")
    ap.add_argument("--model", default=None, help="architecture of the fine-tuned file")
    ap.add_argument("--max-pairs", type=int, default=None)
    args = ap.parse_args(argv)

    base = sdtools.embed(args.pretrained, args.data, progress=False)
    tuned = sdtools.embed(args.finetuned, args.data, arch=args.model, progress=False)
    rot = sdtools.rotation_report(base, tuned, max_pairs=args.max_pairs)
    dev = sdtools.deviation_report(base, tuned).to_dict()
    for mod, r in rot.modalities().items():
        print(f"{mod:5s} moved {r.rad.mean:.2f} deg on average; pairwise angles drifted "
              f"{r.sam_drift.mean:.3f} deg; a rotation explains "
              f"{100 * r.procrustes.explained:.1f}% of the change")
    print(f"matched pairs: cosine {dev['pos_sim_a_mean']:.3f} -> {dev['pos_sim_b_mean']:.3f}; "
          f"top-1 text->image lost {dev['top1']['t2i']['lost']}, gained "
          f"{dev['top1']['t2i']['gained']}")
    return {"rotation": rot.to_dict(), "deviation": dev}


if __name__ == "__main__":
    import sys

    try:
        main()
    except sdtools.UserError as exc:  # e.g. weights not cached here: one line, with the fix
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)
