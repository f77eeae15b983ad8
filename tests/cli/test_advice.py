"""The advice of every message names the real fix: damaged files inside a run (0-byte
checkpoints, config.json) on --resume, a damaged shared phase 0 of a study, and the messages
that pointed at the wrong thing (unknown methods, missing arguments, run: folders, ':' in
Karpathy paths, a --force that a command did not have)."""

import json
import shutil

import numpy as np
import pytest
from helpers import run_cli, tiny_cfg
from PIL import Image

DATA = "synthetic:n_domains=3,train_per_domain=24,test_per_domain=6"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny run of finetune and replay (replay keeps a strategy.pt)."""
    from modx.cli import main

    d = tmp_path_factory.mktemp("advice")
    (d / "tiny.json").write_text(json.dumps(tiny_cfg()))
    args = ["train", "--data", DATA, "--model", d / "tiny.json", "--phase0-steps", "2",
            "--steps", "2", "--batch-size", "8", "--methods", "finetune,replay", "--out",
            d / "run", "--workers", "0", "-q"]
    main([str(a) for a in args])
    return d, [str(a) for a in args]


def _damaged(run, tmp_path, damage):
    d, args = run
    out = tmp_path / "run"
    shutil.copytree(d / "run", out)
    damage(out)
    return [a if a != str(d / "run") else str(out) for a in args] + ["--resume"]


def _empty(*parts):
    def damage(out):
        p = out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return damage


def _unfinish(method, t, then):
    def damage(out):
        (out / method / f"phase{t}" / "eval.json").unlink()
        then(out)
    return damage


CASES = [
    (_empty("finetune", "phase1", "model.pt"), "finetune/phase1/model.pt of this run is damaged",
     "later phase folders of finetune, then --resume"),
    (_unfinish("finetune", 2, _empty("finetune", "phase2", "last.pt")), "last.pt of this run is "
     "damaged (it is empty)", "--resume restarts phase 2 from its beginning"),
    (_empty("replay", "phase1", "strategy.pt"), "strategy.pt of this run is damaged",
     "later phase folders of replay"),
    (_empty("phase0", "model.pt"), "phase0/model.pt of this run is damaged",
     "start the run again in a new --out"),
    (_empty("config.json"), "config.json is damaged", "restore it, or start over"),
]


@pytest.mark.slow
@pytest.mark.parametrize("damage, what, fix", CASES,
                         ids=["model.pt", "last.pt", "strategy.pt", "phase0", "config.json"])
def test_a_damaged_run_file_names_the_real_fix(run, tmp_path, capsys, damage, what, fix):
    from modx.cli import main

    args = _damaged(run, tmp_path, damage)
    code, _, err = run_cli(main, args, capsys)
    assert code == 2, err
    assert what in err and fix in err, err
    assert "pass a .pt" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    if "config.json" in what:  # a fresh run there is refused with the same advice
        code, _, err2 = run_cli(main, args[:-1], capsys)
        assert code == 2 and "config.json is damaged" in err2, err2


def test_a_damaged_shared_phase0_is_named_where_it_is(tmp_path):
    from modx.errors import TrainingError
    from modx.study import _check_shared_phase0
    from sdtools.runs import RunDir

    base = RunDir(tmp_path / "seed3" / "phase0-run")
    base.phase_dir("phase0", 0).mkdir(parents=True)
    base.model_path("phase0", 0).write_bytes(b"")
    with pytest.raises(TrainingError, match=r"shared phase-0 model of seed 3 .*delete "
                                            r".*phase0-run and run the study again"):
        _check_shared_phase0(base, 3)


@pytest.fixture
def files(tmp_path):
    grid = "[grid]\nfinetune = [5e-4]\n"
    (tmp_path / "unknown.toml").write_text(f"seeds = [0]\n{grid}magic = [1.0]\n")
    (tmp_path / "unknown0.toml").write_text(f"seeds = [0]\n{grid}magic = []\n")
    (tmp_path / "only.toml").write_text("seeds = [0]\n[grid]\nmagic = [1]\n")  # no finetune
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    return tmp_path


MODX = [
    (["study", "{d}/unknown.toml", "--list"], "unknown method 'magic'"),
    (["study", "{d}/unknown0.toml", "--list"], "unknown method 'magic'"),
    (["study", "{d}/only.toml", "--list"], "unknown method 'magic'"),
    (["study", "--list"], "give a study plan file (TOML) or --preset"),
    (["train", "--data", DATA, "--methods", "finetune", "--out", "{d}/user", "--steps", "1"],
     "pass --force"),
]


@pytest.mark.parametrize("args, msg", MODX, ids=[" ".join(a)[:40] for a, _ in MODX])
def test_modx_advice_names_the_real_fix(files, capsys, args, msg):
    from modx.cli import main

    code, _, err = run_cli(main, [a.format(d=files) for a in args], capsys)
    assert code == 2 and msg in err, err
    assert "has no knob" not in err and "not both" not in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_demo_has_the_force_its_refusal_names(files, capsys):
    """modx demo into a folder of the user's files says --force, and has it."""
    from modx.cli import main

    code, out, _ = run_cli(main, ["demo", "--help"], capsys)
    assert code == 0 and "--force" in out


def test_run_spec_on_a_missing_folder(tmp_path):
    import sdtools
    from sdtools.errors import DataError

    with pytest.raises(DataError, match="run directory not found"):
        sdtools.open_data(f"run:{tmp_path}/nowhere")


def test_karpathy_paths_with_a_colon(tmp_path):
    import sdtools

    root = tmp_path / "im:ages"
    root.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "a.png")
    js = tmp_path / "split:s.json"
    js.write_text(json.dumps({"images": [{"filename": "a.png", "split": "test",
                                          "sentences": [{"raw": "a black square"}]}]}))
    esc = str(js).replace(":", "\\:"), str(root).replace(":", "\\:")
    data = sdtools.open_data(f"karpathy:{esc[0]}:{esc[1]}:test")
    assert data.n_images == 1 and data.captions == ["a black square"]
    again = sdtools.open_data(data.spec)  # the spec it names itself by opens it again
    assert again.n_images == 1
