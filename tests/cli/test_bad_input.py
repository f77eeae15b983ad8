"""Bad input, as a new user gives it: every case ends in one line and exit code 2, with no
traceback, and the user's files are left as they were."""

import hashlib
import io
import json
import pickle
import tarfile

import numpy as np
import pytest
import torch
from helpers import run_cli, save_modx, tiny_cfg
from PIL import Image

import sdtools
from sdtools.errors import UserError

DATA = "synthetic:n=6"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("user")
    loaded, _ = save_modx(d / "a.pt", seed=5)
    torch.save(loaded.model.state_dict(), d / "bare.pt")  # names no architecture
    ck = torch.load(d / "a.pt", weights_only=True)
    first = next(k for k, v in ck["state_dict"].items() if v.is_floating_point())
    ck["state_dict"][first] = torch.full_like(ck["state_dict"][first], float("nan"))
    torch.save(ck, d / "nanweights.pt")
    (d / "plain.pt").write_bytes(pickle.dumps({"a": [1, 2]}, protocol=4))
    (d / "x:y.csv").write_text("filepath,title\n")
    save_modx(d / "wide.pt", seed=5, embed_dim=48)
    (d / "junk.pt").write_text("junk")
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    cfg = tiny_cfg()
    torch.save({"format": "modx", "state_dict": {"x": torch.zeros(1)}}, d / "nocfg.pt")
    (d / "bad_cfg.json").write_text(json.dumps({**cfg, "vision_cfg": {**cfg["vision_cfg"],
                                                                     "width": -3}}))
    (d / "notjson.json").write_text("{not json")
    good = sdtools.Embeddings(np.eye(4, 3) + 0.1, np.eye(4, 3) + 0.2, np.arange(4),
                              {"data": "x"})
    good.save(d / "good.npz")
    other = sdtools.Embeddings(np.ones((5, 3)) + np.eye(5, 3), np.ones((5, 3)) + np.eye(5, 3),
                               np.arange(5), {"data": "y"})
    other.save(d / "other.npz")
    raw = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    with open(d / "pickled.npz", "wb") as fh:
        pickle.dump({"image": [1, 2]}, fh)
    (d / "text.npz").write_text("hello")
    nan = np.eye(4, 3) + 0.1
    nan[1, 1] = np.nan
    np.savez(d / "nan.npz", image=nan, text=np.eye(4, 3) + 0.2, image_of_text=np.arange(4),
             meta=np.array("{}"))
    (d / "bad.json").write_text('{"images": [')
    (d / "nofilename.json").write_text(json.dumps({"images": [{"split": "test"}]}))
    (d / "imagesdict.json").write_text(json.dumps({"images": {"a": 1}}))
    (d / "sentences.json").write_text(json.dumps(
        {"images": [{"filename": "a.jpg", "split": "test", "sentences": "a cat"}]}))
    (d / "coco.json").write_text(json.dumps({"images": [{"file_name": "a.jpg", "id": 1}],
                                             "annotations": [{"image_id": 1, "caption": "x"}]}))
    (d / "notatar.tar").write_text("not a tar")
    _tar(d / "badimg.tar", [("s0.jpg", b"not an image"), ("s0.txt", b"a caption"),
                            ("s1.jpg", _png()), ("s1.txt", b"another caption")])
    _tar(d / "jsonlist.tar", [("s0.jpg", _png()), ("s0.json", b"[1, 2]")])
    _tar(d / "captionkey.tar", [("s0.jpg", _png()), ("s0.caption", b"a red square")])
    (d / "rows.csv").write_text("filepath,title\n")
    (d / "cols.csv").write_text("path,text\na.png,x\n")
    (d / "file").write_text("a file, not a folder")
    (d / "folder").mkdir()
    (d / "folder" / "mine.txt").write_text("keep")
    (d / "user_out").mkdir()
    (d / "user_out" / "config.json").write_text("my own config")
    (d / "user_out" / "report.md").write_text("my own report")
    (d / "empty_dir").mkdir()
    for name, text in {"nokey.toml": "nonsense_key = 1\n", "broken.toml": "alpha = \n",
                       "lots.toml": 'alpha = "lots"\n', "methods.toml": 'methods = "finetune"\n',
                       "lr.toml": "lr = -1.0\n", "steps.toml": "steps = -1\n",
                       "epochs.toml": "epochs = 0\n", "amp.toml": 'precision = "amp_bf16"\n',
                       "cuda.toml": 'device = "cuda"\n', "strat.toml": 'methods = ["magic"]\n',
                       "batch.toml": "batch_size = 0\n", "warmup.toml": "warmup = 1.5\n",
                       "eval.toml": 'eval_data = "synthetic"\n', "nan.toml": "lr = nan\n",
                       "bool.toml": 'teacher_cache = "yes"\n',
                       "tb.toml": "tensorboard = true\n"}.items():
        (d / name).write_text(text)
    (d / "binary.toml").write_bytes(bytes(range(256)))
    # configs a schema refuses, study plans with bad seeds or grids
    for name, text in {"section.toml": "lr = 1e-3\n[opt]\nlr = 9e-3\n",
                       "twice.toml": "alpha = 2.0\n[modx]\nalpha = 3.0\n",
                       "wrongsec.toml": "[modx]\nlr = 1.0\n",
                       "seedneg.toml": "seed = -1\n",
                       "seedbig.toml": "seed = 99999999999\n",
                       "p_seeds5.toml": "seeds = 5\n[grid]\nfinetune = [1e-3]\n",
                       "p_seedstr.toml": 'seeds = "12"\n[grid]\nfinetune = [1e-3]\n',
                       "p_dupseed.toml": "seeds = [1, 1]\n[grid]\nfinetune = [1e-3]\n",
                       "p_gridstr.toml": 'seeds = [0]\n[grid]\nfinetune = [1e-3]\nmodx = ["a"]\n',
                       "p_dupval.toml": "seeds = [0]\n[grid]\nfinetune = [1e-3, 1e-3]\n",
                       "p_negalpha.toml": "seeds = [0]\n[grid]\nfinetune = [1e-3]\nmodx = [-1.0]\n",
                       "p_lr0.toml": "seeds = [0]\n[grid]\nfinetune = [0.0]\n",
                       "p_buffer.toml": "seeds = [0]\n[grid]\nfinetune = [1e-3]\nreplay = [2.5]\n",
                       "p_section.toml": "seeds = [0]\n[base.opt]\nlr = 1.0\n[grid]\n"
                                         "finetune = [1e-3]\n",
                       "p_ok.toml": "seeds = [0]\n[base]\nsteps = 1\n[grid]\nfinetune = [5e-4]\n",
                       "p_noref.toml": "seeds = [0]\n[grid]\nfinetune = [1e-3, 2e-3]\n",
                       }.items():
        (d / name).write_text(text)
    (d / "user.json").write_text('{"mine": true}')
    (d / "list.json").write_text("[1, 2]")
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(d / "user.png")
    np.save(d / "bare.npy", np.ones(3))
    (d / "bare.npy").rename(d / "npy.npz")
    np.savez(d / "metalist.npz", image=np.eye(4, 3) + 0.1, text=np.eye(4, 3) + 0.2,
             image_of_text=np.arange(4), meta=np.array("[1, 2]"))
    return d


