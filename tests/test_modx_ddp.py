"""2 processes x B/2 give the same loss and gradients as 1 process x B (gloo, CPU)."""

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import tiny_cfg

from modx.config import TrainConfig
from modx.strategies import make
from modx.stream import batches
from modx.train import Trainer

DATA = "synthetic:n_domains=2,train_per_domain=40,test_per_domain=8"


def _one_step(cfg_dict, rank, world):
    cfg = TrainConfig(**cfg_dict)
    tr = Trainer(cfg, progress=False)
    torch.manual_seed(0)
    tr.model = tr.new_model()
    torch.manual_seed(1)
    teacher = tr.new_model()
    torch.manual_seed(123)  # a teacher unlike the student, so the Mod-X term is not zero
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    teacher.eval().requires_grad_(False)
    strategy = make("modx", cfg)
    pt = tr.tensors(1)
    bi, bc = next(batches(pt, cfg.batch_size, 0, 1))
    ddp = tr.model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(tr.model)
    opt = torch.optim.SGD(tr.model.parameters(), lr=0.0)
    logs = tr.step(ddp, tr.model, opt, strategy, teacher, None, pt, bi, bc, 1, 0)
    grads = {n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None}
    return logs, grads


def _worker(rank, world, cfg_dict, init_file, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    logs, grads = _one_step(cfg_dict, rank, world)
    if rank == 0:
        torch.save({"logs": json.dumps(logs), "grads": grads}, out)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("alpha", [3.0])
def test_two_processes_match_one(tmp_path, alpha):
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(tiny_cfg()))
    cfg = dict(data=DATA, model=str(model), batch_size=16, methods=["modx"], alpha=alpha,
               out=str(tmp_path / "run"), quiet=True, clip_grad=None, teacher_cache=False)
    logs1, grads1 = _one_step(cfg, 0, 1)
    mp.spawn(_worker, args=(2, cfg, str(tmp_path / "init"), str(tmp_path / "out.pt")),
             nprocs=2, join=True)
    res = torch.load(tmp_path / "out.pt", weights_only=True)
    logs2 = json.loads(res["logs"])
    assert logs2["loss"] == pytest.approx(logs1["loss"], rel=1e-5)
    assert logs2["align"] == pytest.approx(logs1["align"], rel=1e-5)
    assert logs1["align"] > 0
    assert logs2["selected_share"] == logs1["selected_share"]
    assert set(res["grads"]) == set(grads1)
    for n, g in grads1.items():
        torch.testing.assert_close(res["grads"][n], g, rtol=1e-4, atol=1e-6)


def _embed_worker(rank, world, init_file, ckpt, out):
    from sdtools.extract import embed

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    emb = embed(ckpt, "synthetic:n=13", cache=False, progress=False)
    if rank == 1:  # every rank receives the gathered result
        emb.save(out)
    dist.barrier()
    dist.destroy_process_group()


def test_embedding_under_two_ranks_equals_one(tmp_path):
    from helpers import save_modx

    from sdtools.embeddings import Embeddings
    from sdtools.extract import embed

    save_modx(tmp_path / "m.pt", seed=8)
    ref = embed(str(tmp_path / "m.pt"), "synthetic:n=13", cache=False, progress=False)
    mp.spawn(_embed_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "m.pt"),
                                  str(tmp_path / "e.npz")), nprocs=2, join=True)
    got = Embeddings.load(tmp_path / "e.npz")
    torch.testing.assert_close(torch.from_numpy(got.image), torch.from_numpy(ref.image),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.from_numpy(got.text), torch.from_numpy(ref.text),
                               atol=1e-5, rtol=1e-5)
