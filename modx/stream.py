"""Streamed phases: ``phases = "shards:N"`` over a ``wds:`` SPEC cuts the shard list into N
contiguous phases (phase 0 is the first group), each read shard by shard through webdataset's
own pipeline, split by rank and by DataLoader worker, with a seeded shuffle buffer. Nothing is
indexed: a phase holds its shard names only, and memory holds the shuffle buffer and the
batches in flight.

What streaming gives up: methods that read a phase's items by index (replay, cumulative,
joint, ewc) and the teacher cache (the teacher runs live); a batch may repeat a caption text;
the stream of a given worker count is deterministic (shard order, buffer seed), so a run
resumed mid-phase skips the batches it had trained on and continues bit-exact with the same
``workers``.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from modx.errors import ConfigError
from sdtools.data.specs import parse_spec
from sdtools.data.webdataset import (
    DEFAULT_CAPTION_KEYS,
    IMAGE_KEYS,
    expand_shards,
    sample_captions,
)
from sdtools.dist import rank_world
from sdtools.errors import DataError

SHUFFLE_BUFFER = 1000


class ShardPhase:
    """One streamed phase: its shards, in order, and the caption members to read."""

    streamed = True
    in_memory = False
    domains = None

    def __init__(self, shards: list[str], caption_keys, spec: str):
        self.shards, self.caption_keys, self.spec = list(shards), tuple(caption_keys), spec

    def __repr__(self) -> str:
        return f"ShardPhase({len(self.shards)} shards: {self.shards[0]}...)"


def is_streamed(data) -> bool:
    return bool(getattr(data, "streamed", False))


def check_shard(path) -> None:
    """A shard must be a tar file with at least one member: read its first header only (a
    damaged member later on is named when it is reached)."""
    import tarfile

    from sdtools.io import not_regular

    kind = not_regular(path)
    if kind is not None:
        raise DataError(f"shard {path} is {kind}, not a tar file")
    try:
        with tarfile.open(path) as tf:
            first = tf.next()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"shard {path} is not a readable tar file ({exc}); webdataset shards "
                        "are tar files") from None
    if first is None:
        raise DataError(f"shard {path} is an empty tar file (no samples); remove it from the "
                        "shard list")


def shard_phases(spec: str, how: str) -> list[ShardPhase]:
    """``shards:N``: the shards of a ``wds:`` SPEC in N contiguous groups."""
    _, _, arg = how.partition(":")
    p = parse_spec(spec)
    if p.kind != "wds":
        raise ConfigError(f"phases = {how!r} streams webdataset shards: give a wds: SPEC as data "
                          f"(got {p.kind}:), or use contiguous:N")
    try:
        k = int(arg)
    except ValueError:
        raise ConfigError(f"phases {how!r}: give the number of phases, e.g. shards:5") from None
    import importlib.util

    if importlib.util.find_spec("webdataset") is None:
        raise ConfigError(f"phases = {how!r} reads shards through webdataset: pip install "
                          "'sdtools-modx[wds]'")
    shards = expand_shards(p.args[0])
    from pathlib import Path

    from sdtools.io import not_regular

    odd = next(((s, why) for s in shards if (why := not_regular(s)) is not None), None)
    if odd is not None:
        raise DataError(f"shard {odd[0]} is {odd[1]}, not a tar file; name the shard files")
    missing = [s for s in shards if not Path(s).is_file()]
    if missing:
        raise DataError(f"{len(missing)} shard(s) missing (first: {missing[:3]})")
    if "n" in p.options:
        raise ConfigError(f"{spec}: n= caps a probe set; a streamed phase reads its shards "
                          "whole: drop n= (or name fewer shards)")
    for s in shards:
        check_shard(s)
    if not 1 <= k <= len(shards):
        raise ConfigError(f"phases {how!r}: {len(shards)} shard(s) cannot make {k} phases; "
                          "give at most one phase per shard")
    keys = p.options.get("caption-key")
    keys = keys.split(";") if keys else DEFAULT_CAPTION_KEYS
    groups = np.array_split(np.arange(len(shards)), k)
    return [ShardPhase([shards[i] for i in g], keys, f"{spec}#shards{g[0]}-{g[-1]}")
            for g in groups]


def check_streamed(cfg) -> None:
    """What a streamed run cannot do, said before anything runs."""
    from .methods import METHODS

    bad = [m for m in cfg.methods if m in METHODS and METHODS[m].needs_index]
    if bad:
        raise ConfigError(f"{bad[0]} reads a phase's items by index, which streamed phases "
                          f"(phases = {cfg.phases!r}) do not have; drop it or use contiguous:N")
    if cfg.epochs is not None:
        raise ConfigError("a streamed phase has no known length: give steps, not epochs")


def _pair(sample: dict, keys, transform, tokenizer):
    """A webdataset sample (raw bytes per member) -> (image tensor, tokens), or None."""
    from sdtools.data.base import open_rgb

    img = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
    caps = sample_captions(sample, keys, f"{sample.get('__url__')}:{sample.get('__key__')}")
    if img is None or not caps:
        return None
    caption = caps[0]
    try:
        x = transform(open_rgb(img))
    except OSError as exc:
        raise DataError(f"cannot read the image of sample {sample.get('__key__')} in "
                        f"{sample.get('__url__')} ({exc}); remove it or re-encode it") from None
    return x, tokenizer([caption])[0]


def _collate(items):
    xs, toks = zip(*items, strict=True)
    return torch.stack(xs), torch.stack(toks)


class StreamTensors:
    """What the trainer asks of a phase, for a streamed one: no images or tokens held."""

    images = None
    tokens = None

    def __init__(self, phase: ShardPhase, preprocess, tokenizer, train_transform=None):
        self.data, self.preprocess, self.tokenizer = phase, preprocess, tokenizer
        self.augment = train_transform is not None
        self.train_transform = train_transform or preprocess


def _epoch_loader(st: StreamTensors, local_batch: int, seed: int, phase: int, epoch: int,
                  workers: int, pin: bool):
    import webdataset as wds

    keys, tf, tok = st.data.caption_keys, st.train_transform, st.tokenizer
    ds = (wds.WebDataset(st.data.shards, shardshuffle=False, nodesplitter=wds.split_by_node,
                         workersplitter=wds.split_by_worker, empty_check=False)
          .shuffle(SHUFFLE_BUFFER, rng=random.Random(f"{seed}:{phase}:{epoch}"))
          .map(lambda s: _pair(s, keys, tf, tok))
          .select(lambda p: p is not None)
          .batched(local_batch, collation_fn=_collate, partial=False))
    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                       pin_memory=pin)


def shard_stream(st: StreamTensors, local_batch: int, seed: int, phase: int, start: int = 0,
                 workers: int = 0, pin: bool = False):
    """Yields ``(None, None, tokens, images)`` per step from ``start``: this rank's batches of
    its shards (``split_by_node``), each worker reading its own (``split_by_worker``), shuffled
    through a buffer seeded by (seed, phase, pass), the shards read again as often as needed."""
    from sdtools.data.base import from_workers

    _, world = rank_world()
    per_rank = max(1, len(st.data.shards) // world)
    workers = min(workers, per_rank)  # a worker without a shard would have nothing to read
    step, epoch = 0, 0
    while True:
        it = iter(_epoch_loader(st, local_batch, seed, phase, epoch, workers, pin))
        n = 0
        try:
            for x, tokens in from_workers(it):
                n += 1
                if step >= start:  # a resumed phase reads past the batches it trained on
                    yield None, None, tokens, x
                step += 1
        finally:
            del it
        if not n:
            raise DataError(f"{st.data.spec}: a pass over its shards fills no batch of "
                            f"{local_batch} pairs; lower batch_size or give more data")
        epoch += 1
