import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_cfg

from modx.config import ConfigError, TrainConfig, from_dict, load
from modx.data import PhaseTensors, batches, split_phases
from modx.feed import phase_stream
from modx.methods import EWC, Cumulative, Joint, make
from modx.train import Trainer, TrainingError
from modx.train.step import PhaseContext, assemble, train_step
from sdtools.data.specs import open_data
from sdtools.errors import DataError

DATA = "synthetic:n_domains=3,train_per_domain=48,test_per_domain=12"


def _cfg(tmp_path, **kw):
    model = tmp_path / "tiny.json"
    if not model.exists():
        model.write_text(json.dumps(tiny_cfg()))
    base = dict(data=DATA, model=str(model), phase0_steps=4, steps=3, batch_size=16,
                methods=["finetune"], out=str(tmp_path / "run"), quiet=True, log_every=1,
                alpha=3.0)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def _equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_three_phase_run_writes_every_artefact(tmp_path):
    cfg = _cfg(tmp_path, methods=["finetune", "modx", "joint", "cumulative", "lwf", "rkd", "ewc",
                                  "replay"])
    report = Trainer(cfg, progress=False).run().to_dict()
    run = Path(cfg.out)
    for f in ("config.json", "metrics.jsonl", "report.json", "report.md", "phase0/model.pt",
              "phase0/eval.json", "phase0/probe.npz"):
        assert (run / f).is_file(), f
    # joint (the paper's CLIP_jt): one model on all the data, reported as its phase 1
    assert (run / "joint" / "phase1" / "model.pt").is_file()
    assert not (run / "joint" / "phase2").exists()
    assert np.asarray(report["methods"]["joint"]["r1"]).shape == (2, 3)
    for m in [m for m in cfg.methods if m != "joint"]:
        for t in (1, 2):
            for f in ("model.pt", "eval.json", "probe.npz"):
                assert (run / m / f"phase{t}" / f).is_file(), (m, t, f)
        r = report["methods"][m]
        assert np.asarray(r["r1"]).shape == (3, 3)
        assert r["bwt"] is not None and len(r["geometry"]) == 2
        assert set(r["geometry"][0]) == {"phase", "vs_phase0", "vs_prev"}
    assert report["methods"]["modx"]["extras"]["selected_share"][1] is not None
    # all methods start from the same phase-0 model
    assert report["methods"]["modx"]["r1"][0] == report["methods"]["finetune"]["r1"][0]
    # every event line is JSON; the saved checkpoint loads with sdtools
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(x)["event"] in ("train", "eval") for x in lines)
    import sdtools

    loaded = sdtools.load_checkpoint(run / "modx" / "phase2" / "model.pt")
    assert loaded.model.sdtools_info["model_cfg"] == tiny_cfg()
    # no temporary files are left behind
    assert not list(run.rglob("*.tmp*"))


@pytest.mark.slow
def test_modx_with_alpha_zero_equals_finetune(tmp_path):
    a = _cfg(tmp_path, methods=["finetune", "modx"], alpha=0.0, steps=4)
    Trainer(a, progress=False).run()
    run = Path(a.out)
    for t in (1, 2):
        assert _equal(_weights(run / "finetune" / f"phase{t}" / "model.pt"),
                      _weights(run / "modx" / f"phase{t}" / "model.pt"))