def _png():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _tar(path, members):
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _snapshot(d):
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file() and "cache" not in p.parts}


SDTOOLS = [
    (["rotation", "{d}/missing.pt", "{d}/a.pt", "--data", DATA], "not found"),
    (["rotation", "{d}/a.pt", "{d}/a.pt"], "--data"),
    (["rotation", "{d}/a.pt", "{d}/a.pt", "--data", "nonsense:1"], "unknown data spec"),
    (["rotation", "{d}/a.pt", "{d}/wide.pt", "--data", DATA], "architectures"),
    (["rotation", "{d}/junk.pt", "{d}/a.pt", "--data", DATA], "not a checkpoint"),
    (["rotation", "{d}/random.pt", "{d}/a.pt", "--data", DATA], "not a checkpoint"),
    (["retrieval", "{d}/a.pt", "--data", "synthetic:domain=9"], "outside"),
    (["rotation", "{d}/a.pt", "{d}/a.pt", "--data", DATA, "--modality", "audio"], "modality"),
    (["retrieval", "{d}/truncated.npz"], "not an embeddings file"),
    (["retrieval", "{d}/pickled.npz"], "not an embeddings file"),
    (["retrieval", "{d}/text.npz"], "not an embeddings file"),
    (["retrieval", "{d}/missing.npz"], "not found"),
    (["rotation", "{d}/nan.npz", "{d}/good.npz"], "NaN"),
    (["rotation", "{d}/good.npz", "{d}/other.npz"], "same probe set"),
    (["retrieval", "{d}/nocfg.pt", "--data", DATA], "model config"),
    (["retrieval", "{d}/a.pt", "--data", "karpathy:{d}/bad.json:{d}"], "not valid JSON"),
    (["retrieval", "{d}/a.pt", "--data", "karpathy:{d}/nofilename.json:{d}"], "filename"),
    (["retrieval", "{d}/a.pt", "--data", "karpathy:{d}/imagesdict.json:{d}"], "'images' list"),
    (["retrieval", "{d}/a.pt", "--data", "karpathy:{d}/sentences.json:{d}"], "sentences"),
    (["retrieval", "{d}/a.pt", "--data", "karpathy:{d}/coco.json:{d}"], "COCO captions file"),
    (["retrieval", "{d}/a.pt", "--data", "karpathy:{d}/bad.json:{d}:dev"], "unknown split"),
    (["retrieval", "{d}/a.pt", "--data", "karpathy:{d}/bad.json"], "karpathy:JSON:IMAGE_ROOT"),
    (["retrieval", "{d}/a.pt", "--data", "wds:{d}/notatar.tar"], "not a readable tar"),
    (["retrieval", "{d}/a.pt", "--data", "wds:{d}/badimg.tar", "--no-cache"],
     "cannot read the image"),
    (["retrieval", "{d}/a.pt", "--data", "wds:{d}/jsonlist.tar"], "not an object"),
    (["retrieval", "{d}/a.pt", "--data", "wds:{d}/captionkey.tar"], "caption-key"),
    (["retrieval", "{d}/a.pt", "--data", "wds:{d}/missing-{{0..2}}.tar"], "missing"),
    (["retrieval", "{d}/a.pt", "--data", DATA, "--device", "cuda"], "CUDA"),
    (["retrieval", "{d}/a.pt", "--data", DATA, "--device", "tpu9"], "device"),
    (["retrieval", "{d}/bare.pt", "--data", DATA, "--model", "{d}/bad_cfg.json"], "model config"),
    (["retrieval", "{d}/bare.pt", "--data", DATA, "--model", "{d}/notjson.json"], "valid JSON"),
    (["retrieval", "{d}/bare.pt", "--data", DATA, "--model", "Nonexistent-Arch"],
     "unknown architecture"),
    (["retrieval", "{d}/good.npz", "--json", "{d}/folder"], "is a directory"),
    (["retrieval", "{d}/good.npz", "--json", "{d}/file/out.json"], "lies under"),
    (["rotation", "{d}/good.npz", "{d}/good.npz", "--plot", "{d}/folder"], "is a directory"),
    (["embed", "{d}/a.pt", "--data", DATA, "--out", "{d}/folder"], "is a directory"),
    (["embed", "{d}/a.pt", "--data", DATA, "--out", "{d}/file/e.npz"], "lies under"),
    (["retrieval", "{d}/a.pt", "--data", "synthetic:foo=1"], "unknown synthetic option"),
    (["retrieval", "{d}/a.pt", "--data", "synthetic:n=abc"], "integer"),
    (["retrieval", "{d}/a.pt", "--data", "csv:{d}/none.csv"], "not found"),
    (["retrieval", "{d}/a.pt", "--data", "csv:{d}/rows.csv"], "no data rows"),
    (["retrieval", "{d}/a.pt", "--data", "csv:{d}/cols.csv"], "no column"),
    (["retrieval", "{d}/a.pt", "--data", "csv:{d}/cols.csv:bogus"], "unknown option"),
    (["report", "{d}/nowhere"], "not found"),
    (["report", "{d}/folder"], "a run directory"),
    (["report", "{d}/folder", "--out", "{d}/file"], "is a file"),
    (["rotation", "{d}/good.npz", "{d}/good.npz", "--max-pairs", "1"], "max_pairs"),
    (["retrieval", "{d}/good.npz", "--batch-size", "0"], "batch-size"),
    # outputs never eat a file; figure formats and provenance checked before any work
    (["retrieval", "{d}/good.npz", "--json", "{d}/user.json"], "not written by sdtools"),
    (["rotation", "{d}/good.npz", "{d}/good.npz", "--plot", "{d}/user.png"],
     "not written by sdtools"),
    (["rotation", "{d}/good.npz", "{d}/good.npz", "--json", "{d}/rows.csv"],
     "not written by sdtools"),
    (["deviation", "{d}/good.npz", "{d}/good.npz", "--plot", "{d}/out.gif"],
     "cannot draw a figure as .gif"),
    (["rotation", "{d}/good.npz", "{d}/good.npz", "--plot", "{d}/out"], "no suffix"),
    (["embed", "{d}/a.pt", "--data", DATA, "--out", "{d}/text.npz"], "not written by sdtools"),
    (["report", "{d}/folder", "--out", "{d}/user_out"], "which sdtools did not write"),
    (["retrieval", "{d}/a.pt", "--data", DATA, "--model", "ViT-B-32"],
     "names its own architecture"),
    (["retrieval", "{d}/npy.npz"], "a bare array"),
    (["retrieval", "{d}/metalist.npz"], "meta is a JSON list"),
    (["rotation", "{d}/good.npz", "{d}/good.npz", "--device", "gpu"], "unknown device"),
    (["retrieval", "{d}/bare.pt", "--data", DATA, "--model", "{d}/list.json"],
     "must be a JSON object"),
    (["retrieval", "{d}/a.pt", "--data", "csv:{d}/folder"], "is a folder"),
    (["rotation", "{d}/good.npz"], "Missing argument"),
    (["rotation", "{d}/good.npz", "{d}/good.npz", "--bogus"], "No such option"),
    (["retrieval", "{d}/nanweights.pt", "--data", DATA], "NaN or Inf in 1 weight tensor"),
    (["retrieval", "{d}/plain.pt", "--data", DATA], "plain pickle"),
    (["retrieval", "{d}/a.pt", "--data", "csv:{d}/x:y.csv"], "no data rows"),  # ':' in path
    (["retrieval", "{d}/a.pt", "--data", "csv:{d}/x\\:y.csv:bogus"], "unknown option"),
    (["retrieval", "{d}/good.NPZ"], "not found"),  # an upper-case name is embeddings too
]


