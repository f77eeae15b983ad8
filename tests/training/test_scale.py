"""A real-size model on real files: ViT-B-32 (random init) trained for phase 0 and one
phase from a folder of 640 x 480 JPEGs through DataLoader workers, with open_clip's augmentation."""

import json
import logging

import pytest
import torch

from modx.config import TrainConfig
from modx.train import Trainer


def _jpeg_folder(root, n=12):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = ["filepath\ttitle"]
    for i in range(n):
        img = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / f"{i}.jpg", quality=85)
        rows.append(f"{root / f'{i}.jpg'}\tphoto {i} of a {['cat', 'dog', 'car'][i % 3]}")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{root / 'pairs.csv'}"


@pytest.mark.slow
def test_vitb32_two_phases_from_jpegs_with_workers_and_augment(tmp_path, caplog):
    spec = _jpeg_folder(tmp_path)
    cfg = TrainConfig(data=spec, phases="contiguous:2", eval_data=[spec], model="ViT-B-32",
                      methods=["modx"], phase0_steps=1, steps=1, batch_size=4, workers=2,
                      augment=True, preload_gb=0.0, alpha=1.0, out=str(tmp_path / "run"),
                      log_every=1)
    tr = Trainer(cfg, progress=True)
    assert tr.train_transform is not None and "RandomResizedCrop" in repr(tr.train_transform)
    assert tr.workers_for(tr.phases[1]) == 2
    with caplog.at_level(logging.INFO, logger="modx"):
        report = tr.run()
    assert "computed live" in caplog.text  # phase 1's teacher, with augmented inputs
    assert len(report.methods["modx"].r1) == 2 and len(report.methods["modx"].r1[0]) == 1
    logs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = {(x["method"], x["phase"]) for x in logs if x.get("event") == "train"}
    assert trained == {("phase0", 0), ("modx", 1)}
    sd = torch.load(tmp_path / "run" / "modx" / "phase1" / "model.pt", weights_only=True)
    assert sd["state_dict"]["visual.conv1.weight"].shape == (768, 3, 32, 32)
