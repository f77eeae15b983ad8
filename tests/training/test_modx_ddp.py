"""2 processes x B/2 give the same loss and gradients as 1 process x B (gloo, CPU)."""

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import tiny_cfg

from modx.config import TrainConfig
from modx.feed import phase_stream
from modx.methods import make
from modx.train import Trainer
from modx.train.step import PhaseContext, assemble, train_step

DATA = "synthetic:n_domains=2,train_per_domain=40,test_per_domain=8"


def _one_step(cfg_dict, rank, world, grad_accum=1):
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
    ddp = tr.model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(tr.model)
    opt = torch.optim.SGD(tr.model.parameters(), lr=0.0)
    ctx = PhaseContext(tr, 1, "modx", strategy, teacher, None, pt, tr.model, ddp, opt, 1, 0.0,
                       None)
    x, tok, old = assemble(ctx, next(phase_stream(pt, cfg.batch_size, 0, 1, 0, rank, world)), 0)
    logs = train_step(ctx, x, tok, old, 0, grad_accum)
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


def test_accumulation_matches_one_big_batch(tmp_path):
    """k = 1, 2, 4 micro-batches: the same loss, Mod-X selection and gradients."""
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(tiny_cfg()))
    cfg = dict(data=DATA, model=str(model), batch_size=16, methods=["modx"], alpha=3.0,
               out=str(tmp_path / "run"), quiet=True, clip_grad=None, teacher_cache=False)
    logs1, grads1 = _one_step(cfg, 0, 1, grad_accum=1)
    assert logs1["align"] > 0
    for k in (2, 4):
        logs, grads = _one_step(cfg, 0, 1, grad_accum=k)
        assert logs["loss"] == pytest.approx(logs1["loss"], rel=1e-5)
        assert logs["selected_share"] == logs1["selected_share"]
        for n, g in grads1.items():
            torch.testing.assert_close(grads[n], g, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
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
    from sdtools.models.extract import embed

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    emb = embed(ckpt, "synthetic:n=13", cache=False, progress=False)
    if rank == 1:  # every rank receives the gathered result
        emb.save(out)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_embedding_under_two_ranks_equals_one(tmp_path):
    from helpers import save_modx

    from sdtools.models.embeddings import Embeddings
    from sdtools.models.extract import embed

    save_modx(tmp_path / "m.pt", seed=8)
    ref = embed(str(tmp_path / "m.pt"), "synthetic:n=13", cache=False, progress=False)
    mp.spawn(_embed_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "m.pt"),
                                  str(tmp_path / "e.npz")), nprocs=2, join=True)
    got = Embeddings.load(tmp_path / "e.npz")
    torch.testing.assert_close(torch.from_numpy(got.image), torch.from_numpy(ref.image),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.from_numpy(got.text), torch.from_numpy(ref.text),
                               atol=1e-5, rtol=1e-5)


RUN_DATA = "synthetic:n_domains=3,train_per_domain=48,test_per_domain=16"


def _run_cfg(tmp_path, out):
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(tiny_cfg()))
    return dict(data=RUN_DATA, model=str(model), phase0_steps=6, steps=4, batch_size=16,
                methods=["finetune", "modx", "replay"], alpha=3.0, out=str(out), quiet=True,
                log_every=1, replay_fraction=0.25)


def _run_worker(rank, world, cfg_dict, init_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    Trainer(TrainConfig(**cfg_dict), progress=False).run()
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_run_finishes_and_matches_one(tmp_path):
    """A whole multi-phase run under 2 gloo processes: every phase of every method, the
    same report as 1 process with the same global batch."""
    one = Trainer(TrainConfig(**_run_cfg(tmp_path, tmp_path / "one")), progress=False).run()
    one = one.to_dict()
    two_cfg = _run_cfg(tmp_path, tmp_path / "two")
    mp.spawn(_run_worker, args=(2, two_cfg, str(tmp_path / "init")), nprocs=2, join=True)
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    for m in ("finetune", "modx", "replay"):
        r1, r2 = one["methods"][m]["r1"], two["methods"][m]["r1"]
        assert len(r1) == len(r2) == 3
        for a, b in zip(r1, r2, strict=True):
            assert a == pytest.approx(b, abs=1.0), m
    def losses(run):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if r["event"] == "train"]
    l1, l2 = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(l1) == len(l2)
    assert l2 == pytest.approx(l1, rel=1e-3, abs=1e-3)


def _resume_worker(rank, world, cfg_dict, init_file, fail_at, resume):
    import os

    if fail_at:
        os.environ["MODX_FAIL_AT"] = fail_at
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    Trainer(TrainConfig(**cfg_dict), resume=resume, progress=False).run()
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_run_crashed_mid_phase_resumes_to_identical_weights(tmp_path):
    def cfg(out):
        c = _run_cfg(tmp_path, tmp_path / out)
        c.update(methods=["modx"], checkpoint_every=2, steps=6)
        return c

    mp.spawn(_resume_worker, args=(2, cfg("ref"), str(tmp_path / "i1"), None, False), nprocs=2,
             join=True)
    with pytest.raises(mp.ProcessExitedException):
        mp.spawn(_resume_worker, args=(2, cfg("crash"), str(tmp_path / "i2"), "modx:2:3", False),
                 nprocs=2, join=True)
    assert not (tmp_path / "crash" / "modx" / "phase2" / "model.pt").exists()
    mp.spawn(_resume_worker, args=(2, cfg("crash"), str(tmp_path / "i3"), None, True), nprocs=2,
             join=True)
    for t in (1, 2):
        a = torch.load(tmp_path / "ref" / "modx" / f"phase{t}" / "model.pt", weights_only=True)
        b = torch.load(tmp_path / "crash" / "modx" / f"phase{t}" / "model.pt", weights_only=True)
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
