"""One optimisation step: batch assembly, teacher features, the loss and exact accumulation.

Gradient accumulation matches one big batch (open_clip's approach): the features of the whole
local batch are computed first without grad, then each micro-batch is recomputed with grad
and put back among the cached rest, so the CLIP loss, the Mod-X selection and every matrix
span the whole (global) batch. The weights' own terms (logit scale, EWC) get their gradient
once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
import torch

from modx.errors import TrainingError

from ..losses import clip_loss
from ..methods.base import Features

LOGIT_MAX = math.log(100.0)


@dataclasses.dataclass
class PhaseContext:
    """Everything one phase's steps share."""

    trainer: object
    t: int
    method: str
    strategy: object
    teacher: torch.nn.Module | None
    cache: dict | None  # the teacher's features of every image and caption of the phase
    pt: object  # PhaseTensors of the phase's data
    model: torch.nn.Module
    ddp: torch.nn.Module
    opt: torch.optim.Optimizer
    steps: int
    lr: float
    clip_grad: float | None


def assemble(ctx: PhaseContext, rows, step: int):
    """This rank's rows of the global batch: images, tokens and the teacher's features.

    ``rows``: this rank's (images, captions, tokens, transformed images) of the phase's batch
    of ``batch_size`` rows (:func:`modx.feed.phase_stream`). The global batch is those rows plus
    the strategy's extra rows (replay); rank r takes rows r, r + world, ..., so extra rows
    spread evenly over ranks, and each rank decodes only its own rows.
    """
    tr = ctx.trainer
    bi, bc, tok_phase, x_phase = rows
    n = tr.cfg.batch_size
    extra = ctx.strategy.extra_batch(tr, ctx.t, step)
    n_extra = 0 if extra is None else len(extra)
    if (n + n_extra) % tr.world:
        raise TrainingError(f"a batch of {n + n_extra} rows does not split over {tr.world} "
                            "processes; choose batch_size and replay_fraction to fit")
    xs, toks = [x_phase], [tok_phase]
    if n_extra:
        grouped = np.concatenate([extra[extra[:, 0] == p] for p in np.unique(extra[:, 0])])
        local = np.arange(tr.rank, n + n_extra, tr.world)
        mine = grouped[local[local >= n] - n]  # extra rows grouped by phase, then shared out
        for p in np.unique(mine[:, 0]):
            sel = mine[mine[:, 0] == p]
            ept = tr.tensors(int(p))
            xs.append(ept.image_batch(sel[:, 1], key=(tr.cfg.seed, ctx.t, step)))
            toks.append(ept.token_batch(sel[:, 2]))
    x, tok = torch.cat(xs).to(tr.device), torch.cat(toks).to(tr.device)
    old = None
    if ctx.teacher is not None and ctx.strategy.uses_teacher_features:
        if ctx.cache is not None and not n_extra:
            old = (ctx.cache["img"][bi], ctx.cache["txt"][bc])
        else:
            with torch.no_grad(), tr.autocast():
                old = (ctx.teacher.encode_image(x).float(), ctx.teacher.encode_text(tok).float())
    return x, tok, old


def _loss(ctx: PhaseContext, img, txt, scale, old, with_penalty: bool):
    loss = clip_loss(img, txt, scale)
    logs = {"clip": float(loss.detach())}
    feats = Features(img, txt, *(old if old is not None else (None, None)))
    term, extra = ctx.strategy.loss(ctx.trainer, feats)
    if term is not None:
        loss = loss + term
    logs.update(extra)
    if with_penalty:
        pen, extra = ctx.strategy.penalty(ctx.trainer)
        if pen is not None:
            loss = loss + pen
        logs.update(extra)
    return loss, logs


def _check_finite(loss, ctx: PhaseContext, step: int) -> None:
    if not torch.isfinite(loss.detach()):
        raise TrainingError(
            f"the loss became {float(loss.detach())} at phase {ctx.t}, step {step}; stopped. "
            "The last good checkpoint is kept; lower the learning rate or alpha"
        )


def train_step(ctx: PhaseContext, x, tok, old, step: int, grad_accum: int) -> dict:
    """Forward, backward (accumulated over ``grad_accum`` micro-batches) and the update."""
    tr, model, ddp, opt = ctx.trainer, ctx.model, ctx.ddp, ctx.opt
    model.train()
    opt.zero_grad(set_to_none=True)
    k = min(grad_accum, x.shape[0])
    if k == 1:
        with tr.autocast():
            img, txt, scale = ddp(x, tok)
            loss, logs = _loss(ctx, img, txt, scale, old, True)
        _check_finite(loss, ctx, step)
        loss.backward()
    else:
        # micro-batch m holds rows m, m + k, ...: extra rows spread over micro-batches too
        parts = [torch.arange(m, x.shape[0], k, device=x.device) for m in range(k)]
        with torch.no_grad(), tr.autocast():
            outs = [model(x[p], tok[p]) for p in parts]
        img_all = torch.empty((x.shape[0], outs[0][0].shape[1]), dtype=outs[0][0].dtype,
                              device=x.device)
        txt_all = torch.empty_like(img_all)
        for p, (i, t_, _) in zip(parts, outs, strict=True):
            img_all[p], txt_all[p] = i, t_
        for m, p in enumerate(parts):
            sync = m == k - 1 or tr.world == 1
            with (contextlib.nullcontext() if sync else ddp.no_sync()), tr.autocast():
                img_m, txt_m, scale = ddp(x[p], tok[p])
                img = img_all.index_copy(0, p, img_m)
                txt = txt_all.index_copy(0, p, txt_m)
                if m:  # the logit scale enters the loss itself: its gradient once
                    scale = scale.detach()
                loss_m, logs_m = _loss(ctx, img, txt, scale, old, m == 0)
            _check_finite(loss_m, ctx, step)
            loss_m.backward()
            if m == 0:
                loss, logs = loss_m, logs_m
    clip = ctx.clip_grad
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, LOGIT_MAX)
    logs["loss"] = float(loss.detach())
    return logs
