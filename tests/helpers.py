"""Shared test helpers: planted rotations, tiny open_clip models (random init), checkpoints."""

import json

import numpy as np
import torch

from sdtools.models.build import Loaded, build_model, make_preprocess, make_tokenizer
from sdtools.models.configs import tiny_clip_cfg


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


def planted_rotation(angles_deg, dim, rng, reflect=False):
    """An orthogonal matrix with the given principal angles in a random orthonormal basis.

    Block-diagonal 2x2 rotations (one block per angle), the rest identity; with ``reflect`` a
    -1 on the last axis (which must lie outside the rotation blocks).
    """
    blocks = np.eye(dim)
    for k, a in enumerate(angles_deg):
        t = np.radians(a)
        c, s = np.cos(t), np.sin(t)
        blocks[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = [[c, -s], [s, c]]
    if reflect:
        assert 2 * len(angles_deg) < dim
        blocks[-1, -1] = -1.0
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q @ blocks @ q.T


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run_cli(main, args, capsys):
    """``(exit code, stdout, stderr)`` of a command-line ``main`` run in-process."""
    try:
        main([str(x) for x in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def fake_cell(plan, cell, out):
    """A cell's run folder with two phases of planted embeddings and its report.json, its
    config the cell's own (as a study writes it)."""
    import numpy as np

    import sdtools
    from sdtools.measures.retrieval import retrieval

    d = cell.run_dir(out)
    run = sdtools.RunDir(d)
    d.mkdir(parents=True)
    run.write_config(plan.config(cell.seed, cell.method, cell.value, str(d)).to_dict())
    rng = np.random.default_rng(cell.index)
    V = rng.standard_normal((40, 8)).astype(np.float32)
    for t in (0, 1):
        e = sdtools.Embeddings(V + 0.3 * t * rng.standard_normal(V.shape).astype(np.float32), V,
                               np.arange(40))
        run.phase_dir(cell.method, t).mkdir(parents=True, exist_ok=True)
        run.write_probe(cell.method, t, e)
        r = retrieval(e.image, e.text, e.image_of_text).to_dict()
        run.write_eval(cell.method, t, ["set0"], [r], {})
    sdtools.build_report(run, progress=False).write(d / "report.json")
    return d / "report.json"
