"""Losses: the CLIP loss (open_clip's ClipLoss), Mod-X alignment and the baselines' terms.

All take raw features (they L2-normalise where the method says so) and return scalars.
Under data parallelism, :func:`sdtools.dist.gather` collects features across ranks so that
every matrix spans the global batch, as the official Mod-X code does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modx.errors import ConfigError
from sdtools.dist import rank_world


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over the global batch (open_clip's ClipLoss with gathered features).

    ``img``/``txt`` are this rank's L2-normalised features.
    """
    from open_clip.loss import ClipLoss

    rank, world = rank_world()
    loss = ClipLoss(local_loss=False, gather_with_grad=True, cache_labels=False, rank=rank,
                    world_size=world)
    return loss(img, txt, logit_scale)


def _row_kl(old_logits, new_logits, mask_rows, reduction):
    """KL(softmax(old) || softmax(new)) per row, over the rows in ``mask_rows``."""
    logp_new = F.log_softmax(new_logits, dim=1)
    logp_old = F.log_softmax(old_logits, dim=1)
    terms = F.kl_div(logp_new, logp_old, reduction="none", log_target=True)
    # entries left out of both rows (-inf, exclude_diagonal) contribute nothing
    terms = torch.where(torch.isneginf(logp_old), torch.zeros_like(terms), terms)
    kl = terms.sum(1)
    kl = kl[mask_rows]
    if reduction == "sum":
        return kl.sum()
    if reduction == "mean":
        return kl.mean() if kl.numel() else kl.sum()
    raise ConfigError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def modx_alignment_stats(
    img_new, txt_new, img_old, txt_old, temperature: float = 1.0,
    exclude_diagonal: bool = False, reduction: str = "sum", select: bool = True,
) -> tuple[torch.Tensor, float]:
    """:func:`modx_alignment` that also returns the share of rows kept by the selection."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    vn, tn = F.normalize(img_new, dim=-1), F.normalize(txt_new, dim=-1)
    with torch.no_grad():
        vo, to = F.normalize(img_old, dim=-1), F.normalize(txt_old, dim=-1)
        m_old = vo @ to.T
    m_new = vn @ tn.T
    b = m_new.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=m_new.device)
    total, kept = m_new.new_zeros(()), 0
    for old, new in ((m_old, m_new), (m_old.T, m_new.T)):
        if select:  # rows the old model retrieved correctly (its argmax is the diagonal)
            rows = old.argmax(dim=1) == torch.arange(b, device=old.device)
        else:
            rows = torch.ones(b, dtype=torch.bool, device=old.device)
        kept += int(rows.sum())
        o, n = old / temperature, new / temperature
        if exclude_diagonal:
            o = o.masked_fill(eye, float("-inf"))
            n = n.masked_fill(eye, float("-inf"))
        total = total + _row_kl(o, n, rows, reduction)
    return 0.5 * total, kept / (2 * b)


def modx_alignment(img_new, txt_new, img_old, txt_old, temperature: float = 1.0,
                   exclude_diagonal: bool = False, reduction: str = "sum") -> torch.Tensor:
    """Mod-X alignment: distil the old model's contrastive rows it got right into the new model.

    ``M = V T^T`` of L2-normalised features (cosine, no logit scale) for the new and the frozen
    old model. A row i (image->text; likewise for the transposes, text->image) counts only when
    ``argmax M_old[i] = i``. Loss ``1/2 (sum_i KL(softmax(M_old[i]/tau) || softmax(M_new[i]/tau))
    + same for the transposes)`` over the selected rows (``reduction='sum'`` as the official code;
    ``'mean'`` averages over selected rows). The diagonal is included unless
    ``exclude_diagonal``. No gradient reaches the old features. The matrices span the rows
    given: under data parallelism, gather the features first (as the ``modx`` method does) so
    that they span the global batch.

    Parameters
    ----------
    img_new, txt_new : tensor (B, D)
        Raw image and text features of the B pairs of the batch under the model being
        trained (L2-normalised here).
    img_old, txt_old : tensor (B, D)
        The same pairs' raw features under the frozen previous-phase model (L2-normalised
        here; no gradient flows into them).
    temperature : float
        ``tau`` of the softmax over each row (1, the official value: cosines as logits).
    exclude_diagonal : bool
        Leave each row's matching pair out of both distributions (the official code keeps it).
    reduction : str
        ``'sum'`` over the selected rows (official) or ``'mean'`` over them (0 when none is
        selected).

    Returns
    -------
    tensor
        The alignment loss, a scalar (0 when the new model's rows equal the old model's).

    Raises
    ------
    ConfigError
        ``temperature`` is not above 0, or ``reduction`` is neither ``'sum'`` nor ``'mean'``.

    See Also
    --------
    modx.losses.modx_alignment_stats : The same loss and the share of rows selected.
    modx.losses.lwf_distillation : The same distillation over every row (no selection).
    modx.losses.clip_loss : The contrastive loss it is added to (``L = L_CLIP + alpha L_align``).

    References
    ----------
    1. Z. Ni, L. Wei, S. Tang, Y. Zhuang, Q. Tian. Continual Vision-Language Representation
       Learning with Off-Diagonal Information. ICML 2023, PMLR 202:26129-26149
       (arXiv:2305.07437).

    Examples
    --------
    >>> import torch
    >>> from modx.losses import modx_alignment
    >>> g = torch.Generator().manual_seed(0)
    >>> img_old = torch.randn(8, 16, generator=g)
    >>> txt_old = img_old + 0.1 * torch.randn(8, 16, generator=g)  # the old model matches
    >>> round(modx_alignment(img_old, txt_old, img_old, txt_old).item(), 6)  # nothing lost
    0.0
    >>> img_new = torch.randn(8, 16, generator=g, requires_grad=True)
    >>> loss = modx_alignment(img_new, txt_old, img_old, txt_old)
    >>> loss.shape, loss.item() > 0, loss.requires_grad
    (torch.Size([]), True, True)
    """
    return modx_alignment_stats(img_new, txt_new, img_old, txt_old, temperature,
                                exclude_diagonal, reduction)[0]


def lwf_distillation(img_new, txt_new, img_old, txt_old, temperature: float = 1.0,
                     reduction: str = "sum") -> torch.Tensor:
    """LwF-style distillation of the old model's full contrastive distributions (no selection)."""
    return modx_alignment_stats(img_new, txt_new, img_old, txt_old, temperature, False,
                                reduction, select=False)[0]


def _pdist(x):
    d = torch.cdist(x, x)
    mean = d[d > 0].mean() if (d > 0).any() else d.new_ones(())
    return d / mean


def rkd_distance(new, old) -> torch.Tensor:
    """Relational KD, distance term: Huber loss between mean-normalised pairwise distances."""
    new, old = F.normalize(new, dim=-1), F.normalize(old.detach(), dim=-1)
    with torch.no_grad():
        t = _pdist(old)
    return F.smooth_l1_loss(_pdist(new), t)


def rkd_angle(new, old) -> torch.Tensor:
    """Relational KD, angle term: Huber loss between the cosines of triplet angles."""
    def angles(x):
        e = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)  # e[i, j] = dir(j - i)
        return torch.bmm(e, e.transpose(1, 2)).flatten()

    new, old = F.normalize(new, dim=-1), F.normalize(old.detach(), dim=-1)
    with torch.no_grad():
        t = angles(old)
    return F.smooth_l1_loss(angles(new), t)
