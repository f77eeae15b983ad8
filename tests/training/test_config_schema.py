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


REFUSED = [  # (config, the whole one-line refusal): each kind of constraint, each table
    ({"lr": 0}, "lr must be > 0, got 0"),
    ({"steps": -1}, "steps must be >= 0, got -1"),
    ({"warmup": 1.0}, "warmup must be in [0, 1) (a share of the steps), got 1.0"),
    ({"seed": 2**32}, "seed must be in [0, 2^32), got 4294967296"),
    ({"eval_n": 0}, "eval_n must be >= 1, got 0"),
    ({"clip_grad": -0.5}, "clip_grad must be >= 0 (0: no clipping), got -0.5"),
    ({"lr": float("inf")}, "lr must be a finite number, got inf"),
    ({"epochs": float("nan")}, "epochs must be a finite number, got nan"),
    ({"batch_size": 2.5}, "batch_size must be an integer, got 2.5"),
    ({"steps": True}, "steps must be an integer, got True"),
    ({"lr": True}, "lr must be a number, got True"),
    ({"lr": "1e-3"}, "lr must be a number, got '1e-3'"),
    ({"linear_probe": 1}, "linear_probe must be true or false, got 1"),
    ({"eval_n": "8"}, "eval_n must be an integer or left out, got '8'"),
    ({"eval_data": ["synthetic", 3]}, "eval_data must be a list of strings, got ['synthetic', 3]"),
    ({"methods": "finetune"}, "methods must be a list of strings, got 'finetune'"),
    ({"optimizer": "sgd"}, "optimizer must be openclip or official, got 'sgd'"),
    ({"precision": "fp16"}, "precision must be fp32 or amp_bf16, got 'fp16'"),
    ({"method_options": 3}, "method_options must be a table of method sections, got 3"),
    ({"modx": {"reduction": "max"}}, "[modx] reduction must be sum or mean, got 'max'"),
    ({"modx": {"alpha": -1.0}}, "[modx] alpha must be >= 0, got -1.0"),
    ({"alpha": "lots"}, "[modx] alpha must be a number, got 'lots'"),  # flat: its section named
    ({"lwf": {"temperature": -1}}, "[lwf] temperature must be > 0, got -1"),
    ({"lwf_temperature": 0.0}, "[lwf] temperature must be > 0, got 0.0"),
    ({"ewc": {"ewc_batches": 0}}, "[ewc] ewc_batches must be >= 1, got 0"),
    ({"replay": {"replay_fraction": 1}}, "[replay] replay_fraction must be in [0, 1), got 1"),
    ({"replay_size": 2.5}, "[replay] replay_size must be an integer, got 2.5"),
    ({"zscl": {"batch": 2.5}}, "[zscl] batch must be an integer, got 2.5"),
    ({"zscl": {"weight": float("nan")}}, "[zscl] weight must be a finite number, got nan"),
    ({"zscl": {"weight": True}}, "[zscl] weight must be a number, got True"),
    ({"zscl": {"ensemble": 2}}, "[zscl] ensemble must be true or false, got 2"),
    ({"method_options": {"zscl": {"reference": 3}}}, "[zscl] reference must be a string, got 3"),
    ({"zscl": {"weights": 1.0}},
     "'weights' is not a setting of zscl; it takes weight, batch, ensemble, reference"),
    ({"zscl": {"batch": 1}}, "[zscl] batch must be >= 2 and weight >= 0"),  # the method's own
    ({"batch_size": 6, "grad_accum": 4},
     "batch_size must be a multiple of grad_accum, got 6 and 4"),
]


@pytest.mark.parametrize("cfg, msg", REFUSED, ids=[m.split(" must")[0] for _, m in REFUSED])
def test_each_constraint_is_refused_naming_the_key(cfg, msg):
    import re

    with pytest.raises(ConfigError) as exc:
        from_dict(cfg)
    assert re.fullmatch(re.escape(msg), str(exc.value)), str(exc.value)


def test_the_edges_of_each_range_and_older_switches_are_accepted_as_written():
    cfg = from_dict({"lr": 1, "warmup": 0.0, "seed": 2**32 - 1, "clip_grad": 0.0, "workers": 0,
                     "replay": {"replay_fraction": 0.0}, "zscl": {"ensemble": 1, "batch": 2},
                     "ema": {"decay": 0}, "modx": {"reduction": "mean"}})
    assert (cfg.lr, cfg.seed, cfg.replay_fraction, cfg.reduction) == (1, 2**32 - 1, 0.0, "mean")
    assert type(cfg.lr) is int  # checked, not converted: config.json keeps what was written
    assert cfg.method_options == {"zscl": {"ensemble": 1, "batch": 2}, "ema": {"decay": 0}}
    assert from_dict({"zscl": {"ensemble": 0.0}}).method_options["zscl"]["ensemble"] == 0.0


