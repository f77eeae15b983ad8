"""Split data into phases, turn a phase into tensors, sample batches, keep a replay buffer."""

from __future__ import annotations

import numpy as np
import torch

from modx.errors import ConfigError
from sdtools.data.base import ImageTextData
from sdtools.errors import DataError


def split_phases(data: ImageTextData, how: str, seed: int = 0) -> list[ImageTextData]:
    """``how``: ``domain`` (by the data's domain labels, in sorted order), ``contiguous:N``
    (N equal contiguous slices of the images, the official protocol), ``random:N``, or
    ``base+contiguous:N`` / ``base+random:N`` (the first domain is phase 0, the rest is cut into
    N phases: a base model, then a stream of new data)."""
    kind, _, arg = how.partition(":")
    base = None
    if kind.startswith("base+"):
        if data.domains is None:
            raise DataError(f"{how!r} needs domain labels to tell the base from the stream")
        labels = sorted(set(data.domains.tolist()), key=lambda x: (str(type(x)), x))
        base = data.subset(np.flatnonzero(data.domains == labels[0]))
        data = data.subset(np.flatnonzero(data.domains != labels[0]))
        kind = kind[len("base+"):]
        if kind not in ("contiguous", "random"):
            raise DataError(f"unknown phase split {how!r}; use base+contiguous:N or "
                            "base+random:N")
    n = data.n_images
    if kind == "domain":
        if data.domains is None:
            raise DataError(f"{data.spec} has no domain labels; use contiguous:N or random:N")
        labels = sorted(set(data.domains.tolist()), key=lambda x: (str(type(x)), x))
        groups = [np.flatnonzero(data.domains == lab) for lab in labels]
    elif kind in ("contiguous", "random"):
        try:
            k = int(arg)
        except ValueError:
            raise DataError(f"phases {how!r}: give the number of phases, e.g. {kind}:5") from None
        if k < 1:
            raise DataError(f"phases {how!r}: need at least one phase")
        if k > n:
            raise DataError(f"{k} phases but only {n} images; use fewer phases")
        order = np.arange(n) if kind == "contiguous" else np.random.default_rng(seed).permutation(n)
        groups = [np.sort(g) for g in np.array_split(order, k)]
    else:
        raise DataError(f"unknown phase split {how!r}; use domain, contiguous:N, random:N or "
                        "base+contiguous:N")
    for i, g in enumerate(groups):
        if len(g) == 0:
            raise DataError(f"phase {i} of {how!r} is empty")
    return ([base] if base is not None else []) + [data.subset(g) for g in groups]


def item_seed(seed: int, phase: int, step: int, i: int) -> int:
    """The seed of image ``i``'s random transform at ``step`` of ``phase``."""
    return int(np.random.SeedSequence([seed, phase, step, i, 7919]).generate_state(1)[0])


def transform_item(data, transform, i: int, key: tuple | None = None) -> torch.Tensor:
    """Image ``i`` through ``transform``; ``key`` (seed, phase, step) seeds a random one from
    the torch generator, leaving the caller's generator as it was."""
    img = data.load_image(int(i))
    if key is None:
        return transform(img)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(item_seed(*key, int(i)))
        return transform(img)


