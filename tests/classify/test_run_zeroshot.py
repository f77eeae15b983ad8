"""A modx run with an ImageFolder evaluation set: zero-shot after every phase, the MTIL
metrics in the report, and the classes kept in the probe as groups."""

import json

import numpy as np
import pytest
from helpers import tiny_cfg
from PIL import Image

import sdtools
from modx.config import TrainConfig
from modx.train import Trainer
from sdtools.run_report import RunReport, mtil

DATA = "synthetic:n_domains=2,train_per_domain=32,test_per_domain=8"


def test_mtil_reads_the_upper_triangle_for_transfer():
    acc = [[70.0, 20.0, None], [65.0, 80.0, None]]  # the third set carries no such task
    m = mtil(acc)
    assert m == {"transfer": 20.0, "avg": pytest.approx((67.5 + 50.0) / 2), "last": 72.5}
    assert mtil([[70.0], [60.0], [50.0]])["transfer"] is None  # fewer sets than phases


@pytest.mark.slow
def test_run_with_an_imagefolder_set_reports_transfer_avg_last(tmp_path):
    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "green", "blue")):
        for i in range(4):
            base = np.zeros(3)
            base[k] = 220
            a = np.clip(base + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            (tmp_path / "folder" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(tmp_path / "folder" / name / f"{i}.png")
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_cfg()))
    sets = [f"{DATA},domain={k},split=test" for k in (0, 1)]
    folder = f"imagefolder:{tmp_path / 'folder'}:templates=openai"
    cfg = TrainConfig(data=DATA, model=str(tmp_path / "tiny.json"), phase0_steps=3, steps=2,
                      batch_size=16, methods=["finetune"], out=str(tmp_path / "run"),
                      quiet=True, eval_data=[*sets, folder])
    Trainer(cfg, progress=False).run()
    rep = RunReport.read(tmp_path / "run" / "report.json")
    r = rep.methods["finetune"]
    zs = r.zero_shot["class"]
    assert [row[:2] for row in zs] == [[None, None], [None, None]]  # synthetic sets: no "class"
    # the run's number is the API's on the same checkpoint
    api = sdtools.zero_shot(str(tmp_path / "run" / "phase0" / "model.pt"), folder, cache=False)
    assert zs[0][2] == pytest.approx(api.top1)
    # the folder's phase never comes: every phase counts as transfer
    assert r.mtil["class"] == {"transfer": pytest.approx(np.mean([zs[0][2], zs[1][2]])),
                               "avg": pytest.approx(np.mean([zs[0][2], zs[1][2]])),
                               "last": zs[1][2]}
    # the synthetic sets are phase-aligned: their transfer is set 1 before phase 1
    assert r.mtil["shape"]["transfer"] == pytest.approx(r.zero_shot["shape"][0][1])
    assert "mtil" in json.loads((tmp_path / "run" / "report.json").read_text())[
        "methods"]["finetune"]
    # the folder's 12 images share 3 class captions: too few distinct for the per-set fit,
    # said in the report instead of ending the run
    g = rep.methods["finetune"].geometry[-1].vs_phase0
    assert set(g.per_set) == set(sets)
    (name, why), = g.per_set_skipped.items()
    assert "distinct" in why
    md = (tmp_path / "run" / "report.md").read_text()
    assert f"| {name} | not measured: " in md
    assert "| class | " in md and "Transfer" in md and "Zero-shot top-1 (%), class" in md
    # the labelled set's classes, as groups of the run's probe images
    probe = sdtools.Embeddings.load(tmp_path / "run" / "finetune" / "phase1" / "probe.npz")
    g = probe.meta["class_groups"]["class"]
    assert g == [-1] * 16 + [0] * 4 + [1] * 4 + [2] * 4  # folders sorted: blue, green, red
    assert probe.meta["class_group_names"]["class"][0].endswith(":blue")
