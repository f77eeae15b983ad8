"""The training stream: the same batches from memory, from files with 0 or 2 workers, split
over ranks, resumed mid-phase, and with seeded augmentation."""

import json
import logging

import numpy as np
import pytest
import torch
from helpers import tiny_cfg

from modx.config import ConfigError, TrainConfig
from modx.data import PhaseTensors, batches
from modx.feed import phase_stream
from modx.train import Trainer
from sdtools.data.base import loader_workers
from sdtools.models.build import make_preprocess

DATA = "synthetic:n_domains=2,train_per_domain=40,test_per_domain=8"


def _trainer(tmp_path, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(tiny_cfg()))
    base = dict(data=DATA, model=str(model), phase0_steps=3, steps=3, batch_size=8,
                methods=["finetune"], out=str(tmp_path / "run"), quiet=True, log_every=0)
    base.update(kw)
    return Trainer(TrainConfig(**base), progress=False)


def _take(stream, k):
    return [next(stream) for _ in range(k)]


def _same(a, b):
    return len(a) == len(b) and all(
        torch.equal(torch.as_tensor(x), torch.as_tensor(y))
        for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def test_memory_and_workers_give_the_same_batches_and_resume_mid_phase(tmp_path):
    tr = _trainer(tmp_path)
    data = tr.phases[1]
    mem = PhaseTensors(data, tr.preprocess, tr.tokenizer)
    files = PhaseTensors(data, tr.preprocess, tr.tokenizer, max_bytes=0)
    assert mem.images is not None and files.images is None
    ref = _take(phase_stream(mem, 8, 0, 1), 12)  # 12 steps: more than two epochs of 40
    # the indices are those of modx.data.batches
    for (bi, bc, tok, _), (gi, gc) in zip(ref, batches(mem, 8, 0, 1), strict=False):
        assert torch.equal(tok, mem.token_batch(gc))
        assert np.array_equal(bi.numpy(), gi) and np.array_equal(bc.numpy(), gc)
    assert _same(ref, _take(phase_stream(files, 8, 0, 1, workers=0), 12))
    two = phase_stream(files, 8, 0, 1, workers=2)
    assert _same(ref, _take(two, 12))
    two.close()
    assert _same(ref[7:], _take(phase_stream(files, 8, 0, 1, start=7, workers=2), 5))
    # another phase or seed is another order
    assert not _same(ref[:1], _take(phase_stream(mem, 8, 1, 1), 1))


def test_each_rank_decodes_its_own_rows(tmp_path):
    tr = _trainer(tmp_path)
    pt = PhaseTensors(tr.phases[1], tr.preprocess, tr.tokenizer, max_bytes=0)
    whole = _take(phase_stream(pt, 8, 0, 1), 3)
    ranks = [_take(phase_stream(pt, 8, 0, 1, rank=r, world=2, workers=1), 3) for r in (0, 1)]
    for k in range(3):
        for part in range(4):
            joined = torch.empty_like(whole[k][part])
            joined[0::2], joined[1::2] = ranks[0][k][part], ranks[1][k][part]
            assert torch.equal(joined, whole[k][part])
        assert len(ranks[0][k][0]) == 4


def test_augmentation_is_seeded_per_image_and_step(tmp_path):
    tr = _trainer(tmp_path)
    crop = make_preprocess(tr.model_cfg, train=True)
    assert "RandomResizedCrop" in repr(crop)
    pt = PhaseTensors(tr.phases[1], tr.preprocess, tr.tokenizer, train_transform=crop)
    assert pt.images is None  # augmented phases are never frozen in memory
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = _take(phase_stream(pt, 8, 0, 1, workers=0), 8)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's generator is untouched
    assert _same(a, _take(phase_stream(pt, 8, 0, 1, workers=2), 8))
    assert _same(a[5:], _take(phase_stream(pt, 8, 0, 1, start=5, workers=2), 3))
    # the crops are random: an image seen at two steps (epoch 1 and 2) gets two crops, and
    # they differ from the evaluation transform's centre view
    first = {int(i): x for i, x in zip(a[0][0], a[0][3], strict=True)}
    later = [(int(i), x) for b in a[5:] for i, x in zip(b[0], b[3], strict=True)
             if int(i) in first]
    assert later and all(not torch.equal(first[i], x) for i, x in later)
    plain = pt.image_batch(a[0][0])
    assert not torch.equal(plain, a[0][3])


@pytest.mark.slow
def test_training_from_files_with_workers_matches_memory_bit_for_bit(tmp_path):
    ref = _trainer(tmp_path / "a", methods=["finetune", "replay"], replay_size=16)
    ref.run()
    files = _trainer(tmp_path / "b", methods=["finetune", "replay"], replay_size=16,
                     preload_gb=0.0, workers=2)
    assert files.tensors(1).images is None
    files.run()
    for m in ("finetune", "replay"):
        a = torch.load(ref.out / m / "phase1" / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(files.out / m / "phase1" / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_augment_trains_with_a_live_teacher(tmp_path, caplog):
    tr = _trainer(tmp_path, methods=["modx"], augment=True, quiet=False, alpha=3.0)
    tr.progress = True
    with caplog.at_level(logging.INFO, logger="modx"):
        tr.run()
    said = [r.message for r in caplog.records
            if r.name == "modx.train.run" and r.levelno == logging.INFO]
    assert any("augment = true" in m and "computed live" in m for m in said), said
    plain = _trainer(tmp_path / "plain", methods=["modx"], alpha=3.0)
    plain.run()
    a = torch.load(tr.out / "modx" / "phase1" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(plain.out / "modx" / "phase1" / "model.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_workers_settings():
    with pytest.raises(ConfigError, match="workers must be >= 0"):
        TrainConfig(workers=-1).validate()
    with pytest.raises(ConfigError, match="preload_gb"):
        TrainConfig(preload_gb=-1.0).validate()
    from modx.config import TRAINING_KEYS

    assert "augment" in TRAINING_KEYS and "workers" not in TRAINING_KEYS

    class Files:
        in_memory = False

    class Memory:
        in_memory = True

    assert loader_workers(3, Memory()) == 3 and loader_workers(None, Memory()) == 0
    assert 0 <= loader_workers(None, Files(), world=1) <= 8


def test_a_bad_file_read_by_a_worker_is_a_one_line_error(tmp_path):
    from sdtools.errors import DataError

    tr = _trainer(tmp_path)
    data = tr.phases[1]

    class Broken(type(data)):
        def load_image(self, i):
            if i == 3:
                raise DataError("cannot read image 3.jpg; remove or replace it")
            return super().load_image(i)

    data.__class__ = Broken
    pt = PhaseTensors(data, tr.preprocess, tr.tokenizer, max_bytes=0)
    with pytest.raises(DataError) as e:
        _take(phase_stream(pt, 8, 0, 1, workers=1), 12)
    assert str(e.value) == "cannot read image 3.jpg; remove or replace it"


@pytest.mark.slow
def test_resume_mid_phase_with_workers_and_augmentation_is_bit_exact(tmp_path, monkeypatch):
    kw = dict(methods=["modx"], alpha=3.0, augment=True, preload_gb=0.0, workers=2, steps=4,
              checkpoint_every=1)
    ref = _trainer(tmp_path / "ref", **kw)
    ref.run()
    monkeypatch.setenv("MODX_FAIL_AT", "modx:1:2:int")  # stopped at step 2 of phase 1
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path / "cut", **kw).run()
    monkeypatch.delenv("MODX_FAIL_AT")
    assert (tmp_path / "cut" / "run" / "modx" / "phase1" / "last.pt").is_file()
    again = _trainer(tmp_path / "cut", **kw)
    again.resume = True
    again.run()
    a = torch.load(ref.out / "modx" / "phase1" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(again.out / "modx" / "phase1" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
