import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import save_modx, tiny_model

import sdtools
from sdtools.models.extract import embed
from sdtools.report import rotation_report

DATA = "synthetic:n=40,domain=0+1"


def test_embed_matches_direct_forward_and_is_normalised(tmp_path):
    loaded, _ = tiny_model(1)
    emb = embed(loaded, DATA, batch_size=16, cache=False, progress=False)
    data = sdtools.open_data(DATA)
    assert emb.image.shape == (80, 32) and emb.text.shape == (240, 32)
    np.testing.assert_allclose(np.linalg.norm(emb.image, axis=1), 1.0, atol=1e-5)
    x = torch.stack([loaded.preprocess(data.load_image(i)) for i in (0, 79)])
    with torch.no_grad():
        ref = loaded.model.encode_image(x, normalize=True).numpy()
        tref = loaded.model.encode_text(loaded.tokenizer([data.captions[5]]),
                                        normalize=True).numpy()
    np.testing.assert_allclose(emb.image[[0, 79]], ref, atol=1e-5)
    np.testing.assert_allclose(emb.text[5], tref[0], atol=1e-5)
    assert emb.meta["domains"][:2] == [0, 0] and emb.meta["domains"][-1] == 1


def test_cache_is_hit_without_forward(tmp_path, monkeypatch):
    import sdtools.models.extract as extract

    path = tmp_path / "m.pt"
    save_modx(path, seed=2)
    first = embed(str(path), DATA, cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("checkpoint loaded or forward pass on a cache hit")

    # a checkpoint file that hits the cache is not even loaded
    monkeypatch.setattr(extract, "load_checkpoint", boom)
    again = embed(str(path), DATA, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(first.image, again.image)
    assert again.meta["model_cfg"] == first.meta["model_cfg"]
    with pytest.raises(AssertionError, match="cache hit"):  # another probe set is a miss
        embed(str(path), "synthetic:n=41", cache_dir=tmp_path / "cache", progress=False)
    # in-memory models are keyed by their weights: no forward pass the second time
    loaded, _ = tiny_model(9)
    one = embed(loaded, DATA, cache_dir=tmp_path / "c2", progress=False)
    loaded.model.encode_image = boom
    loaded.model.encode_text = boom
    np.testing.assert_array_equal(
        embed(loaded, DATA, cache_dir=tmp_path / "c2", progress=False).text, one.text)


def _main(*args, capsys=None):
    """Run the CLI in this process (faster than a subprocess); returns (code, out, err)."""
    from sdtools.cli import main

    try:
        main([str(x) for x in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr() if capsys else ("", "")
    return code, out, err


def _cli(*args, env_extra=None, cwd=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "sdtools.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_cli_rotation_end_to_end_equals_api(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    save_modx(a, seed=3)
    save_modx(b, seed=4)
    env = {"SDTOOLS_CACHE": str(tmp_path / "cache")}
    r = _cli("rotation", a, b, "--data", DATA, "--json", tmp_path / "r.json", "--plot",
             tmp_path / "r.png", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "rotation explains" in r.stdout and "[low, high]" in r.stdout  # the intervals
    out = json.loads((tmp_path / "r.json").read_text())
    assert (tmp_path / "r.png").stat().st_size > 1000
    ea = embed(str(a), DATA, cache=False, progress=False)
    eb = embed(str(b), DATA, cache=False, progress=False)
    api = rotation_report(ea, eb)
    for mod, r in api.modalities().items():
        assert out[mod]["rad"]["mean"] == pytest.approx(r.rad.mean, abs=1e-4)
        assert out[mod]["sam_drift"]["mean"] == pytest.approx(r.sam_drift.mean, abs=1e-4)
        assert out[mod]["procrustes"]["explained"] == pytest.approx(r.procrustes.explained,
                                                                    abs=1e-5)
        # intervals on by default, recorded with their resamples and seed
        pro, sam = out[mod]["procrustes"], out[mod]["sam_drift"]
        for key, iv in (("rigidity", pro["rigidity_ci"]),
                        ("explained_heldout", pro["explained_heldout_ci"])):
            assert iv["low"] <= pro[key] <= iv["high"] and iv["n_boot"] == 1000
        assert sam["mean_ci"]["low"] <= sam["mean"] <= sam["mean_ci"]["high"]
    # embeddings saved by `sdtools embed` give the same numbers
    r = _cli("embed", a, "--data", DATA, "--out", tmp_path / "a.npz", "-q", env_extra=env)
    assert r.returncode == 0, r.stderr
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    code, _, err = _main("embed", b, "--data", DATA, "--out", tmp_path / "b.npz", "-q",
                         capsys=capsys)
    assert code == 0, err
    code, _, err = _main("rotation", tmp_path / "a.npz", tmp_path / "b.npz", "--modality",
                         "image", "--json", tmp_path / "r2.json", "-q", capsys=capsys)
    assert code == 0, err
    out2 = json.loads((tmp_path / "r2.json").read_text())
    assert "text" not in out2
    assert out2["image"]["rad"]["mean"] == pytest.approx(out["image"]["rad"]["mean"])
    code, _, err = _main("deviation", tmp_path / "a.npz", tmp_path / "b.npz", "--json",
                         tmp_path / "d.json", "--plot", tmp_path / "d.png", "-q", capsys=capsys)
    assert code == 0, err
    dev = json.loads((tmp_path / "d.json").read_text())
    ref = sdtools.deviation(ea.image, ea.text, eb.image, eb.text, ea.image_of_text)
    assert dev["unsync_abs_mean"] == pytest.approx(np.abs(ref.unsync).mean(), abs=1e-4)
    iv = dev["unsync_abs_mean_ci"]
    assert iv["low"] <= dev["unsync_abs_mean"] <= iv["high"] and iv["low"] < iv["high"]
    assert dev["pos_shift"]["mean_ci"]["low"] <= dev["pos_shift"]["mean"]
    assert (tmp_path / "d.png").stat().st_size > 1000
    code, out, err = _main("retrieval", tmp_path / "a.npz", "--json", tmp_path / "ret.json",
                           capsys=capsys)
    assert code == 0, err
    assert "image→text" in out
    ret = json.loads((tmp_path / "ret.json").read_text())
    assert ret["i2t"]["1"] == pytest.approx(sdtools.retrieval(ea.image, ea.text,
                                                              ea.image_of_text).i2t[1])


def test_cli_user_errors_exit_2_without_traceback(tmp_path, capsys, monkeypatch):
    a = tmp_path / "a.pt"
    save_modx(a, seed=5)
    save_modx(tmp_path / "wide.pt", seed=5, embed_dim=48)
    (tmp_path / "junk.pt").write_text("junk")
    cases = [
        (("rotation", tmp_path / "missing.pt", a, "--data", DATA), "not found"),
        (("rotation", a, a), "--data"),
        (("rotation", a, a, "--data", "nonsense:1"), "unknown data spec"),
        (("rotation", a, tmp_path / "wide.pt", "--data", DATA), "different architectures"),
        (("rotation", tmp_path / "junk.pt", a, "--data", DATA), "not a checkpoint"),
        (("retrieval", a, "--data", "synthetic:domain=9"), "outside"),
        (("rotation", a, a, "--data", DATA, "--modality", "audio"), "modality"),
    ]
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "c"))
    for args, msg in cases:
        code, _, err = _main(*args, "-q", capsys=capsys)
        assert code == 2, (args, err)
        assert msg in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_cli_user_errors_in_a_real_process(tmp_path):
    """In a real process: exit code 2, one line, no traceback."""
    a = tmp_path / "a.pt"
    save_modx(a, seed=5)
    r = _cli("rotation", tmp_path / "missing.pt", a, "--data", DATA)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: checkpoint not found")
    r = _cli("rotation", a)  # usage error from the argument parser
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_precision_is_part_of_the_embeddings_identity(tmp_path, monkeypatch, capsys):
    """fp32 and bf16 embeddings differ by a measurable angle; each has its own cache entry,
    and the saved embeddings say how they were computed."""
    from sdtools.cli import main
    from sdtools.measures.angles import sample_angles

    path = tmp_path / "m.pt"
    save_modx(path, seed=3)
    cache = tmp_path / "cache"
    fp32 = embed(str(path), DATA, cache_dir=cache, progress=False, precision="fp32")
    bf16 = embed(str(path), DATA, cache_dir=cache, progress=False, precision="bf16")
    assert len(list(cache.glob("*.npz"))) == 2  # never served for each other
    assert (fp32.meta["device"], fp32.meta["autocast"], fp32.meta["precision"]) == \
        ("cpu", None, "float32")
    assert (bf16.meta["autocast"], bf16.meta["precision"]) == ("bfloat16", "bfloat16")
    assert sample_angles(fp32.image, bf16.image).mean() > 0.01  # degrees: not the same
    again = embed(str(path), DATA, cache_dir=cache, progress=False, precision="bf16")
    np.testing.assert_array_equal(again.image, bf16.image)
    auto = embed(str(path), DATA, cache_dir=cache, progress=False)  # CPU: auto is fp32
    np.testing.assert_array_equal(auto.image, fp32.image)
    monkeypatch.setenv("SDTOOLS_CACHE", str(cache))
    out = tmp_path / "e.npz"
    main(["embed", str(path), "--data", DATA, "--precision", "bf16", "--out", str(out), "-q"])
    assert sdtools.Embeddings.load(out).meta["autocast"] == "bfloat16"
    with pytest.raises(SystemExit) as exc:
        main(["embed", str(path), "--data", DATA, "--precision", "fp16", "--out", str(out)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --precision fp16: use fp32, bf16 or auto"