def test_teacher_cache_matches_live_teacher_and_teacher_is_frozen(tmp_path):
    cfg = _cfg(tmp_path, methods=["modx"], teacher_cache=False)
    tr = Trainer(cfg, progress=False)
    tr.phase0()
    strategy = make("modx", cfg)
    teacher = tr.new_model()
    teacher.load_state_dict(tr.model.state_dict())
    teacher.eval().requires_grad_(False)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    pt = tr.tensors(1)
    cache = tr.teacher_cache(teacher, pt)
    bi, bc = next(batches(pt, 16, 0, 1))
    x, tok = pt.image_batch(bi), pt.token_batch(bc)
    with torch.no_grad():
        live_i, live_t = teacher.encode_image(x), teacher.encode_text(tok)
    torch.testing.assert_close(cache["img"][torch.as_tensor(bi)], live_i, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cache["txt"][torch.as_tensor(bc)], live_t, atol=1e-5, rtol=1e-5)
    img, txt, _ = tr.model(x, tok)
    l_live, _ = strategy.loss(tr, {"img": img, "txt": txt, "img_old": live_i,
                                   "txt_old": live_t})
    l_cache, _ = strategy.loss(tr, {"img": img, "txt": txt,
                                    "img_old": cache["img"][torch.as_tensor(bi)],
                                    "txt_old": cache["txt"][torch.as_tensor(bc)]})
    assert float(l_live.detach()) == pytest.approx(float(l_cache.detach()), rel=1e-5)
    # one training step with the live teacher: the teacher gets no gradient, never changes
    ctx = PhaseContext(tr, 1, "modx", strategy, teacher, None, pt, tr.model, tr.model,
                       torch.optim.AdamW(tr.model.parameters(), lr=1e-2), 3, 1e-2, None)
    x, tok, old = assemble(ctx, next(phase_stream(pt, 16, 0, 1)), 0)
    train_step(ctx, x, tok, old, 0, 1)
    assert all(p.grad is None for p in teacher.parameters())
    assert _equal(before, teacher.state_dict())


def test_cumulative_sees_all_earlier_data_and_joint_sees_everything(tmp_path):
    tr = Trainer(_cfg(tmp_path), progress=False)
    cumulative = Cumulative(tr.cfg)
    for t in range(3):
        d = cumulative.phase_data(t, tr.phases)
        assert d.n_images == sum(p.n_images for p in tr.phases[: t + 1])
        assert set(d.captions) == set().union(*(set(p.captions) for p in tr.phases[: t + 1]))
    everything = Joint(tr.cfg).phase_data(1, tr.phases)
    assert everything.n_images == sum(p.n_images for p in tr.phases)


@pytest.mark.slow
def test_ewc_penalty_zero_at_phase_start_and_grows(tmp_path):
    tr = Trainer(_cfg(tmp_path, methods=["ewc"]), progress=False)
    tr.phase0()
    ewc = EWC(tr.cfg)
    ewc.begin_phase(tr, 1)
    assert float(ewc.quadratic(tr).detach()) == 0.0
    assert any(float(f.sum()) > 0 for f in ewc.fisher.values())
    pens = []
    with torch.no_grad():
        for _ in range(3):
            for p in tr.model.parameters():
                p.add_(1e-3 * torch.randn_like(p))
            pens.append(float(ewc.quadratic(tr).detach()))
    assert 0 < pens[0] < pens[1] < pens[2]


def test_batches_have_no_duplicate_captions_and_are_deterministic(tmp_path):
    tr = Trainer(_cfg(tmp_path), progress=False)
    pt = tr.tensors(0)
    gen = batches(pt, 16, 0, 0)
    seq = [next(gen) for _ in range(6)]
    for bi, bc in seq:
        assert len({pt.data.captions[c] for c in bc}) == len(bc) == 16
        assert all(pt.data.image_of_text[c] == i for i, c in zip(bi, bc, strict=True))
    again = batches(pt, 16, 0, 0, start=4)
    for bi, bc in seq[4:]:
        bi2, bc2 = next(again)
        np.testing.assert_array_equal(bi, bi2)
        np.testing.assert_array_equal(bc, bc2)


