"""The synthetic stream: procedurally rendered shapes with captions, in several style domains.

Each image shows one shape with attributes (shape, colour, size, position, fill) on a dark
background with a tone and a texture style; its captions (several paraphrase templates) name
them all. Domains share objects and words but shift in style: domain k draws its background
styles from a sliding window (plain+stripes, stripes+dots, dots+checks, ...) and drops a
rotating subset of shapes and colours. Everything is deterministic by seed; all knobs live in
:class:`SyntheticConfig`.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image

from ..errors import DataError
from .base import ImageTextData
from .synthetic_config import (
    CLASS_TEMPLATES,
    COLOURS,
    DOMAIN_TEMPLATES,
    FILLS,
    POSITIONS,
    PROTOCOLS,
    SHAPES,
    SHIFT,
    SIZES,
    SPLITS,
    STYLES,
    TEMPLATES,
    TONES,
    SyntheticConfig,
)

__all__ = ["CLASS_TEMPLATES", "COLOURS", "DOMAIN_TEMPLATES", "FILLS", "POSITIONS", "PROTOCOLS",
           "SHAPES", "SHIFT", "SIZES", "SPLITS", "STYLES", "TEMPLATES", "TONES",
           "SyntheticConfig", "SyntheticData", "SyntheticStream", "parse_synthetic_spec",
           "synthetic_from_spec", "synthetic_spec"]


@functools.lru_cache(maxsize=8)
def _masks(size: int) -> np.ndarray:
    """Masks (shape, size, fill, H, W) centred in a (2*size) canvas, for rolling into place."""
    c = size  # centre of a 2*size canvas
    yy, xx = np.mgrid[0 : 2 * size, 0 : 2 * size].astype(np.float64) + 0.5
    dy, dx = yy - c, xx - c
    out = np.zeros((len(SHAPES), len(SIZES), 2, 2 * size, 2 * size), dtype=np.float32)

    def shape_mask(name, r):
        if name == "circle":
            return np.hypot(dx, dy) <= r
        if name == "square":
            return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
        if name == "triangle":
            return (dy <= 0.8 * r) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
        if name == "cross":
            return ((np.abs(dx) <= r / 3) & (np.abs(dy) <= r)) | (
                (np.abs(dy) <= r / 3) & (np.abs(dx) <= r))
        if name == "ring":
            d = np.hypot(dx, dy)
            return (d <= r) & (d >= 0.55 * r)
        if name == "diamond":
            return np.abs(dx) + np.abs(dy) <= r
        raise AssertionError(name)

    for si, name in enumerate(SHAPES):
        for zi, share in enumerate(SIZES.values()):
            r = share * size
            full = shape_mask(name, r)
            inner = shape_mask(name, max(r - 1.6, 0.5))
            out[si, zi, 0] = full
            out[si, zi, 1] = full & ~inner
    return out


@functools.lru_cache(maxsize=8)
def _patterns(size: int) -> np.ndarray:
    """Texture patterns (style, H, W) in [0, 1]; 'noisy' is filled per image."""
    yy, xx = np.mgrid[0:size, 0:size]
    p = np.zeros((len(STYLES), size, size), dtype=np.float32)
    p[1] = ((xx + yy) // 3) % 2  # striped (diagonal)
    p[2] = ((xx % 5 < 2) & (yy % 5 < 2))  # dotted
    p[3] = ((xx // 4 + yy // 4) % 2)  # checkered
    p[5] = 0.5 + 0.5 * np.sin(xx / 2.0 + 2.0 * np.sin(yy / 3.0))  # wavy
    return p


class SyntheticData(ImageTextData):
    """One domain (or several) and split of the synthetic stream, rendered on construction.

    ``attributes``: dict of per-image index arrays (shape, colour, size, pos, fill, style,
    tone); ``images``: uint8 array (N, H, W, 3); ``domains``: per-image domain index.
    """

    in_memory = True
    domains: np.ndarray  # always set (the base allows None)

    def __init__(self, config: SyntheticConfig, domains=(0,), split: str = "test",
                 n: int | None = None):
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use train or test")
        for k in domains:
            if not 0 <= int(k) < config.n_domains:
                raise DataError(f"domain {k} is outside [0, {config.n_domains})")
        self.config = config
        self.split = split
        per = n if n is not None else (
            config.train_per_domain if split == "train" else config.test_per_domain)
        if per < 1:
            raise DataError(f"need at least one sample per domain, got {per}")
        parts = [self._sample(int(k), split, per) for k in domains]
        self.attributes = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        self.domains = np.concatenate([np.full(per, int(k)) for k in domains])
        self.images = self._render(parts)
        self.captions, iot = [], []
        for i in range(len(self.domains)):
            for t in self._templates_of(i):
                self.captions.append(self.caption(i, t))
                iot.append(i)
        self.image_of_text = np.asarray(iot, dtype=np.int64)
        self.spec = synthetic_spec(config, domains, split, per)

    # ------------------------------------------------------------------ sampling
    def class_labels(self):
        """Shape and colour of every image, as classification tasks."""
        return {"shape": (SHAPES, np.asarray(self.attributes["shape"], dtype=np.int64)),
                "colour": (tuple(COLOURS), np.asarray(self.attributes["colour"],
                                                      dtype=np.int64))}

    def class_templates(self, task: str) -> tuple[str, ...]:
        return CLASS_TEMPLATES.get(task, ("a photo of a {c}.",))

    def _sample(self, k: int, split: str, n: int) -> dict[str, np.ndarray]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, k, SPLITS[split], 7919])
        vocab = cfg.domain_vocab(k)
        out = {
            "shape": rng.choice(vocab["shape"], n),
            "colour": rng.choice(vocab["colour"], n),
            "size": rng.integers(0, len(SIZES), n),
            "pos": rng.integers(0, len(POSITIONS), n),
            "fill": rng.integers(0, len(FILLS), n),
            "style": rng.choice(vocab["style"], n),
            "tone": rng.integers(0, len(TONES), n),
            "jitter": rng.integers(-1, 2, (n, 2)),
            "noise_seed": rng.integers(0, 2**31, n),
            "template_seed": rng.integers(0, 2**31, n),
        }
        if cfg.protocol == "shift":  # composition and palette of the domain, same vocabulary
            sh = SHIFT[k]
            out["size"] = rng.choice(len(SIZES), n, p=sh["size_p"])
            w = np.asarray(sh["pos_w"], dtype=np.float64)
            out["pos"] = rng.choice(len(POSITIONS), n, p=w / w.sum())
            out["tone"] = rng.choice(sh["tone"], n)
        return out

    def _render(self, parts) -> np.ndarray:
        s = self.config.image_size
        masks = _masks(s)
        patterns = _patterns(s)
        tones = np.asarray(list(TONES.values()), dtype=np.float32)
        colours = np.asarray(list(COLOURS.values()), dtype=np.float32)
        a = self.attributes
        n = len(self.domains)
        imgs = np.empty((n, s, s, 3), dtype=np.uint8)
        grid = (0.25, 0.5, 0.75)
        for i in range(n):
            style = a["style"][i]
            if STYLES[style] == "noisy":
                pat = np.random.default_rng(a["noise_seed"][i]).random((s, s), dtype=np.float32)
            else:
                pat = patterns[style]
            tone = tones[a["tone"][i]]
            img = tone[None, None, :] * (1.0 + 0.9 * pat[:, :, None])
            p = a["pos"][i]
            cy = int(round(grid[p // 3] * s)) + a["jitter"][i, 0]
            cx = int(round(grid[p % 3] * s)) + a["jitter"][i, 1]
            m = masks[a["shape"][i], a["size"][i], a["fill"][i]]
            m = m[s - cy : 2 * s - cy, s - cx : 2 * s - cx]
            col = colours[a["colour"][i]]
            img = img * (1.0 - m[:, :, None]) + col[None, None, :] * m[:, :, None]
            imgs[i] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return imgs

    def _templates_of(self, i: int) -> list[int]:
        k = self.config.captions_per_image
        rng = np.random.default_rng(self.attributes["template_seed"][i])
        if self.config.protocol == "shift":
            allowed = SHIFT[int(self.domains[i])]["templates"]
            return sorted(int(allowed[j]) for j in rng.choice(len(allowed), k, replace=False))
        return sorted(rng.choice(DOMAIN_TEMPLATES, k, replace=False).tolist())

    def words(self, i: int) -> dict[str, str]:
        """The attribute words of image ``i``."""
        a = self.attributes
        return {
            "shape": SHAPES[a["shape"][i]],
            "colour": list(COLOURS)[a["colour"][i]],
            "size": list(SIZES)[a["size"][i]],
            "pos": POSITIONS[a["pos"][i]],
            "fill": FILLS[a["fill"][i]],
            "style": STYLES[a["style"][i]],
            "tone": list(TONES)[a["tone"][i]],
        }

    def caption(self, i: int, template: int = 0) -> str:
        return TEMPLATES[template].format(**self.words(i))

    # ------------------------------------------------------------------ dataset API
    @property
    def n_images(self) -> int:
        return len(self.domains)

    def load_image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])


class SyntheticStream:
    """All domains of the synthetic stream: ``stream.domain(k, "train")``.

    Parameters
    ----------
    config : SyntheticConfig, optional
        The stream's settings (default: ``SyntheticConfig()``).

    See Also
    --------
    SyntheticConfig : The stream's settings.
    open_data : Opens a domain and split of the stream from a ``synthetic:`` SPEC.

    Examples
    --------
    >>> from sdtools import SyntheticConfig, SyntheticStream
    >>> d = SyntheticStream(SyntheticConfig(train_per_domain=20)).domain(0, "train")
    >>> d.n_images, len(d.captions), d.words(0)["shape"] in d.captions[0]
    (20, 60, True)
    """

    def __init__(self, config: SyntheticConfig | None = None):
        self.config = config or SyntheticConfig()

    def domain(self, k: int, split: str = "train", n: int | None = None) -> SyntheticData:
        return SyntheticData(self.config, (k,), split, n)


_SPEC_KEYS = {f.name for f in dataclasses.fields(SyntheticConfig)}


def synthetic_spec(config: SyntheticConfig, domains, split: str, n: int) -> str:
    """The data SPEC that opens exactly this data again (non-default knobs, domains, split,
    images per domain): it can be passed back to ``--data``."""
    default = SyntheticConfig()
    knobs = [f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)
             if getattr(config, f.name) != getattr(default, f.name)]
    dom = "+".join(str(int(k)) for k in domains)
    return "synthetic:" + ",".join([*knobs, f"domain={dom}", f"split={split}", f"n={n}"])


def parse_synthetic_spec(rest: str) -> tuple[SyntheticConfig, tuple[int, ...], str, int | None]:
    """``synthetic[:k=v,...]``: config fields, plus ``domain`` (int, list a+b, or all),
    ``split`` (train/test) and ``n`` (images per domain). Returns (config, domains, split, n)."""
    kw: dict = {}
    domain, split, n = "0", "test", None
    seen: set[str] = set()
    for item in filter(None, (x.strip() for x in rest.replace(";", ",").split(","))):
        key, eq, val = item.partition("=")
        if not eq:
            raise DataError(f"synthetic option {item!r} is not key=value")
        if key in seen:
            raise DataError(f"synthetic option {key!r} is given twice; give it once")
        seen.add(key)
        try:
            if key == "domain":
                domain = val
            elif key == "split":
                split = val
            elif key == "n":
                n = int(val)
            elif key == "protocol":
                kw[key] = val
            elif key in _SPEC_KEYS:
                kw[key] = int(val)
            else:
                raise DataError(
                    f"unknown synthetic option {key!r}; valid: domain, split, n, "
                    + ", ".join(sorted(_SPEC_KEYS))
                )
        except ValueError as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"synthetic option {key}={val!r} needs an integer") from None
    cfg = SyntheticConfig(**kw)
    try:
        doms = tuple(range(cfg.n_domains)) if domain == "all" else tuple(
            int(d) for d in domain.split("+"))
    except ValueError:
        raise DataError(f"domain={domain!r}: give an index, a list like 0+2, or all") from None
    return cfg, doms, split, n


def synthetic_from_spec(rest: str) -> SyntheticData:
    """Build the synthetic data a ``synthetic[:k=v,...]`` spec names (see parse_synthetic_spec)."""
    cfg, doms, split, n = parse_synthetic_spec(rest)
    return SyntheticData(cfg, doms, split, n)
