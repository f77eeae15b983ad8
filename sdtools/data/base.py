"""Base types of image-text datasets: :class:`ImageTextData`, :class:`Subset`, image files.

Every dataset is an :class:`ImageTextData`: ``n_images`` images, ``captions`` (all captions,
flat), ``image_of_text`` (caption -> image index) and ``load_image(i)`` (a PIL RGB image), plus
optional ``domains`` (per-image domain label).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

__all__ = ["DataError", "ImageTextData", "Subset", "ConcatData", "FileImageData", "ImageDataset",
           "open_rgb", "loader_workers", "from_workers"]


class ImageTextData:
    """Base: subclasses set ``captions``, ``image_of_text`` and implement ``load_image``."""

    spec: str = ""
    captions: list[str]
    image_of_text: np.ndarray
    domains: np.ndarray | None = None
    in_memory: bool = False  # images are held decoded (no file to read): no loader workers needed
    skipped: int = 0  # images left out because their file is missing
    no_caption: int = 0  # images left out because they have no (non-empty) caption

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

    def item_names(self) -> list[str]:
        """One identity per image, in order (a file path, a shard member's key); the position
        for data that a spec fully determines (the synthetic stream)."""
        return [f"#{i}" for i in range(self.n_images)]

    def item_contents(self) -> list[str] | None:
        """A digest of each image's bytes, in order (images read from files); None where the
        spec determines the images (the synthetic stream) or reading them all would cost a
        pass over the data (webdataset shards, whose cache token is cheaper)."""
        return None

    def probe_id(self, content: bool = True) -> dict:
        """What makes two embeddings comparable item by item: hashes of the images' identities
        in order and as a set, of the captions with their image in order and as a set, and
        (``content``, for image files) of the images' bytes in order, so that a file replaced
        under the same name is another probe."""
        names = self.item_names()
        caps = [f"{self.image_of_text[j]}\0{c}" for j, c in enumerate(self.captions)]
        out = {"n_images": self.n_images, "n_texts": len(self.captions),
               "images": _digest(names), "images_set": _digest(sorted(names)),
               "captions": _digest(caps), "captions_set": _digest(sorted(self.captions))}
        contents = self.item_contents() if content else None
        if contents is not None:
            out["content"] = _digest(contents)
        return out

    def captions_of(self, i: int) -> list[str]:
        return [self.captions[j] for j in np.flatnonzero(self.image_of_text == i)]

    def class_labels(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Classification tasks the data carries: ``{task: (class names, label per image)}``
        (the synthetic stream's shapes and colours; ``"class"`` for labelled sets, see
        :mod:`sdtools.data.labels`; none for captioned files)."""
        return {}

    def class_templates(self, task: str) -> tuple[str, ...]:
        """The prompt templates of a classification task (``{c}`` is the class name)."""
        return ("a photo of a {c}.",)

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

    @property
    def in_memory(self) -> bool:  # type: ignore[override]  # read from the parts, never set
        return self.base.in_memory

    def load_image(self, i: int) -> Image.Image:
        return self.base.load_image(int(self.images[i]))

    def _content_token(self) -> str:
        return self.base._content_token()

    def item_names(self) -> list[str]:
        names = self.base.item_names()
        return [names[i] for i in self.images]

    def item_contents(self):
        contents = self.base.item_contents()
        return None if contents is None else [contents[i] for i in self.images]

    def class_labels(self):
        return {k: (c, y[self.images]) for k, (c, y) in self.base.class_labels().items()}

    def class_templates(self, task: str) -> tuple[str, ...]:
        return self.base.class_templates(task)


class ConcatData(ImageTextData):
    """Several datasets as one (joint training, a run's probe); domains label the source part.

    Its ``spec`` joins the parts' specs with ``+``, as a run's probe embeddings name their data.
    """

    def __init__(self, parts: list[ImageTextData]):
        if not parts:
            raise DataError("nothing to concatenate")
        self.parts = parts
        self.offsets = np.cumsum([0] + [p.n_images for p in parts])
        self.captions, iot = [], []
        for k, p in enumerate(parts):
            self.captions.extend(p.captions)
            iot.append(np.asarray(p.image_of_text) + self.offsets[k])
        self.image_of_text = np.concatenate(iot)
        self.domains = np.concatenate([np.full(p.n_images, k) for k, p in enumerate(parts)])
        self.spec = "+".join(p.spec for p in parts)

    @property
    def n_images(self) -> int:
        return int(self.offsets[-1])

    @property
    def in_memory(self) -> bool:  # type: ignore[override]  # read from the parts, never set
        return all(p.in_memory for p in self.parts)

    def load_image(self, i: int):
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[k].load_image(i - int(self.offsets[k]))

    def _content_token(self) -> str:
        return ";".join(p._content_token() for p in self.parts)

    def item_names(self) -> list[str]:
        return [f"{k}:{name}" for k, p in enumerate(self.parts) for name in p.item_names()]

    def item_contents(self):
        parts = [p.item_contents() for p in self.parts]
        if any(c is None for c in parts):
            return None
        return [c for part in parts for c in part]


def _digest(items) -> str:
    h = hashlib.sha256()
    for x in items:
        h.update(x.encode("utf-8", "replace") + b"\1")
    return h.hexdigest()[:16]


def open_rgb(path_or_bytes) -> Image.Image:
    """Open an image as RGB (grayscale, palette and RGBA are converted; alpha over white)."""
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        im.load()
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            return Image.alpha_composite(bg, im).convert("RGB")
        return im.convert("RGB")


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
        captions = [[c for c in caps if c] for caps in captions]
        uncaptioned = {i for i, caps in enumerate(captions) if not caps}
        keep = sorted(set(range(len(paths))) - set(missing) - uncaptioned)
        self.skipped = len(set(missing) - uncaptioned)
        self.no_caption = len(uncaptioned)
        self.paths = [paths[i] for i in keep]
        self.captions = []
        iot = []
        for new, old in enumerate(keep):
            caps = captions[old]
            self.captions.extend(caps)
            iot.extend([new] * len(caps))
        self.image_of_text = np.asarray(iot, dtype=np.int64)
        self.domains = None if domains is None else np.asarray([domains[i] for i in keep])
        if not self.paths:
            raise DataError(f"{spec}: no images left to use ({self.skipped} missing, "
                            f"{self.no_caption} without a caption)")

    @property
    def n_images(self) -> int:
        return len(self.paths)

    def load_image(self, i: int) -> Image.Image:
        p = self.paths[i]
        try:
            return open_rgb(p)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read image {p} ({exc}); remove or replace it") from None

    def item_names(self) -> list[str]:
        return [str(p) for p in self.paths]

    def item_contents(self) -> list[str]:
        """SHA-256 (first 16 hex digits) of each image file's bytes, read once per dataset."""
        if getattr(self, "_contents", None) is None:
            self._contents = [_file_digest(p) for p in self.paths]
        return self._contents

    def _content_token(self) -> str:
        return files_token(self.paths)


def files_token(paths) -> str:
    """The embedding cache's token of files' content, without reading them: path, inode,
    size, modification and status-change times (ns). A file rewritten in place or replaced
    by another changes its status-change time, which no tool can set back (restoring the
    size and the modification time does not restore it); a copy elsewhere is a cache miss."""
    h = hashlib.sha256()
    for p in paths:
        st = Path(p).stat()
        h.update(f"{p}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}".encode())
    return h.hexdigest()


def _file_digest(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    except OSError as exc:
        raise DataError(f"cannot read image {path} ({exc.strerror or exc}); remove or replace "
                        "it") from None
    return h.hexdigest()[:16]


def loader_workers(requested: int | None, data, world: int = 1) -> int:
    """DataLoader workers: ``requested``, else none for data held in memory, else the cores
    per process less one (at most 8)."""
    import os

    if requested is not None:
        return requested
    if getattr(data, "in_memory", False):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(8, (cores or 1) // max(world, 1) - 1))


def from_workers(loader):
    """Iterate a DataLoader; a user-facing error raised in a worker process comes back as the
    same one-line error (torch re-raises it with the worker's traceback in its message)."""
    from ..errors import UserError

    try:
        yield from loader
    except UserError as exc:
        text = str(exc)
        if "DataLoader worker" not in text:
            raise
        last = text.strip().splitlines()[-1]
        raise type(exc)(last.split(": ", 1)[1] if ": " in last else last) from None


@dataclasses.dataclass
class ImageDataset:
    """torch Dataset over a data's images with a transform: yields (index, image tensor)."""

    data: ImageTextData
    transform: object

    def __len__(self) -> int:
        return self.data.n_images

    def __getitem__(self, i):
        return i, self.transform(self.data.load_image(i))