def test_phase_splits_and_bad_input(tmp_path):
    data = open_data("synthetic:domain=all,n=10,split=train")
    parts = split_phases(data, "contiguous:4")  # contiguous slices follow the data's order
    assert [p.n_images for p in parts] == [10, 10, 10, 10]
    assert all(np.array_equal(p.domains, np.full(10, k)) for k, p in enumerate(parts))
    assert [p.n_images for p in split_phases(data, "contiguous:3")] == [14, 13, 13]
    assert [p.n_images for p in split_phases(data, "domain")] == [10, 10, 10, 10]
    rnd = split_phases(data, "random:2", seed=1)
    assert sum(p.n_images for p in rnd) == 40
    with pytest.raises(DataError, match="only 40 images"):
        split_phases(data, "contiguous:41")
    with pytest.raises(DataError, match="unknown phase split"):
        split_phases(data, "bydate")
    with pytest.raises(ConfigError, match="unknown strategy 'modxx'; valid: .*finetune"):
        _cfg(tmp_path, methods=["modxx"]).validate()
    with pytest.raises(ConfigError, match="unknown key 'alpah'.*valid keys"):
        from_dict({"alpah": 3})
    (tmp_path / "c.toml").write_text('methods = ["finetune"]\n[optim]\nsteps = 7\n')
    with pytest.raises(ConfigError, match="unknown section"):
        load(tmp_path / "c.toml", {"alpha": 2.0})
    (tmp_path / "c.toml").write_text('methods = ["finetune"]\nsteps = 7\n[modx]\nalpha = 1.0\n')
    assert load(tmp_path / "c.toml", {"alpha": 2.0}).steps == 7
    cfg = _cfg(tmp_path, batch_size=64, out=str(tmp_path / "big"))
    with pytest.raises(TrainingError, match="larger than phase"):
        Trainer(cfg, progress=False).run()
    assert not (tmp_path / "big" / "config.json").exists()  # checked before anything is written


@pytest.mark.slow
def test_existing_run_needs_resume_and_resume_keeps_provenance(tmp_path):
    cfg = _cfg(tmp_path)
    Trainer(cfg, progress=False).run()
    saved = (Path(cfg.out) / "config.json").read_text()
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(cfg, progress=False).run()
    other = tmp_path / "other.json"
    other.write_text(json.dumps(tiny_cfg(embed_dim=48)))
    with pytest.raises(TrainingError, match=r"other training settings.*model .*lr \(0.0005"):
        Trainer(_cfg(tmp_path, model=str(other), lr=1e-3), resume=True, progress=False).run()
    assert (Path(cfg.out) / "config.json").read_text() == saved  # never rewritten
    # a resumed finished run changes nothing; --resume where there is no run is an error
    Trainer(cfg, resume=True, progress=False).run()
    with pytest.raises(TrainingError, match="holds no modx run"):
        Trainer(_cfg(tmp_path, out=str(tmp_path / "empty")), resume=True, progress=False).run()
    # a folder with the user's files is never written into without --force
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("my own file")
    (mine / "notes.md").write_text("keep me")
    with pytest.raises(TrainingError, match="not a modx run"):
        Trainer(_cfg(tmp_path, out=str(mine)), progress=False).run()
    assert (mine / "config.json").read_text() == "my own file"


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, methods=["modx"], checkpoint_every=1, steps=4)
    import modx.methods as S

    calls = {"n": 0}
    real = S.ModX.loss

    def poisoned(self, trainer, feats):
        calls["n"] += 1
        term, logs = real(self, trainer, feats)
        return (term * float("nan") if calls["n"] == 3 else term), logs

    monkeypatch.setattr(S.ModX, "loss", poisoned)
    with pytest.raises(TrainingError, match="loss became nan at phase 1, step 2"):
        Trainer(cfg, progress=False).run()
    last = Path(cfg.out) / "modx" / "phase1" / "last.pt"
    st = torch.load(last, weights_only=True)
    assert st["step"] == 2
    assert all(torch.isfinite(v).all() for v in st["state_dict"].values() if v.is_floating_point())


def test_disk_error_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, checkpoint_every=1, steps=3)
    Trainer(cfg, progress=False).phase0()
    target = Path(cfg.out) / "phase0" / "model.pt"
    before = target.read_bytes()
    real = torch.save

    def full_disk(obj, f, *a, **k):
        real(obj, f, *a, **k)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    tr = Trainer(cfg, progress=False)
    tr.model = tr.new_model()
    with pytest.raises(TrainingError, match="previous checkpoint is untouched"):
        tr.save({"x": torch.zeros(1)}, target)
    assert target.read_bytes() == before
    assert not list(target.parent.glob("*.tmp*"))


