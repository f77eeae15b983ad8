"""Image-text datasets: the synthetic stream, CSV, Karpathy JSON and webdataset shards.

Every dataset is an :class:`ImageTextData`: ``n_images`` images, ``captions`` (all captions,
flat), ``image_of_text`` (caption -> image index) and ``load_image(i)`` (a PIL RGB image), plus
optional ``domains`` (per-image domain label). :func:`open_data` parses a data SPEC:

    synthetic[:k=v,...]                 the built-in synthetic stream (see SyntheticConfig)
    csv:PATH[:skip-missing]             open_clip CSV (filepath, title; tab or comma)
    karpathy:JSON:IMAGE_ROOT[:split]    dataset_coco.json / dataset_flickr30k.json
    wds:SHARDS                          webdataset tar shards, e.g. wds:data/{000..009}.tar
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class DataError(ValueError):
    """A data spec or dataset that cannot be used; the message says why and what to do."""


class ImageTextData:
    """Base: subclasses set ``captions``, ``image_of_text`` and implement ``load_image``."""

    spec: str = ""
    captions: list[str]
    image_of_text: np.ndarray
    domains: np.ndarray | None = None
    skipped: int = 0

    @property
    def n_images(self) -> int:
        raise NotImplementedError

    def load_image(self, i: int) -> Image.Image:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Identifies the content for the embedding cache: spec plus captions and sizes."""
        h = hashlib.sha256(self.spec.encode())
        h.update(str(self.n_images).encode())
        for c in self.captions:
            h.update(c.encode("utf-8", "replace") + b"\0")
        h.update(np.asarray(self.image_of_text, dtype=np.int64).tobytes())
        h.update(self._content_token().encode())
        return h.hexdigest()

    def _content_token(self) -> str:
        return ""

    def captions_of(self, i: int) -> list[str]:
        return [self.captions[j] for j in np.flatnonzero(self.image_of_text == i)]

    def subset(self, images) -> Subset:
        return Subset(self, np.asarray(images, dtype=np.int64))

    def __len__(self) -> int:
        return self.n_images

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.spec!r}, images={self.n_images}, "
                f"captions={len(self.captions)})")


class Subset(ImageTextData):
    """A selection of images of another dataset, with all their captions."""

    def __init__(self, base: ImageTextData, images: np.ndarray):
        self.base = base
        self.images = images
        remap = np.full(base.n_images, -1, dtype=np.int64)
        remap[images] = np.arange(len(images))
        keep = np.flatnonzero(remap[base.image_of_text] >= 0)
        self.captions = [base.captions[j] for j in keep]
        self.image_of_text = remap[base.image_of_text[keep]]
        self.domains = None if base.domains is None else base.domains[images]
        self.spec = f"{base.spec}#subset:{hashlib.sha256(images.tobytes()).hexdigest()[:12]}"

    @property
    def n_images(self) -> int:
        return len(self.images)

    def load_image(self, i: int) -> Image.Image:
        return self.base.load_image(int(self.images[i]))

    def _content_token(self) -> str:
        return self.base._content_token()


def _open_rgb(path_or_bytes) -> Image.Image:
    """Open an image as RGB (grayscale, palette and RGBA are converted; alpha over white)."""
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        im.load()
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            return Image.alpha_composite(bg, im).convert("RGB")
        return im.convert("RGB")


# --------------------------------------------------------------------------- file datasets


