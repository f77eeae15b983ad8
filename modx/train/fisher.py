"""EWC's diagonal empirical Fisher of the CLIP loss, per pair, distinct data on every rank."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sdtools.dist import is_initialized

from ..data import batches

FISHER_BATCH = 32  # pairs contrasted with each other when one pair's term is differentiated


def pair_losses(img, txt, scale) -> torch.Tensor:
    """Each pair's own term of the symmetric CLIP loss (their mean is the CLIP loss)."""
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = scale * img @ txt.T
    labels = torch.arange(img.shape[0], device=img.device)
    return (F.cross_entropy(logits, labels, reduction="none")
            + F.cross_entropy(logits.T, labels, reduction="none")) / 2


def fisher_diagonal(tr, p: int, n_batches: int) -> dict[str, torch.Tensor]:
    """Mean over pairs of the squared gradient of each pair's own loss term, on phase ``p``.

    Batches of ``FISHER_BATCH`` pairs; rank r takes batches r, r + world, ... and the sums
    are reduced over ranks, so ``n_batches`` batches are seen whatever the process count.
    """
    pt = tr.tensors(p)
    model = tr.model
    params = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
    fisher = {n: torch.zeros_like(q) for n, q in params}
    bs = min(FISHER_BATCH, pt.data.n_images)
    stream = batches(pt, bs, tr.cfg.seed + 7, p)
    count = torch.zeros((), dtype=torch.float64)
    was_training = model.training
    model.eval()
    for b in range(n_batches):
        bi, bc = next(stream)
        if b % tr.world != tr.rank:
            continue
        img, txt, scale = model(pt.image_batch(bi).to(tr.device),
                                pt.token_batch(bc).to(tr.device))
        losses = pair_losses(img, txt, scale)
        for i in range(losses.shape[0]):
            grads = torch.autograd.grad(losses[i], [q for _, q in params], retain_graph=True,
                                        allow_unused=True)
            for (n, _), g in zip(params, grads, strict=True):
                if g is not None:
                    fisher[n] += g.detach() ** 2
        count += losses.shape[0]
    if is_initialized() and tr.world > 1:
        for v in fisher.values():
            torch.distributed.all_reduce(v)
        torch.distributed.all_reduce(count)
    model.train(was_training)
    return {n: v / max(float(count), 1.0) for n, v in fisher.items()}
