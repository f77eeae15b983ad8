"""webdataset tar shards, read with our own indexer (member offsets, images on demand).

Members are grouped into samples as webdataset groups them: the key is the member's path up
to the first dot of its file name, the rest is the extension (``0001.jpg``, ``0001.txt``).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .base import ImageTextData, open_rgb

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp")
DEFAULT_CAPTION_KEYS = ("txt", "json")  # open_clip reads 'txt'; a json's caption(s) next


def expand_shards(pattern: str) -> list[str]:
    """Shard paths of a pattern: ``{000..009}`` ranges and ``{a,b}`` lists (braceexpand, as
    webdataset expands them), several patterns joined with ``::``."""
    from braceexpand import braceexpand

    out: list[str] = []
    for part in filter(None, pattern.split("::")):
        out.extend(braceexpand(part))
    return out


def _json_captions(raw: bytes, where: str) -> list[str]:
    try:
        meta = json.loads(raw.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{where} is not valid JSON ({exc.msg}); fix or remove it") from None
    if not isinstance(meta, dict):
        raise DataError(f"{where} holds a JSON {type(meta).__name__}, not an object with a "
                        "'caption' or 'captions' field")
    c = meta.get("captions", meta.get("caption"))
    caps = [c] if isinstance(c, str) else list(c) if isinstance(c, list) else []
    return [str(x).strip() for x in caps if str(x).strip()]


def sample_captions(members: dict, keys, where: str) -> list[str]:
    """The captions of one sample (member extension -> raw bytes): those of the first key in
    ``keys`` that gives any (``json``: its caption/captions field; other keys: the text)."""
    for k in keys:
        raw = members.get(k)
        if raw is None:
            continue
        if k == "json":
            caps = _json_captions(raw, f"{where}.json")
        else:
            text = raw.decode("utf-8", "replace").strip()
            caps = [text] if text else []
        if caps:
            return caps
    return []


class WebDatasetData(ImageTextData):
    """webdataset tar shards: an image member (jpg/png/...) and a caption per sample.

    ``caption_keys``: extensions tried in order, the first one present gives the captions
    (``txt``: the text; ``json``: its ``caption``/``captions`` field; any other: the text).
    Samples with no caption under these keys are dropped and counted (``no_caption``).
    ``max_items``: the first that many samples with a caption; shards after them are not read.
    """

    def __init__(self, pattern: str, caption_keys=None, max_items: int | None = None):
        self.caption_keys = tuple(caption_keys or DEFAULT_CAPTION_KEYS)
        self.spec = f"wds:{pattern}"
        if self.caption_keys != DEFAULT_CAPTION_KEYS:
            self.spec += ":caption-key=" + ";".join(self.caption_keys)
        self.shards = [Path(p) for p in expand_shards(pattern)]
        if not self.shards:
            raise DataError(f"wds:{pattern} names no shard")
        from ..io import not_regular

        odd = next(((p, k) for p in self.shards if (k := not_regular(p)) is not None), None)
        if odd is not None:
            raise DataError(f"shard {odd[0]} is {odd[1]}, not a tar file; name the shard "
                            "files themselves")
        missing = [str(p) for p in self.shards if not p.is_file()]
        if missing:
            raise DataError(f"{len(missing)} shard(s) missing (first: {missing[:3]})")
        self.index: list[tuple] = []  # (shard, key, offset, size) of each sample's image
        self.captions, iot = [], []
        others: set[str] = set()
        for s in self.shards:
            if max_items is not None and len(self.index) >= max_items:
                break
            for key, g in self._groups(s).items():
                if max_items is not None and len(self.index) >= max_items:
                    break
                if "img" not in g:
                    continue
                caps = self._captions(g, f"{s}:{key}")
                if not caps:
                    self.no_caption += 1
                    others.update(e for e in g if e != "img")
                    continue
                i = len(self.index)
                self.index.append((s, key, *g["img"]))
                self.captions.extend(caps)
                iot.extend([i] * len(caps))
        if not self.index:
            found = f"; their other members: {sorted(others)}" if others else ""
            raise DataError(
                f"no sample in {pattern} has both an image and a caption under "
                f"{'/'.join(self.caption_keys)} ({self.no_caption} image(s) without one{found}); "
                "name the caption member with wds:SHARDS:caption-key=KEY"
            )
        self.image_of_text = np.asarray(iot, dtype=np.int64)

    def _groups(self, shard: Path) -> dict[str, dict]:
        groups: dict[str, dict] = {}
        try:
            with tarfile.open(shard) as tf:
                for m in tf:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    stem, dot, ext = base.partition(".")
                    if not dot:
                        continue
                    key = m.name[: len(m.name) - len(base)] + stem
                    g = groups.setdefault(key, {})
                    ext = ext.lower()
                    if ext in IMAGE_KEYS:
                        g["img"] = (m.offset_data, m.size)
                    elif ext in self._read_keys():
                        f = tf.extractfile(m)
                        g[ext] = f.read() if f else b""
                    else:
                        g[ext] = None
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{shard} is not a readable tar shard ({exc}); webdataset shards "
                            "are tar files") from None
        return groups

    def _read_keys(self) -> tuple[str, ...]:
        """Members whose bytes the index keeps (the others are only noted)."""
        return self.caption_keys

    def _captions(self, g: dict, where: str) -> list[str]:
        return sample_captions(g, self.caption_keys, where)

    @property
    def n_images(self) -> int:
        return len(self.index)

    def item_names(self) -> list[str]:
        return [f"{shard}:{key}" for shard, key, *_ in self.index]

    def load_image(self, i: int) -> Image.Image:
        shard, key, off, size = self.index[i]
        with open(shard, "rb") as fh:
            fh.seek(off)
            raw = fh.read(size)
        try:
            return open_rgb(raw)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read the image of sample {key} in {shard} ({exc}); remove "
                            "the sample or re-encode the image") from None

    def _content_token(self) -> str:
        from .base import files_token

        return files_token(self.shards)


class LabelledWebDataset(WebDatasetData):
    """webdataset shards of an image-classification set: an image and a label member
    (``cls``, as CLIP_benchmark's webdataset sets hold it: a class index, or a class name)
    per sample; samples without the label member are dropped and counted (``no_caption``).

    ``cap``: the first that many samples of each class. The captions are made from the
    labels (see :mod:`sdtools.data.labels`).
    """

    def __init__(self, pattern: str, label_key: str = "cls", classnames=None, templates=None,
                 cap: int | None = None):
        from .labels import (
            SIMPLE_TEMPLATES,
            check_every_class,
            check_templates,
            per_class_cap,
            resolve_labels,
        )

        self.caption_keys = ()
        self.label_key = label_key.lower()
        self.spec = f"wds:{pattern}:label-key={label_key}"
        self.shards = [Path(p) for p in expand_shards(pattern)]
        if not self.shards:
            raise DataError(f"wds:{pattern} names no shard")
        missing = [str(p) for p in self.shards if not p.is_file()]
        if missing:
            raise DataError(f"{len(missing)} shard(s) missing (first: {missing[:3]})")
        self.templates = check_templates(templates or SIMPLE_TEMPLATES, self.spec)
        index: list[tuple] = []
        raw: list[str] = []
        others: set[str] = set()
        for s in self.shards:
            for key, g in self._groups(s).items():
                if "img" not in g:
                    continue
                label = g.get(self.label_key)
                if label is None:
                    self.no_caption += 1
                    others.update(e for e in g if e != "img")
                    continue
                index.append((s, key, *g["img"]))
                raw.append(label.decode("utf-8", "replace").strip())
        if not index:
            found = f"; their other members: {sorted(others)}" if others else ""
            raise DataError(f"no sample in {pattern} has both an image and a {label_key!r} "
                            f"member{found}; name the label member with "
                            "wds:SHARDS:label-key=KEY")
        names, y = resolve_labels(raw, classnames, self.spec)
        keep = per_class_cap(y, cap)
        self.index = [index[i] for i in keep]
        self.labels = y[keep]
        self.classnames = names
        check_every_class(names, self.labels, self.spec)
        first = self.templates[0]
        self.captions = [first.format(c=names[c]) for c in self.labels]
        self.image_of_text = np.arange(len(self.index), dtype=np.int64)

    def _read_keys(self) -> tuple[str, ...]:
        return (self.label_key,)

    def class_labels(self):
        return {"class": (self.classnames, self.labels)}

    def class_templates(self, task: str) -> tuple[str, ...]:
        return self.templates