_RUN = """
import sys
from modx.config import load
from modx.train import Trainer
Trainer(load(sys.argv[1]), resume=len(sys.argv) > 2, progress=False).run()
"""


@pytest.mark.slow
@pytest.mark.parametrize("fail_at", ["modx:1:6", "modx:2:0"])  # mid-phase; phase boundary
def test_crashed_run_resumes_to_identical_weights(tmp_path, fail_at):
    """A crash injected at a given step (not by a clock); --resume ends bit-identical."""
    def write(name, out):
        cfg = _cfg(tmp_path, methods=["modx"], steps=12, checkpoint_every=2, out=str(out))
        from modx.config import to_toml

        p = tmp_path / name
        p.write_text(to_toml(cfg))
        return p

    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    ref_cfg = write("ref.toml", tmp_path / "ref")
    subprocess.run([sys.executable, "-c", _RUN, str(ref_cfg)], check=True, env=env, timeout=600)
    cfg = write("crashed.toml", tmp_path / "crashed")
    crashed = subprocess.run([sys.executable, "-c", _RUN, str(cfg)], timeout=600,
                             env=dict(env, MODX_FAIL_AT=fail_at))
    assert crashed.returncode == 3
    run = tmp_path / "crashed" / "modx"
    assert not (run / "phase2" / "model.pt").exists()
    if fail_at.endswith(":6"):
        assert torch.load(run / "phase1" / "last.pt", weights_only=True)["step"] == 6
    subprocess.run([sys.executable, "-c", _RUN, str(cfg), "--resume"], check=True, env=env,
                   timeout=600)
    for t in (1, 2):
        assert _equal(_weights(tmp_path / "ref" / "modx" / f"phase{t}" / "model.pt"),
                      _weights(run / f"phase{t}" / "model.pt"))
    # a phase checkpoint holds the model and its config, not the optimizer
    assert "optimizer" not in torch.load(run / "phase1" / "model.pt", weights_only=True)
    assert not list(run.rglob("last.pt"))


def test_phase_tensors_streams_when_large(tmp_path):
    tr = Trainer(_cfg(tmp_path), progress=False)
    small = PhaseTensors(tr.phases[0], tr.preprocess, tr.tokenizer)
    big = PhaseTensors(tr.phases[0], tr.preprocess, tr.tokenizer, max_bytes=0)
    assert small.images is not None and big.images is None
    torch.testing.assert_close(small.image_batch([3, 5]), big.image_batch([3, 5]))


@pytest.mark.slow
def test_modx_train_cli_reads_toml_and_flags(tmp_path, capsys):
    from modx.cli import main
    from modx.config import to_toml

    cfg = _cfg(tmp_path, steps=2)
    (tmp_path / "run.toml").write_text(to_toml(cfg))
    try:
        main(["train", str(tmp_path / "run.toml"), "--methods", "finetune,lwf", "--steps", "1",
              "--out", str(tmp_path / "cli-run")])
    except SystemExit as exc:
        assert exc.code in (0, None)
    rep = json.loads((tmp_path / "cli-run" / "report.json").read_text())
    assert list(rep["methods"]) == ["finetune", "lwf"]
    assert rep["config"]["steps"] == 1 and rep["config"]["alpha"] == 3.0
    with pytest.raises(SystemExit) as exc:
        main(["train", str(tmp_path / "run.toml"), "--methods", "sgd", "-q"])
    assert exc.value.code == 2
    assert "unknown strategy 'sgd'" in capsys.readouterr().err


@pytest.mark.slow
def test_init_works_with_every_method(tmp_path):
    """Phase 0 is a given model: methods that read phase 0's data (ewc, replay, cumulative)
    skip it instead of crashing."""
    from helpers import save_modx

    save_modx(tmp_path / "start.pt", seed=9)
    cfg = _cfg(tmp_path, init=str(tmp_path / "start.pt"), model=None,
               methods=["finetune", "modx", "lwf", "ewc", "replay", "cumulative", "joint"])
    report = Trainer(cfg, progress=False).run().to_dict()
    for m in cfg.methods:
        assert np.asarray(report["methods"][m]["r1"]).shape[0] >= 2, m
