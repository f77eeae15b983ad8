"""The phase loop: optimizer and schedule, resume inside a phase, progress, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..feed import phase_stream
from . import checkpoint
from .step import PhaseContext, assemble, train_step

BETAS = {"openclip": (0.9, 0.98), "official": (0.9, 0.999)}


def lr_multiplier(step: int, total: int, warmup: float, from_zero: bool = False) -> float:
    """Multiplier of the base lr: linear warmup over ``warmup * total`` steps, then cosine.

    open_clip's warmup starts at lr/w (``(step + 1) / w``); the official Mod-X one at 0.
    """
    w = int(round(warmup * total))
    if step < w:
        return (step if from_zero else step + 1) / w
    span = max(total - w, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - w, span) / span))


def param_groups(model: torch.nn.Module, weight_decay: float, decay_all: bool = False):
    """open_clip's convention: no weight decay on gains, biases, embeddings' scales,
    logit_scale; ``decay_all`` (the official Mod-X setting) decays every parameter."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
        (no_decay if exclude and not decay_all else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay}]


def make_optimizer(model, cfg, lr: float) -> torch.optim.Optimizer:
    official = cfg.optimizer == "official"
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay, decay_all=official), lr=lr,
                             betas=BETAS[cfg.optimizer], eps=cfg.eps)


def train_phase(tr, t: int, method: str, strategy, teacher, data, steps: int,
                lr: float) -> dict:
    """Train ``tr.model`` for ``steps`` steps on ``data``; saves the phase's model (where
    ``tr.run_dir`` puts it) at the end."""
    cfg = tr.cfg
    model = tr.model
    pt = tr.tensors(t) if data is tr.phases[t] else tr.tensors(t, data)
    opt = make_optimizer(model, cfg, lr)
    start = 0
    last = tr.run_dir.last_path(method, t)
    tr.resumed_mid_phase = False
    if tr.resume and last.is_file():
        obj = checkpoint.load_into(model, last, tr.model_cfg, tr.arch)
        opt.load_state_dict(obj["optimizer"])
        strategy.load_state_dict(obj.get("strategy", {}))
        start = int(obj["step"])
        tr.resumed_mid_phase = True
        tr.say(f"  resuming {method} phase {t} at step {start}")
    strategy.begin_phase(tr, t)
    cache = None
    if teacher is not None and strategy.uses_teacher_features and cfg.teacher_cache:
        if getattr(data, "streamed", False):
            tr.say(f"  {method} phase {t}: streamed from shards, so the teacher's features are "
                   "computed live on each batch (no cache)")
        elif cfg.augment:  # the cache needs fixed inputs; augmented crops change every step
            tr.say(f"  {method} phase {t}: augment = true, so the teacher's features are "
                   "computed live on each batch (no cache)")
        else:
            cache = tr.teacher_cache(teacher, pt)
    ddp = model
    if tr.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model)
    tr.phase_forward, tr.phase_teacher, tr.phase_t = ddp, teacher, t  # for methods' hooks
    official = cfg.optimizer == "official"
    ctx = PhaseContext(tr, t, method, strategy, teacher, cache, pt, model, ddp, opt, steps, lr,
                       None if official else cfg.clip_grad)
    bar = tr.bar(steps, start, f"{method} phase {t}")
    extras, losses = {k: [] for k in strategy.extras_keys}, []
    stream = phase_stream(pt, cfg.batch_size, cfg.seed, t, start, tr.rank, tr.world,
                          workers=tr.workers_for(pt.data), pin=tr.device.type == "cuda")
    for step in range(start, steps):
        tr.fail_point(method, t, step)
        rows = next(stream)
        for g in opt.param_groups:
            g["lr"] = lr * lr_multiplier(step, steps, cfg.warmup, from_zero=official)
        x, tok, old = assemble(ctx, rows, step)
        logs = train_step(ctx, x, tok, old, step, cfg.grad_accum)
        strategy.after_step(tr, t, step)
        losses.append(logs["loss"])
        for k, values in extras.items():
            if logs.get(k) is not None:
                values.append(logs[k])
        bar.update(1)
        bar.set_postfix(loss=f"{logs['loss']:.3f}")
        if cfg.log_every and (step + 1) % cfg.log_every == 0:
            tr.metrics.log(event="train", method=method, phase=t, step=step + 1,
                           lr=opt.param_groups[0]["lr"], **logs)
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
            tr.save(checkpoint.resume_payload(model, tr.arch, tr.model_cfg, cfg.to_dict(), t,
                                              method, opt, step + 1, strategy), last)
    bar.close()
    stream.close()  # the loader's workers end with the phase
    strategy.end_phase(tr, t)
    tr.save(checkpoint.model_payload(model, tr.arch, tr.model_cfg, cfg.to_dict(), t, method),
            tr.run_dir.model_path(method, t))
    if last.is_file() and tr.rank == 0:
        last.unlink()
    if data is not tr.phases[t]:  # a union made for this phase (cumulative): free it now
        tr.release(t, data)
    return {"steps": steps, "final_loss": float(np.mean(losses[-10:])) if losses else None,
            "extras": {k: float(np.mean(v)) if v else None for k, v in extras.items()}}