@pytest.mark.parametrize("args, msg", SDTOOLS, ids=[" ".join(a[:2]) + f" [{i}]"
                                                      for i, (a, _) in enumerate(SDTOOLS)])
def test_sdtools_cli_bad_input(files, args, msg, capsys, monkeypatch):
    from sdtools.cli import main

    monkeypatch.setenv("SDTOOLS_CACHE", str(files / "cache"))
    before = _snapshot(files)
    code, _, err = run_cli(main, [a.format(d=files) for a in args] + ["-q"], capsys)
    assert code == 2, err
    assert msg in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "allow_pickle" not in err and "arbitrary code" not in err and ".tmp" not in err
    assert _snapshot(files) == before


MODX = [
    (["train", "{d}/none.toml"], "not found"),
    (["train", "{d}/broken.toml"], "not valid TOML"),
    (["train", "{d}/binary.toml"], "not a text file"),
    (["study", "{d}/broken.toml", "--out", "{d}/study"], "not valid TOML"),
    (["study", "{d}/none.toml", "--out", "{d}/study"], "study plan not found"),
    (["train", "{d}/nokey.toml"], "unknown key"),
    (["train", "{d}/lots.toml"], "alpha must be a number"),
    (["train", "{d}/methods.toml"], "list of strings"),
    (["train", "{d}/lr.toml"], "lr must be > 0"),
    (["train", "{d}/steps.toml"], "steps must be >= 0"),
    (["train", "{d}/epochs.toml"], "epochs must be > 0"),
    (["train", "{d}/amp.toml"], "amp_bf16"),
    (["train", "{d}/cuda.toml"], "CUDA"),
    (["train", "{d}/strat.toml"], "unknown strategy"),
    (["train", "{d}/batch.toml"], "batch_size"),
    (["train", "{d}/warmup.toml"], "warmup"),
    (["train", "{d}/eval.toml"], "list of strings"),
    (["train", "{d}/nan.toml"], "lr must be"),
    (["train", "{d}/bool.toml"], "teacher_cache must be true or false"),
    (["train", "--data", DATA, "--out", "{d}/empty_dir", "--resume"], "holds no modx run"),
    (["train", "--data", DATA, "--out", "{d}/user_out"], "not a modx run"),
    (["train", "--data", DATA, "--out", "{d}/file"], "is a file"),
    (["train", "--data", DATA, "--device", "cuda:3"], "CUDA"),
    (["demo", "--preset", "nope", "--out", "{d}/demo"], "unknown preset"),
    # configs by schema
    (["train", "{d}/section.toml"], "unknown section [opt]"),
    (["train", "{d}/twice.toml"], "alpha is given twice"),
    (["train", "{d}/wrongsec.toml"], "does not belong in [modx]"),
    (["train", "{d}/seedneg.toml"], "seed must be"),
    (["train", "{d}/seedbig.toml"], "seed must be"),
    (["train", "--data", "synthetic:n=4", "--batch-size", "64", "--out", "{d}/newrun"],
     "larger than phase"),
    # study plans, --list included
    (["study", "{d}/p_seeds5.toml", "--out", "{d}/st", "--list"], "seeds must be a list"),
    (["study", "{d}/p_seedstr.toml", "--out", "{d}/st", "--list"], "seeds must be a list"),
    (["study", "{d}/p_dupseed.toml", "--out", "{d}/st", "--list"], "repeat a seed"),
    (["study", "{d}/p_gridstr.toml", "--out", "{d}/st", "--list"], "knob values are numbers"),
    (["study", "{d}/p_dupval.toml", "--out", "{d}/st", "--list"], "repeats a value"),
    (["study", "{d}/p_negalpha.toml", "--out", "{d}/st", "--list"], "alpha must be >= 0"),
    (["study", "{d}/p_lr0.toml", "--out", "{d}/st", "--list"], "lr must be > 0"),
    (["study", "{d}/p_buffer.toml", "--out", "{d}/st", "--list"], "replay_size must be an"),
    (["study", "{d}/p_section.toml", "--out", "{d}/st", "--list"], "unknown section [opt]"),
    (["study", "{d}/p_ok.toml", "--out", "{d}/user_out"], "which sdtools did not write"),
    (["study", "{d}/p_noref.toml", "--out", "{d}/st", "--list"], "reference learning rate"),
]