def _annotation_text(ann) -> str:
    """A model field's type written as the dataclass writes it (a Literal of strings: str)."""
    import types
    import typing

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        assert all(isinstance(a, str) for a in args)
        return "str"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_annotation_text(a) for a in args)
    if origin is list:
        return f"list[{_annotation_text(args[0])}]"
    return "None" if ann is type(None) else ann.__name__


def test_every_field_of_the_config_is_in_exactly_one_table_with_its_type():
    """The schema and TrainConfig cannot drift apart: each field is held by one table, with
    the dataclass's type, and the TOML sections are the ones configs have always had."""
    import collections
    import dataclasses

    from modx.config import RENAMED, SCHEMA, SECTIONS, TrainConfig, check_schema

    owners = collections.Counter(n for m in SCHEMA for n in m.model_fields)
    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    assert set(owners) == set(fields) and set(owners.values()) == {1}
    for model in SCHEMA:
        for name, info in model.model_fields.items():
            assert _annotation_text(info.annotation) == fields[name], name
            assert info.is_required(), name  # defaults live in TrainConfig alone
    check_schema(TrainConfig())  # the defaults obey the schema
    assert SECTIONS == {
        "modx": ("alpha", "temperature", "reduction", "exclude_diagonal", "teacher_cache"),
        "lwf": ("lwf_weight", "temperature"), "rkd": ("rkd_weight",),
        "ewc": ("ewc_lambda", "ewc_batches"), "replay": ("replay_size", "replay_fraction")}
    assert RENAMED == {("lwf", "temperature"): "lwf_temperature"}


def test_a_methods_settings_schema_follows_its_declared_defaults():
    from modx.config_schema import options_model, type_text
    from modx.methods import METHODS

    model = options_model(METHODS["zscl"])
    assert model.table == "zscl" and list(model.model_fields) == list(METHODS["zscl"].options)
    assert {k: type_text(f.annotation) for k, f in model.model_fields.items()} == {
        "weight": "a number", "batch": "an integer", "ensemble": "true or false",
        "reference": "a string"}
    assert {k: f.default for k, f in model.model_fields.items()} == METHODS["zscl"].options


# a run's config.json as an earlier version wrote it: one temperature (no lwf_temperature),
# no dist_timeout_min, a method's settings under method_options, a switch written as 1
OLD_RUN_JSON = """{"data": "synthetic", "phases": "domain", "eval_data": [], "eval_n": null,
 "linear_probe": true, "model": null, "init": null, "base_data": null,
 "methods": ["finetune", "lwf", "zscl"], "phase0_steps": 500, "phase0_lr": 0.001,
 "steps": 150, "epochs": null, "lr": 0.0005, "batch_size": 128, "weight_decay": 0.1,
 "eps": 1e-08, "warmup": 0.2, "grad_accum": 1, "optimizer": "openclip", "clip_grad": 1.0,
 "precision": "fp32", "seed": 3, "device": null, "workers": null, "preload_gb": 2.0,
 "augment": false, "alpha": 20.0, "temperature": 2.0, "reduction": "sum",
 "exclude_diagonal": false, "lwf_weight": 1.0, "rkd_weight": 1.0, "ewc_lambda": 100.0,
 "ewc_batches": 8, "replay_size": 1000, "replay_fraction": 0.25, "teacher_cache": true,
 "method_options": {"zscl": {"weight": 0.5, "ensemble": 1}}, "out": "runs/old",
 "checkpoint_every": 0, "log_every": 10, "tensorboard": false, "quiet": true}"""

OLD_TOML = """methods = ["finetune", "lwf", "zscl"]
seed = 3
temperature = 2.0
out = "runs/old"
quiet = true
[zscl]
weight = 0.5
ensemble = 1
"""


def test_an_old_run_config_and_an_old_sectioned_toml_load_to_the_same_config(tmp_path):
    import json

    from modx.config import TrainConfig

    from_json = from_dict(json.loads(OLD_RUN_JSON), "config.json")
    from_toml = load(_toml(tmp_path, OLD_TOML))
    assert from_json == from_toml
    want = TrainConfig(methods=["finetune", "lwf", "zscl"], seed=3, temperature=2.0,
                       lwf_temperature=2.0, out="runs/old", quiet=True,
                       method_options={"zscl": {"weight": 0.5, "ensemble": 1}})
    assert from_json == want
    # and today's config.json of it reads back as written
    assert from_dict(json.loads(json.dumps(want.to_dict()))) == want
