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
    ("[lwf]\ntemperature = 2.0\n[modx]\ntemperature = 1.0\n", "temperature is given twice"),
    ("lr = 1e-3\nlr = 2e-3\n", "not valid TOML"),  # a key twice in one table
])
def test_ambiguous_configs_are_refused(tmp_path, text, msg):
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load(_toml(tmp_path, text))


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
    assert (cfg.warmup, cfg.temperature) == (0.1, 2)
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
