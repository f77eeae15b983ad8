"""The zeroshot and linear-probe commands: their outputs against the Python API, and bad input
as one line with exit code 2 and no traceback."""

import json

import numpy as np
import pytest
from helpers import save_modx
from PIL import Image

import sdtools


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("zs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 4)):
        for k, name in enumerate(("red", "green", "blue")):
            for i in range(n):
                base = np.zeros(3)
                base[k] = 200
                a = np.clip(base + rng.normal(0, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
                p = d / split / name / f"{i}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(a).save(p)
    (d / "test2" / "red").mkdir(parents=True)
    (d / "test2" / "pink").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(d / "test2" / "red" / "0.png")
    save_modx(d / "a.pt", seed=2)
    (d / "noc.json").write_text(json.dumps(["a photo."]))
    (d / "user.json").write_text("{}")
    (d / "other.txt").write_text("cat\ndog\nbird\n")
    (d / "captions.csv").write_text(f"filepath,title\n{d / 'test2' / 'red' / '0.png'},a red\n")
    return d


def _run(args, capsys):
    from sdtools.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return (code, *capsys.readouterr())


def test_zeroshot_command_writes_what_the_api_returns(files, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    spec = f"imagefolder:{files / 'test'}"
    code, out, err = _run(["zeroshot", files / "a.pt", "--data", spec, "--json",
                           tmp_path / "zs.json", "--plot", tmp_path / "cm.png",
                           "--predictions", "--precision", "fp32", "-q"], capsys)
    assert code == 0, err
    got = json.loads((tmp_path / "zs.json").read_text())
    api = sdtools.zero_shot(str(files / "a.pt"), spec, precision="fp32", cache=False)
    assert got["pred"] == api.pred.tolist() and got["labels"] == api.labels.tolist()
    assert got["top1"] == pytest.approx(api.top1) and got["top5"] is None  # 3 classes
    assert got["classnames"] == ["blue", "green", "red"] and got["n_images"] == 12
    assert np.sum(got["confusion"]) == 12 and got["templates"] == ["a photo of a {c}."]
    assert (tmp_path / "cm.png").stat().st_size > 0
    assert len(list((tmp_path / "cache").glob("*.classes.npz"))) == 1
    code, out, _ = _run(["zeroshot", files / "a.pt", "--data", spec, "--precision", "fp32"],
                        capsys)
    assert code == 0 and f"{api.top1:.2f}" in out and "mean per-class recall" in out


def test_linear_probe_command_records_its_settings(files, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    code, _, err = _run(["linear-probe", files / "a.pt", "--train",
                         f"imagefolder:{files / 'train'}", "--test",
                         f"imagefolder:{files / 'test'}", "--json", tmp_path / "lp.json", "-q"],
                        capsys)
    assert code == 0, err
    got = json.loads((tmp_path / "lp.json").read_text())
    s = got["settings"]
    assert s["n_train"] + s["n_val"] == 18 and got["n_test"] == 12
    assert s["solver"] == "lbfgs" and s["val_proportion"] == 0.2 and s["lambda"] > 0
    assert s["C"] == pytest.approx(1 / (s["lambda"] * 18))
    assert s["train"].endswith("train") and 0 <= got["top1"] <= 100


BAD = [
    (["zeroshot", "{d}/a.pt", "--data", "synthetic:n=4"], "several classification tasks"),
    (["zeroshot", "{d}/a.pt", "--data", "synthetic:n=4", "--task", "size"], "no task 'size'"),
    (["zeroshot", "{d}/a.pt", "--data", "imagefolder:{d}/nowhere"], "no such folder"),
    (["zeroshot", "{d}/a.pt", "--data", "imagefolder:{d}/test:templates={d}/noc.json"],
     "does not name the class"),
    (["zeroshot", "{d}/a.pt", "--data", "imagefolder:{d}/test2"], "has no image"),
    (["zeroshot", "{d}/a.pt", "--data", "imagefolder:{d}/test", "--json", "{d}/user.json"],
     "not written by sdtools"),
    (["zeroshot", "{d}/a.pt", "--data", "imagefolder:{d}/test", "--plot", "{d}/cm.gif"],
     "cannot draw a figure"),
    (["zeroshot", "{d}/missing.pt", "--data", "imagefolder:{d}/test"], "not found"),
    (["linear-probe", "{d}/a.pt", "--train", "imagefolder:{d}/train", "--test",
      "imagefolder:{d}/test:classnames={d}/noc.json"], "3 class folders"),
    (["linear-probe", "{d}/a.pt", "--train", "imagefolder:{d}/train", "--test",
      "imagefolder:{d}/test2"], "has no image"),
    (["linear-probe", "{d}/a.pt", "--train", "imagefolder:{d}/train"], "--test"),
    (["zeroshot", "{d}/a.pt", "--data", "csv:{d}/none.csv:label-key=y"], "not found"),
    (["zeroshot", "{d}/a.pt", "--data", "csv:{d}/captions.csv"], "carries no class labels"),
    (["linear-probe", "{d}/a.pt", "--train", "imagefolder:{d}/train", "--test",
      "imagefolder:{d}/test:classnames={d}/other.txt"], "name different classes"),
    (["zeroshot", "{d}/a.pt", "--data", "imagefolder:{d}/test:templates=fancy"], "built-in"),
    (["zeroshot", "{d}/emb.npz", "--data", "imagefolder:{d}/test"], "not saved embeddings"),
    (["zeroshot", "{d}/a.pt", "--data", "imagefolder:{d}/test", "--predictions"],
     "give --json F too"),
]


@pytest.mark.parametrize("args, msg", BAD, ids=[f"{b[0][0]} {b[1]}" for b in BAD])
def test_bad_input_is_one_line(files, args, msg, capsys, monkeypatch):
    monkeypatch.setenv("SDTOOLS_CACHE", str(files / "cache"))
    code, _, err = _run([a.format(d=files) for a in args] + ["-q"], capsys)
    assert code == 2, err
    assert msg in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert json.loads((files / "user.json").read_text()) == {}


def test_api_refuses_saved_embeddings_as_a_checkpoint(files, tmp_path):
    """The API says what the CLI says: zero-shot embeds itself, so .npz is the wrong input."""
    V = np.eye(4, dtype=np.float32)
    sdtools.Embeddings(V, V, np.arange(4)).save(tmp_path / "e.npz")
    with pytest.raises(sdtools.errors.CheckpointError, match="saved embeddings"):
        sdtools.zero_shot(str(tmp_path / "e.npz"), f"imagefolder:{files / 'test'}", cache=False)


def test_api_input_types_are_user_errors():
    V = np.eye(6, dtype=np.float32)
    with pytest.raises(sdtools.errors.InputError, match="image_of_text must be an integer"):
        sdtools.retrieval(V, V, None)
    with pytest.raises(sdtools.errors.InputError, match="max_pairs must be an integer"):
        sdtools.sam_drift(V, V, max_pairs=2.5)
