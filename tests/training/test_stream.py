"""Streamed phases: webdataset shards cut into phases and read shard by shard, never
indexed; the same stream for the same workers; what streaming cannot do is refused."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from helpers import tiny_cfg
from PIL import Image

from modx.config import TrainConfig
from modx.errors import ConfigError
from modx.train import Trainer
from sdtools.errors import DataError


def _shards(root, n_shards=4, per=12):
    rng = np.random.default_rng(0)
    for s in range(n_shards):
        with tarfile.open(root / f"part-{s:02d}.tar", "w") as tf:
            for i in range(per):
                key = f"s{s}_{i:03d}"
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                    buf, format="JPEG")
                for name, payload in ((f"{key}.jpg", buf.getvalue()),
                                      (f"{key}.txt", f"picture {s} {i}".encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tf.addfile(info, io.BytesIO(payload))
    return f"wds:{root}/part-{{00..{n_shards - 1:02d}}}.tar"


def _cfg(tmp_path, spec, **kw):
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(tiny_cfg()))
    base = dict(data=spec, phases="shards:3", eval_data=[spec.replace("{00..03}", "03")],
                model=str(model), phase0_steps=3, steps=4, batch_size=8, quiet=True,
                methods=["finetune", "modx"], alpha=3.0, log_every=0)
    base.update(kw)
    return TrainConfig(**base)


def _weights(run, method, t):
    from sdtools.runs import RunDir

    return torch.load(RunDir(run).model_path(method, t), weights_only=True)["state_dict"]


@pytest.mark.slow
def test_streamed_phases_train_without_an_index_and_repeat_exactly(tmp_path, monkeypatch):
    spec = _shards(tmp_path)
    from sdtools.data import webdataset

    built = []
    orig = webdataset.WebDatasetData.__init__

    def counting(self, pattern, *a, **k):
        built.append(pattern)
        orig(self, pattern, *a, **k)

    monkeypatch.setattr(webdataset.WebDatasetData, "__init__", counting)
    runs = []
    for name, workers in (("a", 2), ("b", 2)):
        tr = Trainer(_cfg(tmp_path, spec, workers=workers, out=str(tmp_path / name)),
                     progress=False)
        assert [len(p.shards) for p in tr.phases] == [2, 1, 1]  # 4 shards in 3 phases
        tr.run()
        runs.append(tr.out)
    # only the evaluation set was indexed; the training shards never were
    assert built and all(p.endswith("part-03.tar") for p in built)
    for m in ("finetune", "modx"):
        a, b = _weights(runs[0], m, 2), _weights(runs[1], m, 2)
        assert all(torch.equal(a[k], b[k]) for k in a)  # same workers: the same stream
    p0 = _weights(runs[0], "phase0", 0)
    assert not all(torch.equal(p0[k], _weights(runs[0], "finetune", 2)[k]) for k in p0)


@pytest.mark.slow
def test_streamed_resume_mid_phase_is_bit_exact(tmp_path, monkeypatch):
    spec = _shards(tmp_path)
    kw = dict(methods=["finetune"], workers=0, checkpoint_every=1, steps=5)
    ref = Trainer(_cfg(tmp_path, spec, out=str(tmp_path / "ref"), **kw), progress=False)
    ref.run()
    monkeypatch.setenv("MODX_FAIL_AT", "finetune:1:3:int")
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(tmp_path, spec, out=str(tmp_path / "cut"), **kw), progress=False).run()
    monkeypatch.delenv("MODX_FAIL_AT")
    Trainer(_cfg(tmp_path, spec, out=str(tmp_path / "cut"), **kw), resume=True,
            progress=False).run()
    a, b = _weights(ref.out, "finetune", 2), _weights(tmp_path / "cut", "finetune", 2)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_what_streaming_refuses(tmp_path):
    spec = _shards(tmp_path, n_shards=2)
    with pytest.raises(ConfigError, match="replay reads a phase's items by index"):
        Trainer(_cfg(tmp_path, spec, methods=["replay"], phases="shards:2",
                     out=str(tmp_path / "r")), progress=False)
    with pytest.raises(ConfigError, match="steps, not epochs"):
        Trainer(_cfg(tmp_path, spec, epochs=1.0, phases="shards:2", out=str(tmp_path / "e")),
                progress=False)
    with pytest.raises(ConfigError, match="2 shard.* cannot make 3 phases"):
        Trainer(_cfg(tmp_path, spec, out=str(tmp_path / "n")), progress=False)
    with pytest.raises(ConfigError, match="give a wds: SPEC"):
        Trainer(_cfg(tmp_path, "synthetic", phases="shards:2", out=str(tmp_path / "s")),
                progress=False)
    small = _shards(tmp_path / "..", n_shards=2, per=3)  # 3 pairs a shard, batches of 8
    with pytest.raises(DataError, match="fills no batch of 8"):
        Trainer(_cfg(tmp_path, small, phases="shards:2", out=str(tmp_path / "f")),
                progress=False).run()
