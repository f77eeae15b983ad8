"""The training stream as open_clip feeds it: a torch DataLoader whose workers decode and
transform each step's images, this rank's rows only.

The order of the batches comes from :func:`modx.data.batches`, drawn in the main process by
the loader's batch sampler, so every worker count gives the same batches, and a run resumed at
step k sees what an uninterrupted run sees there. With ``augment`` the random crop of image
``i`` at step ``s`` is drawn with the torch generator seeded from (seed, phase, s, i): the
same crops for any number of workers and after a resume.

A phase whose preprocessed images fit in ``preload_gb`` (and is not augmented) is prepared
once and read from memory instead (:class:`modx.data.PhaseTensors`); the batches are the same.
"""

from __future__ import annotations

import torch

from sdtools.data.base import from_workers

from .data import PhaseTensors, batches, transform_item


class PhaseImages(torch.utils.data.Dataset):
    """Item ``(step, image, caption)`` -> ``(image, caption, transformed image)``."""

    def __init__(self, data, transform, random: bool, seed: int, phase: int):
        # random: seed each item's transform from (seed, phase, step, image)
        self.data, self.transform, self.random = data, transform, random
        self.seed, self.phase = seed, phase

    def __len__(self) -> int:
        return self.data.n_images

    def __getitem__(self, item):
        step, i, c = item
        key = (self.seed, self.phase, step) if self.random else None
        return i, c, transform_item(self.data, self.transform, i, key)


class StepSampler:
    """The batch sampler: this rank's rows (r, r + world, ...) of each step's global batch."""

    def __init__(self, pt: PhaseTensors, batch_size: int, seed: int, phase: int, start: int,
                 rank: int = 0, world: int = 1):
        self.args = (pt, batch_size, seed, phase, start)
        self.start, self.rank, self.world = start, rank, world

    def __iter__(self):
        for step, (bi, bc) in enumerate(batches(*self.args), self.start):
            yield [(step, int(bi[k]), int(bc[k])) for k in range(self.rank, len(bi), self.world)]


def _collate(items):
    i, c, x = zip(*items, strict=True)
    return torch.as_tensor(i), torch.as_tensor(c), torch.stack(x)


def _with_tokens(pt: PhaseTensors, it):
    for bi, bc, x in it:
        yield bi, bc, pt.token_batch(bc), x


def phase_stream(pt: PhaseTensors, batch_size: int, seed: int, phase: int, start: int = 0,
                 rank: int = 0, world: int = 1, workers: int = 0, pin: bool = False):
    """Yields ``(images, captions, tokens, x)`` per step from ``start``: this rank's image and
    caption indices, their tokens and transformed images, in the order of
    :func:`modx.data.batches`. A streamed phase (:mod:`modx.stream`) has no indices (None)."""
    if getattr(pt.data, "streamed", False):
        from .stream import shard_stream

        yield from shard_stream(pt, batch_size // world, seed, phase, start, workers, pin)
        return
    if pt.images is not None:
        for bi, bc in batches(pt, batch_size, seed, phase, start):
            bi, bc = torch.as_tensor(bi[rank::world]), torch.as_tensor(bc[rank::world])
            yield bi, bc, pt.token_batch(bc), pt.images[bi]
        return
    loader = torch.utils.data.DataLoader(
        PhaseImages(pt.data, pt.train_transform, pt.augment, seed, phase),
        batch_sampler=StepSampler(pt, batch_size, seed, phase, start, rank, world),
        collate_fn=_collate, num_workers=workers, pin_memory=pin,
        prefetch_factor=2 if workers else None,
        # the loader draws its workers' base seed from this, not from the global generator,
        # so the training's random state is the same whether a phase is read from memory
        generator=torch.Generator().manual_seed(seed * 1009 + phase),
    )
    it = iter(loader)  # one iterator per phase: its workers live through the phase's steps
    try:
        yield from _with_tokens(pt, from_workers(it))
    finally:
        del it