class FileImageData(ImageTextData):
    """Images on disk with captions; checks that every image exists at construction."""

    def __init__(self, spec: str, paths: list[Path], captions: list[list[str]],
                 domains: list | None = None, skip_missing: bool = False):
        self.spec = spec
        missing = [i for i, p in enumerate(paths) if not p.is_file()]
        if missing and not skip_missing:
            first = [str(paths[i]) for i in missing[:3]]
            raise DataError(
                f"{len(missing)} of {len(paths)} images are missing (first: {first}); fix the "
                "paths or pass --skip-missing to leave them out"
            )
        keep = sorted(set(range(len(paths))) - set(missing))
        self.skipped = len(missing)
        self.paths = [paths[i] for i in keep]
        self.captions = []
        iot = []
        for new, old in enumerate(keep):
            caps = captions[old] or [""]
            self.captions.extend(caps)
            iot.extend([new] * len(caps))
        self.image_of_text = np.asarray(iot, dtype=np.int64)
        self.domains = None if domains is None else np.asarray([domains[i] for i in keep])
        if not self.paths:
            raise DataError(f"{spec}: no images left to use")

    @property
    def n_images(self) -> int:
        return len(self.paths)

    def load_image(self, i: int) -> Image.Image:
        p = self.paths[i]
        try:
            return _open_rgb(p)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read image {p} ({exc}); remove or replace it") from None

    def _content_token(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            st = p.stat()
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")  # keep going; odd bytes become U+FFFD


def load_csv(path, img_key: str = "filepath", caption_key: str = "title",
             domain_key: str | None = None, skip_missing: bool = False) -> FileImageData:
    """open_clip's CSV convention; rows sharing an image path are one image with many captions.

    Tab- or comma-separated (guessed from the header); image paths relative to the CSV file.
    ``domain_key`` (default: a ``domain`` or ``phase`` column when present) labels images.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file not found: {path}")
    text = _read_text(path)
    header = text.splitlines()[0] if text else ""
    delim = "\t" if "\t" in header else ","
    rows = list(csv.DictReader(io.StringIO(text), delimiter=delim))
    if not rows:
        raise DataError(f"{path} has no data rows")
    cols = set(rows[0])
    for key in (img_key, caption_key):
        if key not in cols:
            raise DataError(f"{path} has no column {key!r} (columns: {sorted(cols)})")
    if domain_key is None:
        domain_key = next((k for k in ("domain", "phase") if k in cols), None)
    elif domain_key not in cols:
        raise DataError(f"{path} has no column {domain_key!r} (columns: {sorted(cols)})")
    order: dict[str, int] = {}
    caps: list[list[str]] = []
    doms: list = []
    for r in rows:
        key = (r[img_key] or "").strip()
        if key not in order:
            order[key] = len(caps)
            caps.append([])
            doms.append(r[domain_key] if domain_key else None)
        caps[order[key]].append((r[caption_key] or "").strip())
    paths = [(path.parent / k) if not Path(k).is_absolute() else Path(k) for k in order]
    return FileImageData(f"csv:{path}", paths, caps, doms if domain_key else None, skip_missing)


def load_karpathy(json_path, image_root, split: str | None = "test",
                  skip_missing: bool = False) -> FileImageData:
    """Karpathy-split JSON (``dataset_coco.json``, ``dataset_flickr30k.json``).

    ``split``: ``train`` (also takes ``restval``), ``val``, ``test`` or ``all``.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise DataError(f"Karpathy JSON not found: {json_path}")
    try:
        data = json.loads(_read_text(json_path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{json_path} is not valid JSON ({exc})") from None
    if "images" not in data:
        raise DataError(f"{json_path} has no 'images' list; is it a Karpathy split file?")
    wanted = {"train": {"train", "restval"}, "val": {"val"}, "test": {"test"}}
    if split not in (None, "all") and split not in wanted:
        raise DataError(f"unknown split {split!r}; use train, val, test or all")
    root = Path(image_root)
    paths, caps = [], []
    for img in data["images"]:
        if split not in (None, "all") and img.get("split") not in wanted[split]:
            continue
        rel = Path(img.get("filepath", "")) / img["filename"]
        paths.append(root / rel)
        caps.append([s.get("raw", " ".join(s.get("tokens", []))).strip()
                     for s in img.get("sentences", [])])
    if not paths:
        raise DataError(f"{json_path} has no images in split {split!r}")
    return FileImageData(f"karpathy:{json_path}:{root}:{split}", paths, caps, None, skip_missing)


# --------------------------------------------------------------------------- webdataset


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{000..009}`` ranges (zero padding kept) and ``{a,b}`` lists in shard patterns."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    body = m.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.groups()
        width = len(lo)
        opts = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        opts = body.split(",")
    out = []
    for o in opts:
        out.extend(expand_braces(pattern[: m.start()] + o + pattern[m.end():]))
    return out


_IMG_EXT = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class WebDatasetData(ImageTextData):
    """webdataset tar shards: samples grouped by key; image (jpg/png/...) and txt or json.

    The shards are indexed once (member offsets), images read on demand.
    """

    def __init__(self, pattern: str):
        self.spec = f"wds:{pattern}"
        self.shards = [Path(p) for p in expand_braces(pattern)]
        missing = [str(p) for p in self.shards if not p.is_file()]
        if missing:
            raise DataError(f"{len(missing)} shard(s) missing (first: {missing[:3]})")
        self.index = []
        self.captions = []
        iot = []
        for s in self.shards:
            groups: dict[str, dict] = {}
            with tarfile.open(s) as tf:
                for m in tf:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    key, _, ext = base.partition(".")
                    key = m.name[: len(m.name) - len(base)] + key
                    g = groups.setdefault(key, {})
                    ext = "." + ext.lower()
                    if ext in _IMG_EXT:
                        g["img"] = (m.offset_data, m.size)
                    elif ext in (".txt", ".json"):
                        f = tf.extractfile(m)
                        g[ext] = f.read() if f else b""
            for g in groups.values():
                if "img" not in g:
                    continue
                caps = []
                if ".json" in g:
                    try:
                        meta = json.loads(g[".json"].decode("utf-8", "replace"))
                        c = meta.get("captions") or meta.get("caption") or []
                        caps = [c] if isinstance(c, str) else list(c)
                    except json.JSONDecodeError:
                        caps = []
                if not caps and ".txt" in g:
                    caps = [g[".txt"].decode("utf-8", "replace").strip()]
                caps = caps or [""]
                i = len(self.index)
                self.index.append((s, *g["img"]))
                self.captions.extend(caps)
                iot.extend([i] * len(caps))
        if not self.index:
            raise DataError(f"no image samples found in {pattern}")
        self.image_of_text = np.asarray(iot, dtype=np.int64)

    @property
    def n_images(self) -> int:
        return len(self.index)

    def load_image(self, i: int) -> Image.Image:
        shard, off, size = self.index[i]
        with open(shard, "rb") as fh:
            fh.seek(off)
            return _open_rgb(fh.read(size))

    def _content_token(self) -> str:
        return ";".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in self.shards)


# --------------------------------------------------------------------------- the spec


def open_data(spec: str, skip_missing: bool = False) -> ImageTextData:
    """Parse a data SPEC (see the module docstring) into a dataset."""
    spec = str(spec).strip()
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        from .synthetic import synthetic_from_spec

        return synthetic_from_spec(rest)
    if kind == "csv":
        path, *opts = rest.split(":")
        return load_csv(path, skip_missing=skip_missing or "skip-missing" in opts)
    if kind == "karpathy":
        parts = rest.split(":")
        if len(parts) < 2:
            raise DataError("karpathy spec is karpathy:JSON:IMAGE_ROOT[:split]")
        split = parts[2] if len(parts) > 2 else "test"
        return load_karpathy(parts[0], parts[1], split, skip_missing=skip_missing)
    if kind == "wds":
        return WebDatasetData(rest)
    raise DataError(
        f"unknown data spec {spec!r}; use synthetic[:k=v,...], csv:PATH, "
        "karpathy:JSON:IMAGE_ROOT[:split] or wds:SHARDS"
    )


@dataclasses.dataclass
class ImageDataset:
    """torch Dataset over a data's images with a transform: yields (index, image tensor)."""

    data: ImageTextData
    transform: object

    def __len__(self) -> int:
        return self.data.n_images

    def __getitem__(self, i):
        return i, self.transform(self.data.load_image(i))
