"""Methods as plugins: a method defined here, in one file, registers and trains; WiSE-FT and
EMA against reference computations."""

import json
from pathlib import Path

import pytest
import torch
from helpers import tiny_cfg

from modx.config import ConfigError, load
from modx.methods import METHODS, Strategy, register
from modx.study import Plan
from modx.train import Trainer

DATA = "synthetic:n_domains=3,train_per_domain=48,test_per_domain=12"


class Shrink(Strategy):
    """A test method: an L2 pull of the weights towards zero, its own weight setting."""

    name = "shrink"
    knob = "weight"
    log_keys = ("l2",)
    options = {"weight": 0.01}

    def penalty(self, trainer):
        l2 = sum((p**2).sum() for _, p in trainer.named_params())
        return self.option("weight") * l2, {"l2": float(l2.detach())}


@pytest.fixture
def shrink():
    register(Shrink)
    yield Shrink
    METHODS.pop("shrink", None)


def _toml(tmp_path, text):
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_cfg()))
    p = tmp_path / "c.toml"
    p.write_text(f'data = "{DATA}"\nmodel = "{tmp_path / "tiny.json"}"\nphase0_steps = 4\n'
                 f'steps = 3\nbatch_size = 16\nquiet = true\nlog_every = 1\n'
                 f'out = "{tmp_path / "run"}"\n' + text)
    return p


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_a_method_in_one_file_registers_trains_and_is_swept(tmp_path, shrink):
    cfg = load(_toml(tmp_path, 'methods = ["shrink"]\n[shrink]\nweight = 0.2\n'))
    assert cfg.method_options == {"shrink": {"weight": 0.2}}
    Trainer(cfg, progress=False).run()
    events = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("l2" in e for e in events if e.get("method") == "shrink")
    plan = Plan("p", {"data": DATA}, [0], {"finetune": [5e-4], "shrink": [0.1, 0.3]})
    assert [c.name for c in plan.cells()] == ["finetune-lr0.0005", "shrink-weight0.1",
                                              "shrink-weight0.3"]
    assert plan.config(0, "shrink", 0.3).method_options == {"shrink": {"weight": 0.3}}
    with pytest.raises(ConfigError, match="not a setting of"):
        load(_toml(tmp_path, 'methods = ["shrink"]\n[shrink]\nweigth = 0.2\n'))


def _run(tmp_path, name, methods, options=""):
    p = _toml(tmp_path, f'methods = {json.dumps(methods)}\n' + options)
    text = p.read_text().replace(str(tmp_path / "run"), str(tmp_path / name))
    p.write_text(text)
    Trainer(load(p), progress=False).run()
    return tmp_path / name


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [0.0, 0.25])
def test_wiseft_interpolates_each_phase_with_its_start(tmp_path, ratio):
    """Phase 1 of WiSE-FT is (1 - r) phase 0 + r (phase 1 fine-tuned from phase 0): the
    same run's fine-tuning, which starts from the same phase-0 model with the same seed."""
    run = _run(tmp_path, "w", ["finetune", "wiseft"], f"[wiseft]\nratio = {ratio}\n")
    w0 = _weights(run / "phase0" / "model.pt")
    ft = _weights(run / "finetune" / "phase1" / "model.pt")
    wi = _weights(run / "wiseft" / "phase1" / "model.pt")
    for k in w0:
        if w0[k].is_floating_point():
            torch.testing.assert_close(wi[k], (1 - ratio) * w0[k] + ratio * ft[k])


@pytest.mark.slow
def test_ema_with_no_memory_is_fine_tuning(tmp_path):
    run = _run(tmp_path, "e", ["finetune", "ema"], "[ema]\ndecay = 0.0\n")
    for t in (1, 2):
        ft = _weights(run / "finetune" / f"phase{t}" / "model.pt")
        em = _weights(run / "ema" / f"phase{t}" / "model.pt")
        assert all(torch.equal(ft[k], em[k]) for k in ft)


def test_ema_averages_the_steps():
    """after_step keeps w_ema = d w_ema + (1 - d) w, as an explicit loop over steps does."""
    from modx.methods import EMA

    class Tr:
        model = torch.nn.Linear(3, 2)

    ema, tr = EMA(type("C", (), {"method_options": {"ema": {"decay": 0.9}}})()), Tr()
    ema.begin_phase(tr, 1)
    ref = {k: v.clone() for k, v in tr.model.state_dict().items()}
    for step in range(5):
        with torch.no_grad():
            for p in tr.model.parameters():
                p.add_(float(step + 1))
        ema.after_step(tr, 1, step)
        for k, v in tr.model.state_dict().items():
            ref[k] = 0.9 * ref[k] + 0.1 * v
    ema.end_phase(tr, 1)
    for k, v in tr.model.state_dict().items():
        torch.testing.assert_close(v, ref[k])


def test_method_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="ratio must be in"):
        load(_toml(tmp_path, 'methods = ["wiseft"]\n[wiseft]\nratio = 1.5\n'))
    with pytest.raises(ConfigError, match="must be a number"):
        load(_toml(tmp_path, 'methods = ["ema"]\n[ema]\ndecay = "high"\n'))
    assert Path(METHODS["wiseft"].__module__.replace(".", "/") + ".py").name == "wiseft.py"


def test_reference_distillation_matches_an_explicit_loop():
    from modx.methods.zscl import reference_distillation

    g = torch.Generator().manual_seed(0)
    f = [torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=1) for _ in range(4)]
    got = reference_distillation(*f, scale=10.0)
    s, t = 10.0 * f[0] @ f[1].T, 10.0 * f[2] @ f[3].T
    ref = 0.0
    for a, b in ((t, s), (t.T, s.T)):
        for i in range(5):
            p, q = torch.softmax(a[i], 0), torch.softmax(b[i], 0)
            ref += float((p * (p.log() - q.log())).sum()) / 5
    assert float(got) == pytest.approx(ref / 2, rel=1e-6)
    assert float(reference_distillation(f[0], f[1], f[0], f[1], 10.0)) == pytest.approx(0.0,
                                                                                      abs=1e-7)


@pytest.mark.slow
def test_zscl_trains_from_the_initial_model_on_its_reference_set(tmp_path):
    run = _run(tmp_path, "z", ["finetune", "zscl"],
               '[zscl]\nweight = 0.5\nbatch = 8\nreference = "synthetic:n_domains=4,'
               'domain=3,split=train,n=16"\n')
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [e["ref_distill"] for e in events if e.get("method") == "zscl" and "ref_distill" in e]
    assert vals and all(v >= 0 for v in vals)
    assert vals[0] == pytest.approx(0.0, abs=1e-6)  # phase 1 starts at the initial model
    assert any(v > 1e-6 for v in vals)
    assert (run / "zscl" / "phase2" / "model.pt").is_file()
    with pytest.raises(ConfigError, match="must be a string"):
        load(_toml(tmp_path, 'methods = ["zscl"]\n[zscl]\nreference = 3\n'))