@pytest.mark.parametrize("args, msg", MODX, ids=[" ".join(a[:2]) + f" [{i}]"
                                                   for i, (a, _) in enumerate(MODX)])
def test_modx_cli_bad_input(files, args, msg, capsys):
    from modx.cli import main

    before = _snapshot(files)
    code, _, err = run_cli(main, [a.format(d=files) for a in args], capsys)
    assert code == 2, err
    assert msg in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(files) == before


def test_tensorboard_is_checked_when_the_config_is_read(files, capsys, monkeypatch):
    import importlib.util

    from modx.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    code, _, err = run_cli(main, ["train", str(files / "tb.toml")], capsys)
    assert code == 2 and "pip install" in err and "tensorboard" in err


API = [
    (lambda: sdtools.procrustes(np.ones((3, 2)), np.ones((4, 2))), "rows"),
    (lambda: sdtools.sample_angles(np.zeros((3, 2)), np.ones((3, 2))), "zero-norm"),
    (lambda: sdtools.retrieval(np.eye(3), np.eye(3), [0, 1, 5]), "outside"),
    (lambda: sdtools.sam_drift(np.eye(3), np.eye(3), chunk_size=0), "chunk_size"),
    (lambda: sdtools.open_data("wds:"), "name the shards"),
    (lambda: sdtools.load_checkpoint("/nonexistent/x.pt"), "not found"),
    (lambda: sdtools.Embeddings.load("/nonexistent/e.npz"), "not found"),
    (lambda: sdtools.procrustes(np.ones((10, 1)), np.ones((10, 1))), "at least 2"),
    (lambda: sdtools.procrustes(np.eye(8), np.eye(8), n_boot=0), "n_boot"),
    (lambda: sdtools.procrustes(np.eye(8), np.eye(8), folds=1), "folds"),
    (lambda: sdtools.procrustes(np.eye(8), np.eye(8), folds=2.5), "folds"),
    (lambda: sdtools.procrustes(np.eye(3), np.eye(3), folds=3), "too few"),
    (lambda: sdtools.procrustes(np.eye(8), np.eye(8), seed=-1), "seed"),
    (lambda: sdtools.procrustes(np.eye(8), np.eye(8), ci_seed=2**70), "ci_seed"),
    (lambda: sdtools.procrustes(np.eye(8), np.eye(8), precision="int8"), "precision"),
    (lambda: sdtools.sam_drift(np.eye(8), np.eye(8), max_pairs=5, seed=-1), "seed"),
    (lambda: sdtools.sam_drift(np.eye(8), np.eye(8), seed=2**70), "seed"),
    (lambda: sdtools.topology_kept(np.eye(8), np.eye(8), seed=-1), "seed"),
    (lambda: sdtools.topology_kept(np.eye(8), np.eye(8), max_pairs=0), "max_pairs"),
    (lambda: sdtools.retrieval(np.eye(3), np.eye(3), [0, 1, 2], ci=True, seed=-1), "seed"),
    (lambda: sdtools.linear_cka(np.ones((10, 3)), np.eye(10, 3) + 0.1), "no variance"),
    (lambda: sdtools.load_checkpoint("/nonexistent/x.pt", device="gpu"), "unknown device"),
    (lambda: sdtools.load_checkpoint("/nonexistent/x.pt", device="cuda"), "CUDA"),
    (lambda: sdtools.embed("/nonexistent/x.pt", 123), "data SPEC"),
    (lambda: sdtools.embed("/nonexistent/x.pt", "synthetic", batch_size="a"), "batch_size"),
    (lambda: sdtools.embed("/nonexistent/x.pt", "synthetic", device="tpu"), "device"),
    (lambda: sdtools.Summary.of([]), "empty"),
]


@pytest.mark.parametrize("call, msg", API)
def test_api_bad_input_raises_user_error(call, msg):
    with pytest.raises(UserError, match=msg):
        call()


def test_extended_precision_input_is_read_as_float64():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 6))
    B = A + 0.1 * rng.standard_normal((50, 6))
    fit = sdtools.procrustes(A.astype(np.longdouble), B)
    assert fit.explained == pytest.approx(sdtools.procrustes(A, B).explained, abs=1e-12)


def test_scale_free_inputs():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 6))
    B = A + 0.1 * rng.standard_normal((50, 6))
    ref = sdtools.sample_angles(A, B)
    for scale in (1e30, 1e-30):
        np.testing.assert_allclose(sdtools.sample_angles(A * scale, B * scale), ref, atol=1e-9)
        assert sdtools.procrustes(A * scale, B * scale).explained == pytest.approx(
            sdtools.procrustes(A, B).explained, abs=1e-9)