class PhaseTensors:
    """A phase's captions as tokens, made once, and its images: preprocessed once and kept in
    memory when they fit in ``max_bytes`` (valid because the evaluation transform is
    deterministic, as in the official protocol), else transformed when a batch asks.

    ``train_transform``: open_clip's training augmentation (``augment = true``); training
    batches then go through it, seeded per image and step (:func:`transform_item`), and
    nothing is kept in memory. Teacher features, Fisher batches and reference sets use the
    evaluation transform (``preprocess``).
    """

    def __init__(self, data: ImageTextData, preprocess, tokenizer, max_bytes: int = 2 << 30,
                 progress: bool = False, train_transform=None):
        self.data = data
        self.preprocess = preprocess
        self.augment = train_transform is not None
        self.train_transform = train_transform if self.augment else preprocess
        self.tokens = tokenizer(list(data.captions)) if len(data.captions) else None
        self.image_of_text = torch.as_tensor(np.asarray(data.image_of_text), dtype=torch.long)
        self.caps_of = [[] for _ in range(data.n_images)]
        for j, i in enumerate(data.image_of_text.tolist()):
            self.caps_of[i].append(j)
        self.images = None
        if self.augment or max_bytes <= 0:
            return
        first = preprocess(data.load_image(0))
        if first.numel() * first.element_size() * data.n_images <= max_bytes:
            self.images = torch.empty((data.n_images, *first.shape), dtype=first.dtype)
            rng = range(data.n_images)
            if progress:
                from tqdm.auto import tqdm

                rng = tqdm(rng, desc="preparing images", leave=False, unit="img")
            for i in rng:
                self.images[i] = first if i == 0 else preprocess(data.load_image(i))

    def image_batch(self, idx, key: tuple | None = None) -> torch.Tensor:
        """Images ``idx`` through the evaluation transform; with ``key`` (seed, phase, step),
        through the training transform (seeded per image when it is random)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        if self.images is not None and (key is None or not self.augment):
            return self.images[idx]
        if key is not None and self.augment:
            return torch.stack([transform_item(self.data, self.train_transform, int(i), key)
                                for i in idx])
        return torch.stack([self.preprocess(self.data.load_image(int(i))) for i in idx])

    def token_batch(self, cap_idx) -> torch.Tensor:
        return self.tokens[torch.as_tensor(cap_idx, dtype=torch.long)]


def _rng(*keys) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in keys])


def batches(pt: PhaseTensors, batch_size: int, seed: int, phase: int, start: int = 0,
            say=None):
    """Deterministic stream of (image indices, caption indices) batches, from batch ``start``.

    Each epoch shuffles the images (seeded by seed, phase, epoch) and picks one of each image's
    captions; a batch never holds the same caption text twice (a duplicate waits for the next
    batch), since a twin caption would make the old model's correct answer look wrong. Data
    with fewer distinct captions than a batch cannot satisfy that: it is refused at once,
    and an epoch that fills no batch stops the stream, so this never loops forever.
    """
    n = pt.data.n_images
    if batch_size > n:
        raise DataError(f"batch size {batch_size} is larger than the phase ({n} images)")
    distinct = len(set(pt.data.captions))
    if distinct < batch_size:
        raise DataError(
            f"{pt.data.spec}: only {distinct} distinct caption(s) among {n} images, but a batch "
            f"of {batch_size} needs {batch_size} different captions; check the captions (are "
            "they read from the right member/column?) or lower batch_size"
        )
    step, epoch = 0, 0
    while True:
        rng = _rng(seed, phase, epoch, 104729)
        order = rng.permutation(n)
        picks = rng.random(n)
        pending = []
        filled = 0
        batch_i, batch_c, seen = [], [], set()
        for i in order.tolist():
            caps = pt.caps_of[i]
            c = caps[int(picks[i] * len(caps))]
            text = pt.data.captions[c]
            if text in seen:
                pending.append((i, c, text))
                continue
            batch_i.append(i)
            batch_c.append(c)
            seen.add(text)
            if len(batch_i) == batch_size:
                filled += 1
                if step >= start:
                    yield np.asarray(batch_i), np.asarray(batch_c)
                step += 1
                batch_i, batch_c, seen = [], [], set()
                keep = []
                for i2, c2, t2 in pending:  # deferred duplicates go first into the next batch
                    if t2 in seen or len(batch_i) == batch_size:
                        keep.append((i2, c2, t2))
                    else:
                        batch_i.append(i2)
                        batch_c.append(c2)
                        seen.add(t2)
                pending = keep
        if not filled:
            raise DataError(
                f"{pt.data.spec}: no batch of {batch_size} pairs with distinct captions could be "
                f"filled in a whole epoch ({distinct} distinct captions, most repeated); lower "
                "batch_size or deduplicate the captions"
            )
        epoch += 1  # the incomplete last batch of an epoch is dropped


class ReplayBuffer:
    """Reservoir sample (uniform over everything offered) of past (phase, image, caption)."""

    def __init__(self, size: int, seed: int = 0):
        if size < 1:
            raise DataError(f"replay buffer size must be >= 1, got {size}")
        self.size = size
        self.items = np.zeros((0, 3), dtype=np.int64)
        self.seen = 0
        self.seed = seed

    def add(self, phase: int, images: np.ndarray, captions: np.ndarray) -> None:
        rng = _rng(self.seed, phase, self.seen, 1299709)
        items = np.stack([np.full(len(images), phase), images, captions], 1).astype(np.int64)
        buf = list(self.items)
        for it in items:
            self.seen += 1
            if len(buf) < self.size:
                buf.append(it)
            else:
                j = int(rng.integers(0, self.seen))
                if j < self.size:
                    buf[j] = it
        self.items = np.asarray(buf, dtype=np.int64).reshape(-1, 3)

    def sample(self, k: int, step_seed) -> np.ndarray:
        if len(self.items) == 0 or k <= 0:
            return self.items[:0]
        rng = _rng(self.seed, *step_seed, 15485863)
        return self.items[rng.choice(len(self.items), min(k, len(self.items)), replace=False)]

    def state_dict(self) -> dict:
        return {"items": torch.from_numpy(self.items.copy()), "seen": self.seen,
                "size": self.size, "seed": self.seed}

    def load_state_dict(self, st: dict) -> None:
        self.items = st["items"].numpy().astype(np.int64).reshape(-1, 3)
        self.seen, self.size, self.seed = int(st["seen"]), int(st["size"]), int(st["seed"])


def check_spec_files(spec, what: str) -> None:
    """A data SPEC's grammar and the files it names, checked without reading them (when a
    config or a plan is read, ``--list`` included): a one-line ConfigError."""
    from pathlib import Path

    from sdtools.data.specs import parse_spec
    from sdtools.data.webdataset import expand_shards
    from sdtools.errors import UserError

    if not isinstance(spec, str):
        raise ConfigError(f"{what} must be a data SPEC string, got {spec!r}")
    try:
        p = parse_spec(spec)
    except UserError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    files = {"csv": p.args[:1], "karpathy": p.args[:1], "run": p.args[:1],
             "wds": expand_shards(p.args[0]) if p.kind == "wds" else []}.get(p.kind, [])
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise ConfigError(f"{what} {spec}: {missing[0]} not found; fix the path or drop the "
                          "setting to use its default")
