"""Configs by schema: flags win, a key given twice or a section the schema lacks is refused."""

import pytest

from modx.config import from_dict, load
from modx.errors import ConfigError


def _toml(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_flags_win_over_every_place_in_the_file(tmp_path):
    p = _toml(tmp_path, "lr = 1e-3\n")
    assert load(p, {"lr": 0.005}).lr == 0.005
    p = _toml(tmp_path, "[modx]\nalpha = 3.0\n")
    assert load(p).alpha == 3.0
    assert load(p, {"alpha": 7.0}).alpha == 7.0  # a flag beats the section too


@pytest.mark.parametrize("text, msg", [
    ("lr = 1e-3\n[opt]\nlr = 9e-3\n", "unknown section [opt]"),
    ("alpha = 2.0\n[modx]\nalpha = 3.0\n", "alpha is given twice"),
    ("[modx]\nlr = 1.0\n", "'lr' does not belong in [modx]"),
    ("[lwf]\ntemperature = 2.0\nlwf_temperature = 1.0\n", "'lwf_temperature' does not belong"),
    ("lwf_temperature = 2.0\n[lwf]\ntemperature = 1.0\n", "temperature is given twice"),
    ("lr = 1e-3\nlr = 2e-3\n", "not valid TOML"),  # a key twice in one table
])
def test_ambiguous_configs_are_refused(tmp_path, text, msg):
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load(_toml(tmp_path, text))


def test_lwf_and_modx_temperatures_are_two_keys(tmp_path):
    cfg = load(_toml(tmp_path, "[lwf]\ntemperature = 2.0\n[modx]\ntemperature = 0.5\n"))
    assert (cfg.lwf_temperature, cfg.temperature) == (2.0, 0.5)
    assert load(_toml(tmp_path, "[modx]\ntemperature = 0.5\n")).lwf_temperature == 1.0
    # a top-level temperature (the one shared key of older configs) still sets both
    old = load(_toml(tmp_path, "temperature = 3.0\n"))
    assert (old.lwf_temperature, old.temperature) == (3.0, 3.0)
    # a run's own config.json (flat, both keys) reads back as written
    assert from_dict(old.to_dict()) == old
    assert from_dict({**old.to_dict(), "lwf_temperature": 1.5}).lwf_temperature == 1.5
    with pytest.raises(ConfigError, match=r"\[lwf\] temperature must be > 0"):
        load(_toml(tmp_path, "[lwf]\ntemperature = 0.0\n"))


def test_lwf_distils_at_its_own_temperature():
    """LwF's loss reads [lwf] temperature, Mod-X's is untouched by it."""
    import torch

    from modx.config import TrainConfig
    from modx.losses import lwf_distillation
    from modx.methods.base import Features
    from modx.methods.lwf import LwF

    g = torch.Generator().manual_seed(0)
    img, txt, io, to = (torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
                        for _ in range(4))
    feats = Features(img=img, txt=txt, img_old=io, txt_old=to)
    for t in (0.5, 2.0):
        cfg = TrainConfig(lwf_temperature=t, lwf_weight=1.0, temperature=1.0)
        loss, _ = LwF(cfg).loss(None, feats)
        ref = lwf_distillation(img, txt, io, to, temperature=t, reduction=cfg.reduction)
        assert float(loss) == pytest.approx(float(ref))
    assert float(LwF(TrainConfig(lwf_temperature=0.5)).loss(None, feats)[0]) != pytest.approx(
        float(LwF(TrainConfig(lwf_temperature=2.0)).loss(None, feats)[0]))


def test_sections_and_flat_keys_give_the_same_config():
    flat = from_dict({"alpha": 4.0, "replay_size": 50, "methods": ["modx", "replay"]})
    nested = from_dict({"methods": ["modx", "replay"], "modx": {"alpha": 4.0},
                        "replay": {"replay_size": 50}})
    assert flat == nested


def test_a_study_folder_is_reused_only_with_the_same_training(tmp_path):
    from modx.study import Plan, _same_training, write_plan

    grid = {"finetune": [5e-4]}
    old = Plan("s", {"steps": 5, "modx": {"alpha": 3.0}}, [0], grid)
    write_plan(old, tmp_path)
    _same_training(Plan("s", {"steps": 5, "alpha": 3.0}, [0, 1], grid), tmp_path)  # grown
    with pytest.raises(ConfigError, match="steps differ"):
        _same_training(Plan("s", {"steps": 6, "modx": {"alpha": 3.0}}, [0], grid), tmp_path)
    with pytest.raises(ConfigError, match="alpha"):
        _same_training(Plan("s", {"steps": 5}, [0], grid), tmp_path)


def test_a_damaged_cell_report_names_the_cell(tmp_path):
    from modx.study import Plan
    from modx.study_stats import _collect

    plan = Plan("s", {"steps": 1}, [0], {"finetune": [5e-4]})
    cell = plan.cells()[0]
    cell.run_dir(tmp_path).mkdir(parents=True)
    for text in ("{}", '{"methods": {"finetune": {"r1": [[1.0]]'):
        (cell.run_dir(tmp_path) / "report.json").write_text(text)
        with pytest.raises(ConfigError, match="cell 0 .* report.json is damaged"):
            _collect(plan, tmp_path)


def test_every_setting_is_reachable_with_set(tmp_path, capsys):
    """``modx train --set KEY=VALUE``: top-level keys, schema sections and methods' own
    settings (a boolean switch included), read as TOML values; the same checks as a file."""
    from modx.config import FIELDS, flatten, parse_sets

    sets = ["warmup=0.1", "lwf.temperature=2", "zscl.ensemble=false", "zscl.weight=0.5",
            'eval_data=["synthetic:domain=0,split=test,n=4"]', "device=cpu"]
    flat = flatten(parse_sets(sets), "--set")
    cfg = from_dict({"methods": ["lwf", "zscl"]}, "flags", flat)
    assert (cfg.warmup, cfg.lwf_temperature, cfg.temperature) == (0.1, 2, 1.0)
    assert cfg.method_options == {"zscl": {"ensemble": False, "weight": 0.5}}
    assert cfg.eval_data == ["synthetic:domain=0,split=test,n=4"]
    assert {k for k in FIELDS} >= {k for k in flat if k != "method_options"}
    for bad, msg in ((["lr"], "write KEY=VALUE"), (["lrr=1"], "unknown key 'lrr'"),
                     (["zscl.ensemble=2"], "true or false"), (["lr=1", "lr=2"], "given twice"),
                     (["nope.x=1"], r"unknown section \[nope\]")):
        with pytest.raises(ConfigError, match=msg):
            from_dict({"methods": ["zscl"]}, "flags", flatten(parse_sets(bad), "--set"))


def test_set_on_the_command_line_refuses_a_key_also_given_as_a_flag(capsys):
    from modx.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--lr", "1e-3", "--set", "lr=2e-3", "--out", "unused"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "lr is given both as --lr and --set" in err and "\n" not in err


def test_steps_from_the_command_line_with_epochs_is_refused(tmp_path):
    """--steps would be ignored where epochs is set: refused, naming both."""
    with pytest.raises(ConfigError, match="has no effect with epochs = 1"):
        from_dict({"epochs": 1}, "flags", {"steps": 3})
    with pytest.raises(ConfigError, match="has no effect with epochs"):
        from_dict({}, "flags", {"steps": 3, "epochs": 2.0})
    assert from_dict({"epochs": 1}, "flags", {"steps": None}).epochs == 1  # not given
    assert from_dict({"steps": 3, "epochs": 1}).epochs == 1  # a run's own config.json
