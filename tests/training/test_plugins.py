"""A method in another installed package: found through the ``modx.methods`` entry-point group,
configured from its own TOML section and trained; a plug-in cannot take a method's name; the
trainer and the stream read what a method declares (index reads, teacher features)."""

import json
import textwrap

import pytest
from helpers import tiny_cfg

from modx.config import load
from modx.errors import ConfigError
from modx.methods import METHODS, discover
from modx.methods import _loaded as LOADED

DATA = "synthetic:n_domains=3,train_per_domain=48,test_per_domain=12"

PLUGIN = '''
from modx.methods.base import Strategy, register


@register
class Pull(Strategy):
    """An L2 pull of the weights towards zero, logged and averaged into the run's extras."""

    name = "{name}"
    knob = "weight"
    log_keys = ("l2",)
    extras_keys = ("l2",)
    options = {{"weight": 0.01}}

    def penalty(self, trainer):
        l2 = sum((p**2).sum() for _, p in trainer.named_params())
        return self.option("weight") * l2, {{"l2": float(l2.detach())}}
'''


def _install(root, dist, module, method):
    """What ``pip install`` leaves for a package with one module and one entry point: the
    module on the path and a dist-info whose entry_points.txt names it."""
    pkg = root / dist
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / f"{module}.py").write_text(textwrap.dedent(PLUGIN.format(name=method)))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[modx.methods]\n{method} = {dist}.{module}\n")


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install packages into a folder on sys.path for this test only."""
    import importlib
    import sys

    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before, loaded = set(METHODS), set(LOADED)
    mods = set(sys.modules)

    def install(dist, module, method):
        _install(root, dist, module, method)
        importlib.invalidate_caches()

    yield install
    for name in set(METHODS) - before:
        METHODS.pop(name)
    LOADED.intersection_update(loaded)
    for m in set(sys.modules) - mods:
        sys.modules.pop(m)


def test_a_plugin_method_is_discovered_configured_and_trained(tmp_path, installed):
    from modx.train import Trainer

    installed("pullpkg", "pullmethod", "pull")
    assert "pull" not in METHODS
    discover()
    assert METHODS["pull"].__module__ == "pullpkg.pullmethod"
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_cfg()))
    toml = tmp_path / "c.toml"
    toml.write_text(f'data = "{DATA}"\nmodel = "{tmp_path / "tiny.json"}"\nphase0_steps = 3\n'
                    f'steps = 2\nbatch_size = 16\nquiet = true\nlog_every = 0\n'
                    f'out = "{tmp_path / "run"}"\nmethods = ["pull"]\n[pull]\nweight = 0.3\n')
    cfg = load(toml)
    assert cfg.method_options == {"pull": {"weight": 0.3}}
    report = Trainer(cfg, progress=False).run()
    l2 = report.methods["pull"].extras["l2"]  # the plug-in's own extra, passed through
    assert l2[0] is None and all(x > 0 for x in l2[1:])


def test_a_plugin_cannot_take_a_methods_name(installed):
    installed("clashpkg", "clash", "finetune")
    with pytest.raises(ConfigError, match=r"'finetune' of clashpkg\.clash\.Pull is taken by "
                                          r"modx\.methods\.finetune\.Finetune"):
        discover()
    assert METHODS["finetune"].__module__ == "modx.methods.finetune"


def test_a_broken_plugin_is_a_one_line_error(tmp_path, installed):
    installed("brokenpkg", "broken", "broken")
    (tmp_path / "site" / "brokenpkg" / "broken.py").write_text("raise ImportError('no torch')\n")
    with pytest.raises(ConfigError, match="plug-in 'broken' .* ImportError: no torch"):
        discover()


def test_declared_needs_are_read_by_the_stream_and_the_trainer():
    from types import SimpleNamespace

    from modx.stream import check_streamed

    assert {m for m, c in METHODS.items() if c.needs_index} == {"replay", "cumulative", "joint",
                                                               "ewc"}
    assert not METHODS["zscl"].uses_teacher_features and METHODS["modx"].uses_teacher_features
    with pytest.raises(ConfigError, match="ewc reads a phase's items by index"):
        check_streamed(SimpleNamespace(methods=["finetune", "ewc"], phases="shards:2",
                                       epochs=None))
    check_streamed(SimpleNamespace(methods=["finetune", "zscl"], phases="shards:2", epochs=None))


def test_a_loss_hook_receives_typed_features_that_still_read_as_a_dict():
    import torch

    from modx.methods import Features

    img, txt = torch.ones(2, 3), torch.zeros(2, 3)
    f = Features(img, txt)
    assert f.img is img and f["txt"] is txt and "img" in f and "img_old" not in f
    with pytest.raises(KeyError):
        f["img_old"]  # no teacher: absent, as in the earlier dict
    with pytest.raises(KeyError):
        f["nope"]
    g = Features(img, txt, img + 1, txt + 1)
    assert torch.equal(g["img_old"], img + 1) and "txt_old" in g
