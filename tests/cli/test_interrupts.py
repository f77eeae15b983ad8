"""Ctrl-C and SIGTERM at a deterministic point: "interrupted", exit 130 / 143, no partial
output, and --resume continues. Also: the cache heals, and one network saved three ways is
one architecture."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import save_modx, tiny_cfg

import sdtools
from sdtools.models.extract import embed

DATA = "synthetic:n_domains=2,train_per_domain=40,test_per_domain=8"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")


def _train(tmp_path, out, *extra, fail_at=None):
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(tiny_cfg()))
    env = dict(ENV, **({"MODX_FAIL_AT": fail_at} if fail_at else {}))
    args = [sys.executable, "-m", "modx.cli", "train", "--data", DATA, "--model", str(model),
            "--phase0-steps", "4", "--steps", "6", "--batch-size", "16", "--methods",
            "finetune", "--out", str(out), "--checkpoint-every", "2", "-q", *extra]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("how, code", [("int", 130), ("term", 143)])
def test_train_interrupted_says_so_and_resumes(tmp_path, how, code):
    out = tmp_path / "run"
    r = _train(tmp_path, out, fail_at=f"finetune:1:3:{how}")
    assert r.returncode == code, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in r.stderr
    assert not list(out.rglob("*.tmp*"))  # no partial file
    assert not (out / "finetune" / "phase1" / "model.pt").exists()
    r = _train(tmp_path, out, "--resume")
    assert r.returncode == 0, r.stderr
    assert (out / "report.json").is_file() and (out / "finetune" / "phase1" / "model.pt").exists()


_EMBED_INTERRUPTED = """
import sys
import sdtools.models.extract as ex
real = ex.load_checkpoint
def patched(*a, **k):
    loaded = real(*a, **k)
    def stop(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C while the captions are embedded
    loaded.model.encode_text = stop
    return loaded
ex.load_checkpoint = patched
from sdtools.cli import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_embed_interrupted_leaves_nothing(tmp_path):
    save_modx(tmp_path / "a.pt")
    out = tmp_path / "e.npz"
    r = subprocess.run([sys.executable, "-c", _EMBED_INTERRUPTED, "embed", str(tmp_path / "a.pt"),
                        "--data", "synthetic:n=5", "--out", str(out), "--no-cache", "-q"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 130 and r.stderr.strip() == "interrupted", r.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "a.pt"]


def test_report_interrupted_keeps_the_old_figures(tmp_path, monkeypatch, capsys):
    """An interrupt while drawing leaves the previous figures/ as it was, no temporary folder."""
    from sdtools import cli
    from sdtools.io import atomic_dir
    from sdtools.viz.style import pyplot, save

    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    save(pyplot().figure(), out / "figures" / "old.png")  # a figure sdtools drew before
    monkeypatch.setattr("sdtools.report.build_report", lambda *a, **k: {"methods": {}})

    def draw(rep, where, run_dir=None, progress=False):
        (where / "half.png").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr("sdtools.viz.phases.draw_all", draw)
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(tmp_path / "run"), "--out", str(out), "-q"])
    assert exc.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    assert sorted(p.name for p in out.iterdir()) == ["figures"]
    assert [p.name for p in (out / "figures").iterdir()] == ["old.png"]
    with atomic_dir(out / "figures") as tmp:  # a finished writer replaces the folder whole
        (tmp / "new.png").write_text("new")
    assert [p.name for p in (out / "figures").iterdir()] == ["new.png"]


def test_damaged_cache_entry_is_recomputed_once(tmp_path, caplog):
    """Said as a warning of the library's logger (on stderr where logging is left alone; the
    command line's stderr is tested in test_messages.py)."""
    save_modx(tmp_path / "a.pt")
    cache = tmp_path / "cache"
    one = embed(str(tmp_path / "a.pt"), "synthetic:n=5", cache_dir=cache, progress=False)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"damaged")
    caplog.clear()
    two = embed(str(tmp_path / "a.pt"), "synthetic:n=5", cache_dir=cache, progress=True)
    said = [(r.name, r.levelname) for r in caplog.records if "damaged; recomputing" in r.message]
    assert said == [("sdtools.models.extract", "WARNING")]
    np.testing.assert_array_equal(one.image, two.image)
    caplog.clear()
    three = embed(str(tmp_path / "a.pt"), "synthetic:n=5", cache_dir=cache, progress=True)
    assert "damaged" not in caplog.text  # healed: said once
    np.testing.assert_array_equal(one.text, three.text)


def test_one_network_saved_three_ways_compares_as_one(tmp_path, capsys, monkeypatch):
    from sdtools.cli import main
    from sdtools.models.checkpoints import save_safetensors

    loaded, cfg = save_modx(tmp_path / "a.pt", seed=3)
    torch.save(loaded.model.state_dict(), tmp_path / "bare.pt")
    save_safetensors(loaded.model, tmp_path / "a.safetensors", cfg, arch="tiny")
    (tmp_path / "tiny.json").write_text(json.dumps(cfg))
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    ea = embed(str(tmp_path / "a.pt"), "synthetic:n=6", progress=False)
    eb = embed(str(tmp_path / "bare.pt"), "synthetic:n=6", arch=str(tmp_path / "tiny.json"),
               progress=False)
    np.testing.assert_allclose(ea.image, eb.image, atol=1e-6)
    try:  # a modx checkpoint against its own safetensors copy: not "another architecture"
        main(["rotation", str(tmp_path / "a.pt"), str(tmp_path / "a.safetensors"), "--data",
              "synthetic:n=6", "-q", "--json", str(tmp_path / "r.json")])
    except SystemExit as exc:
        pytest.fail(f"exit {exc.code}: {capsys.readouterr().err}")
    rot = json.loads((tmp_path / "r.json").read_text())
    assert rot["image"]["rad"]["mean"] < 1e-3  # the same network: nothing moved


def test_float32_scale_free_inputs():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 6)).astype(np.float32)
    B = A + 0.1 * rng.standard_normal((50, 6)).astype(np.float32)
    ref = sdtools.sample_angles(A, B)
    for scale in (np.float32(1e30), np.float32(1e-30)):
        np.testing.assert_allclose(sdtools.sample_angles(A * scale, B * scale), ref, atol=1e-3)
        assert sdtools.procrustes(A * scale, B * scale).explained == pytest.approx(
            sdtools.procrustes(A, B).explained, abs=1e-4)
