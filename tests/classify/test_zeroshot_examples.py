"""The classification examples run offline on the data they write."""

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_imagefolder_example_then_the_labelled_run_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = runpy.run_path(str(ROOT / "examples" / "zeroshot_imagefolder.py"))
    out = mod["main"](["--out", "zeroshot_example"])
    zs, lp = out["zero_shot"], out["linear_probe"]
    assert zs["n_images"] == 60 and zs["n_classes"] == 6 and zs["n_templates"] == 80
    assert zs["classnames"][0] == "blue square"  # the classnames file, in folder order
    assert lp["top1"] > 90  # six colours far apart: linearly separable image features
    assert (tmp_path / "zeroshot_example" / "confusion.png").stat().st_size > 0

    from modx.config import load
    from modx.train import Trainer

    toml = ROOT / "examples" / "labelled_eval_run.toml"
    folder = load(toml).eval_data[-1]
    assert folder.startswith("imagefolder:zeroshot_example/")
    small = "synthetic:n_domains=2,train_per_domain=32,test_per_domain=8"  # the same, smaller
    cfg = load(toml, {"data": small, "eval_data": [f"{small},domain={k},split=test"
                                                   for k in (0, 1)] + [folder],
                      "phase0_steps": 2, "steps": 2, "batch_size": 16, "methods": ["finetune"],
                      "out": str(tmp_path / "run"), "quiet": True})
    Trainer(cfg, progress=False).run()
    rep = json.loads((tmp_path / "run" / "report.json").read_text())["methods"]["finetune"]
    assert set(rep["mtil"]) == {"shape", "colour", "class"}
    assert rep["mtil"]["class"]["last"] == rep["zero_shot"]["class"][-1][-1]
