"""Analyse two checkpoints on a probe set with the Python API: measures and figures.

    python examples/analyze_checkpoints.py CKPT_A CKPT_B --data "synthetic:domain=0" --out out/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import sdtools


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt_a")
    ap.add_argument("ckpt_b")
    ap.add_argument("--data", default="synthetic:domain=0")
    ap.add_argument("--model", default=None, help="architecture for files that name none")
    ap.add_argument("--out", default="analysis")
    args = ap.parse_args(argv)
    out = Path(args.out)

    # 1. embeddings of the probe set under both checkpoints (cached on disk)
    a = sdtools.embed(args.ckpt_a, args.data, arch=args.model, progress=False)
    b = sdtools.embed(args.ckpt_b, args.data, arch=args.model, progress=False)

    # 2. intra-modal rotation of each modality
    results = {}
    for mod in ("image", "text"):
        xa, xb = getattr(a, mod), getattr(b, mod)
        rad = sdtools.rad(xa, xb)
        drift = sdtools.sam_drift(xa, xb)
        fit = sdtools.procrustes(xa, xb)
        results[mod] = {"rad": rad.to_dict(), "sam_drift": drift.to_dict(),
                        "procrustes": fit.to_dict()}
        print(f"{mod:5s}  RAD mean {rad.mean:6.2f} deg | SAM drift mean {drift.mean:6.3f} deg | "
              f"rotation explains {100 * fit.explained:5.1f}% | top angle "
              f"{fit.max_angle:6.2f} deg | CKA {sdtools.linear_cka(xa, xb):.3f}")

    # 3. inter-modal deviation and retrieval
    dev = sdtools.deviation(a.image, a.text, b.image, b.text, a.image_of_text)
    d = dev.to_dict()
    print(f"pairs  cosine {d['pos_sim_a_mean']:.3f} -> {d['pos_sim_b_mean']:.3f} | "
          f"unsync mean {d['unsync_abs_mean']:.2f} deg | R_V^T R_T geodesic "
          f"{d['relative_rotation']['geodesic_deg']:.2f} deg")
    for name, e in (("A", a), ("B", b)):
        r = sdtools.retrieval(e.image, e.text, e.image_of_text)
        print(f"{name}: R@1 image->text {r.i2t[1]:.1f}, text->image {r.t2i[1]:.1f}")

    # 4. figures
    sdtools.plot_rotation(results, out / "rotation.png", title="A -> B")
    sdtools.plot_deviation(dev, out / "deviation.png", title="A -> B")
    print(f"figures in {out}")
    return {"rotation": results, "deviation": d}


if __name__ == "__main__":
    main()
