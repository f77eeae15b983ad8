"""Everything is checked before work, and every flag is honoured or refused: plans at read
and --list, method data opened with the run's data before config.json, phase splits,
streamed shards and resumes, flags that would be ignored, the API's errors. Each case ends
in one line and exit code 2 with nothing written."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli, save_modx
from PIL import Image

import sdtools
from sdtools.errors import UserError


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


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("plans")
    grid = "[grid]\nfinetune = [5e-4]\n"
    plans = {
        "ref_str": f'seeds = [0]\nreference = "x"\n{grid}',
        "ref_neg": f"seeds = [0]\nreference = -1.0\n{grid}",
        "launcher_str": f'seeds = [0]\nlauncher = "slurm"\n{grid}',
        "launcher_neg": f"seeds = [0]\n[launcher]\nparallel = -1\n{grid}",
        "launcher_key": f"seeds = [0]\n[launcher]\ngpus = 1\n{grid}",
        "base_seed": f"[base]\nseed = 5\n{grid}",
        "base_str": f'base = "steps"\n{grid}',
        "zscl_missing": f'seeds = [0]\n[base]\nmethods = ["zscl"]\n[base.zscl]\n'
                        f'reference = "csv:{d}/nope.csv"\n{grid}',
        "zscl_wds": f'seeds = [0]\n[base.zscl]\nreference = "wds:{d}/none-{{0..2}}.tar"\n{grid}',
        "zscl_type": f"seeds = [0]\n[base.zscl]\nreference = 3\n{grid}",
        "zscl_batch": f"seeds = [0]\n[base.zscl]\nbatch = 2.5\n{grid}",
        "one_phase": f'seeds = [0]\n[base]\nphases = "contiguous:1"\n{grid}',
        "one_shard": f'seeds = [0]\n[base]\nphases = "shards:1"\ndata = "wds:{d}/a.tar"\n'
                     f"{grid}",
    }
    for name, text in plans.items():
        (d / f"{name}.toml").write_text(text)
    sample = [("s0.jpg", _png()), ("s0.txt", b"a cat"), ("s1.jpg", _png()), ("s1.txt", b"a dog")]
    _tar(d / "a.tar", sample)
    _tar(d / "b.tar", sample)
    (d / "notatar.tar").write_text("not a tar at all")
    (d / "zero.tar").write_bytes(b"")
    _tar(d / "empty.tar", [])
    return d


PLANS = [
    ("ref_str", "reference is finetune's learning rate"),
    ("ref_neg", "a number > 0"),
    ("launcher_str", "launcher in"),
    ("launcher_neg", "parallel in [launcher]"),
    ("launcher_key", "unknown launcher setting 'gpus'"),
    ("base_seed", "seeds = [5]"),
    ("base_str", "must be a table"),
    ("zscl_missing", "nope.csv not found"),
    ("zscl_wds", "none-0.tar not found"),
    ("zscl_type", "reference must be a string"),
    ("zscl_batch", "[zscl] batch must be an integer"),
    ("one_phase", "makes phase 0 alone"),
    ("one_shard", "makes phase 0 alone"),
]


@pytest.mark.parametrize("name, msg", PLANS, ids=[p for p, _ in PLANS])
@pytest.mark.parametrize("listing", [True, False], ids=["list", "run"])
def test_a_plan_is_checked_when_read(d, capsys, name, msg, listing):
    from modx.cli import main

    out = d / f"study-{name}-{listing}"
    code, _, err = run_cli(main, ["study", d / f"{name}.toml", "--out", out]
                        + (["--list"] if listing else []), capsys)
    assert code == 2 and msg in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


TRAIN = [
    (["--phases", "contiguous:1"], "makes phase 0 alone"),
    (["--phases", "random:1"], "makes phase 0 alone"),
    (["--methods", "zscl", "{ref}synthetic:domain=1,split=test"], "evaluation set domain1"),
    (["--methods", "zscl", "{ref}synthetic:domain=0,split=train"], "training data of phase 0"),
    (["--methods", "zscl", "{ref}synthetic"], "the run's own data"),
    (["--methods", "zscl", "{ref}csv:{d}/nope.csv"], "nope.csv not found"),
    (["--data", "wds:{d}/a.tar::{d}/notatar.tar", "--phases", "shards:2"],
     "notatar.tar is not a readable tar"),
    (["--data", "wds:{d}/a.tar::{d}/zero.tar", "--phases", "shards:2"],
     "zero.tar is not a readable tar"),
    (["--data", "wds:{d}/a.tar::{d}/empty.tar", "--phases", "shards:2"], "empty tar"),
    (["--data", "wds:{d}/a.tar::{d}/b.tar:n=1", "--phases", "shards:2"], "n= caps a probe"),
    (["--data", "wds:{d}/a.tar::{d}", "--phases", "shards:2"], "is a directory"),
]


@pytest.mark.parametrize("args, msg", TRAIN, ids=[" ".join(a)[:40] for a, _ in TRAIN])
def test_train_checks_its_data_before_writing(d, tmp_path, capsys, args, msg):
    from modx.cli import main

    argv = ["train", "--out", tmp_path / "run", "--steps", "1", "--phase0-steps", "1"]
    for a in args:
        if a.startswith("{ref}"):
            cfg = tmp_path / "c.toml"
            cfg.write_text(f'[zscl]\nreference = "{a[5:].format(d=d)}"\n')
            argv.insert(1, cfg)
        else:
            argv.append(a.format(d=d))
    code, _, err = run_cli(main, argv, capsys)
    assert code == 2 and msg in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_streamed_resume_refuses_another_worker_count(tmp_path):
    from modx.config import from_dict
    from modx.errors import TrainingError
    from modx.train.guard import check_out_dir
    from sdtools.runs import RunDir

    base = {"data": "wds:a.tar::b.tar", "phases": "shards:2", "out": str(tmp_path)}
    rd = RunDir(tmp_path)
    rd.write_config(from_dict({**base, "workers": 2}).to_dict())
    check_out_dir(rd, from_dict({**base, "workers": 2}), resume=True)
    with pytest.raises(TrainingError, match=r"workers \(2 -> 0\)"):
        check_out_dir(rd, from_dict({**base, "workers": 0}), resume=True)


def test_local_launcher_refuses_gpus_it_does_not_have(d, tmp_path, capsys, monkeypatch):
    from modx.cli import main

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    plan = tmp_path / "p.toml"
    plan.write_text("seeds = [0]\n[base]\nsteps = 1\n[grid]\nfinetune = [5e-4]\n")
    code, _, err = run_cli(main, ["study", plan, "--out", tmp_path / "st", "--launcher", "local",
                               "--gpus-per-cell", "1", "-q"], capsys)
    assert code == 2 and "0 CUDA GPU(s)" in err, err
    assert not (tmp_path / "st").exists()


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    d = tmp_path_factory.mktemp("emb")
    rng = np.random.default_rng(0)
    sdtools.Embeddings(rng.normal(size=(20, 8)), rng.normal(size=(20, 8)), np.arange(20)).save(
        d / "a.npz")
    save_modx(d / "m.pt")
    return d


FLAGS = [
    (["retrieval", "{d}/a.npz", "--data", "synthetic:n=4"], "drop --data"),
    (["rotation", "{d}/a.npz", "{d}/a.npz", "--data", "synthetic:n=4"], "drop --data"),
    (["deviation", "{d}/a.npz", "{d}/a.npz", "--precision", "fp32"], "drop --precision"),
    (["retrieval", "{d}/a.npz", "--precision", "bf16"], "drop --precision"),
    (["retrieval", "{d}/m.pt", "--data", "synthetic:n=3,n=5"], "given twice"),
    (["retrieval", "{d}/m.pt", "--data", "csv:{d}/x.csv:n=3,n=5"], "given twice"),
    (["retrieval", "{d}/m.pt", "--data", "karpathy:{d}/x.json:{d}:test:n=3:n=5"],
     "given twice"),
    (["retrieval", "{d}/m.pt", "--data", "wds:{d}/x.tar:n=3,n=5"], "given twice"),
]


@pytest.mark.parametrize("args, msg", FLAGS, ids=[" ".join(a)[:50] for a, _ in FLAGS])
def test_flags_that_would_be_ignored_are_refused(emb, capsys, monkeypatch, args, msg):
    from sdtools.cli import main

    monkeypatch.setenv("SDTOOLS_CACHE", str(emb / "cache"))
    code, _, err = run_cli(main, [a.format(d=emb) for a in args] + ["-q"], capsys)
    assert code == 2 and msg in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_mixed_pair_still_takes_data(emb, capsys, monkeypatch):
    """--data is honoured where one input is a checkpoint (it embeds that one)."""
    from sdtools.cli import main

    monkeypatch.setenv("SDTOOLS_CACHE", str(emb / "cache"))
    code, _, err = run_cli(main, ["embed", emb / "m.pt", "--data", "synthetic:n=8", "--out",
                               emb / "m8", "-q"], capsys)
    assert code == 0 and (emb / "m8.npz").is_file(), err
    code, _, err = run_cli(main, ["rotation", emb / "m8.npz", emb / "m.pt", "--data",
                               "synthetic:n=8", "-q", "--max-pairs", "10"], capsys)
    assert code == 0, err


META = torch.ones(6, 4, device="meta")
API = [
    (lambda: sdtools.sample_angles(META, META), "meta device"),
    (lambda: sdtools.procrustes(META, META), "meta device"),
    (lambda: sdtools.sam_drift(META, META), "meta device"),
    (lambda: sdtools.linear_cka(META, META), "meta device"),
    (lambda: sdtools.mutual_knn(META, META), "meta device"),
    (lambda: sdtools.retrieval(META, META, list(range(6))), "meta device"),
    (lambda: sdtools.retrieval(np.eye(6, 4), np.eye(6, 4), META[:, 0].long()), "meta device"),
    (lambda: sdtools.deviation(META, META, META, META, list(range(6))), "meta device"),
    (lambda: sdtools.Embeddings(META, META, np.arange(6)), "meta device"),
    (lambda: sdtools.embed("/nonexistent/x.pt", "synthetic", num_workers=-1), "num_workers"),
    (lambda: sdtools.embed("/nonexistent/x.pt", "synthetic", num_workers=1.5), "num_workers"),
]


@pytest.mark.parametrize("call, msg", API)
def test_api_errors_are_user_errors(call, msg):
    with pytest.raises(UserError, match=msg):
        call()


def test_an_unwritable_cache_is_a_warning_not_a_traceback(emb, tmp_path, caplog):
    (tmp_path / "file").write_text("a file where the cache folder would be")
    e = sdtools.embed(str(emb / "m.pt"), "synthetic:n=4", cache_dir=tmp_path / "file" / "c",
                      progress=False)
    assert e.n_images == 4
    said = [r for r in caplog.records if "cannot write the embedding cache" in r.message]
    assert [(r.name, r.levelname) for r in said] == [("sdtools.models.extract", "WARNING")]


def test_a_read_only_cache_is_found_by_trying_to_write(emb, tmp_path, capsys, monkeypatch):
    """The up-front check tries to write (permission bits say nothing for root, whom the
    tests may run as): a folder that refuses a new file is skipped with a warning."""
    import os
    import tempfile

    from sdtools.cli import main

    cache = tmp_path / "cache"
    cache.mkdir()
    real = tempfile.mkstemp

    def refuse(*a, dir=None, **k):
        if dir is not None and os.path.realpath(dir).startswith(str(cache)):
            raise PermissionError(13, "Permission denied")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setenv("SDTOOLS_CACHE", str(cache))
    code, _, err = run_cli(main, ["retrieval", emb / "m.pt", "--data", "synthetic:n=4", "-q"],
                        capsys)
    assert code == 0, err
    assert "warning: the embedding cache" in err and "not writable" in err, err
    assert list(cache.iterdir()) == []


def test_a_zero_byte_times_json_is_refused_in_one_line(tmp_path, capsys):
    from modx.cli import main

    plan = tmp_path / "p.toml"
    plan.write_text("seeds = [0]\n[base]\nsteps = 1\n[grid]\nfinetune = [5e-4]\n")
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "times.json").write_bytes(b"")
    code, _, err = run_cli(main, ["study", plan, "--out", tmp_path / "st", "-q"], capsys)
    assert code == 2 and "times.json" in err and "Traceback" not in err, err
    assert json.dumps(sorted(p.name for p in (tmp_path / "st").iterdir())) == '["times.json"]'


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_output_where_no_file_can_be_made_is_refused_before_work(tmp_path, capsys):
    """Permissions may say yes (root) where a file still cannot be made: tried first."""
    from sdtools.cli import main

    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    V = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    sdtools.Embeddings(V, V, np.arange(40)).save(a)
    sdtools.Embeddings(V + 0.1, V, np.arange(40)).save(b)
    with pytest.raises(SystemExit) as e:
        main(["rotation", str(a), str(b), "-q", "--json", "/proc/x.json"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "a file cannot be made in /proc" in err and "Traceback" not in err
