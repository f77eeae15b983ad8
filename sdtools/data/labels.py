"""Labelled image sets: class names, prompt templates, labels, and the ImageFolder layout.

A labelled set is an :class:`~sdtools.data.base.ImageTextData` whose ``class_labels()`` holds
one task, ``"class"``, and whose ``class_templates("class")`` holds its prompt templates. Its
captions are made from its labels (one per image: the first template with the image's class
name), so that a labelled set can also stand where an image-text probe is expected.

Class names and templates are read in the formats CLIP_benchmark writes them:
``classnames=FILE`` is a JSON list, a JSON object of one list per dataset (the list of the
set's name, or the only one) or a text file with one name per line; ``templates=FILE`` is a
JSON list or such an object, or a built-in set: ``openai`` (OpenAI's 80 ImageNet prompts) or
``simple`` (``a photo of a {c}.``, the default). A template names the class as ``{c}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import FileImageData

TASK = "class"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

SIMPLE_TEMPLATES = ("a photo of a {c}.",)
# OpenAI's 80 prompt templates for ImageNet zero-shot classification (CLIP, 2021)
OPENAI_IMAGENET_TEMPLATES = (
    "a bad photo of a {c}.", "a photo of many {c}.", "a sculpture of a {c}.",
    "a photo of the hard to see {c}.", "a low resolution photo of the {c}.",
    "a rendering of a {c}.", "graffiti of a {c}.", "a bad photo of the {c}.",
    "a cropped photo of the {c}.", "a tattoo of a {c}.", "the embroidered {c}.",
    "a photo of a hard to see {c}.", "a bright photo of a {c}.", "a photo of a clean {c}.",
    "a photo of a dirty {c}.", "a dark photo of the {c}.", "a drawing of a {c}.",
    "a photo of my {c}.", "the plastic {c}.", "a photo of the cool {c}.",
    "a close-up photo of a {c}.", "a black and white photo of the {c}.",
    "a painting of the {c}.", "a painting of a {c}.", "a pixelated photo of the {c}.",
    "a sculpture of the {c}.", "a bright photo of the {c}.", "a cropped photo of a {c}.",
    "a plastic {c}.", "a photo of the dirty {c}.", "a jpeg corrupted photo of a {c}.",
    "a blurry photo of the {c}.", "a photo of the {c}.", "a good photo of the {c}.",
    "a rendering of the {c}.", "a {c} in a video game.", "a photo of one {c}.",
    "a doodle of a {c}.", "a close-up photo of the {c}.", "a photo of a {c}.",
    "the origami {c}.", "the {c} in a video game.", "a sketch of a {c}.",
    "a doodle of the {c}.", "a origami {c}.", "a low resolution photo of a {c}.",
    "the toy {c}.", "a rendition of the {c}.", "a photo of the clean {c}.",
    "a photo of a large {c}.", "a rendition of a {c}.", "a photo of a nice {c}.",
    "a photo of a weird {c}.", "a blurry photo of a {c}.", "a cartoon {c}.",
    "art of a {c}.", "a sketch of the {c}.", "a embroidered {c}.",
    "a pixelated photo of a {c}.", "itap of the {c}.", "a jpeg corrupted photo of the {c}.",
    "a good photo of a {c}.", "a plushie {c}.", "a photo of the nice {c}.",
    "a photo of the small {c}.", "a photo of the weird {c}.", "the cartoon {c}.",
    "art of the {c}.", "a drawing of the {c}.", "a photo of the large {c}.",
    "a black and white photo of a {c}.", "the plushie {c}.", "a dark photo of a {c}.",
    "itap of a {c}.", "graffiti of the {c}.", "a toy {c}.", "itap of my {c}.",
    "a photo of a cool {c}.", "a photo of a small {c}.", "a tattoo of the {c}.",
)
BUILTIN_TEMPLATES = {"simple": SIMPLE_TEMPLATES, "openai": OPENAI_IMAGENET_TEMPLATES}


def check_templates(templates, where: str) -> tuple[str, ...]:
    """Templates as a tuple of strings, each naming the class once or more as ``{c}`` and no
    other field (``{}`` or ``{name}`` would fail when filled)."""
    if isinstance(templates, str) or not templates:
        raise DataError(f"{where}: expected a non-empty list of prompt templates")
    out = []
    for t in templates:
        if not isinstance(t, str):
            raise DataError(f"{where}: template {t!r} is not a string")
        try:
            filled = t.format(c="\0")
        except (KeyError, IndexError, ValueError) as exc:
            raise DataError(f"{where}: template {t!r} cannot be filled ({type(exc).__name__}: "
                            f"{exc}); name the class as {{c}} and write a literal brace as "
                            "{{ or }}") from None
        if "\0" not in filled:
            raise DataError(f"{where}: template {t!r} does not name the class; write {{c}} "
                            "where the class name goes (a photo of a {c}.)")
        out.append(t)
    return tuple(out)


def _json_list(path: Path, what: str, pick: str | None):
    """A JSON list, or the list under ``pick`` (or the only list) of a JSON object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); give a JSON list of {what}, or "
                        "one per line in a file not named .json") from None
    if isinstance(obj, dict):
        lists = {k: v for k, v in obj.items() if isinstance(v, list)}
        if pick is not None and pick in lists:
            return lists[pick]
        if len(lists) == 1 and len(obj) == 1:
            return next(iter(lists.values()))
        keys = ", ".join(sorted(obj)[:8])
        raise DataError(f"{path} holds {what} for several sets ({keys}); name one with "
                        f"FILE#KEY")
    if not isinstance(obj, list):
        raise DataError(f"{path} holds a JSON {type(obj).__name__}; expected a list of {what}")
    return obj


def _file_and_key(value: str) -> tuple[Path, str | None]:
    path, _, key = value.partition("#")
    return Path(path), key or None


def read_classnames(value: str, pick: str | None = None) -> tuple[str, ...]:
    """Class names from ``FILE`` (``.json``: a list, or CLIP_benchmark's object of one list
    per dataset, ``FILE#KEY`` naming the list; else one name per line)."""
    path, key = _file_and_key(value)
    if not path.is_file():
        raise DataError(f"classnames file not found: {path}")
    if path.suffix.lower() == ".json":
        names = _json_list(path, "class names", key or pick)
    else:
        names = _lines(path)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise DataError(f"{path}: class names must be non-empty strings")
    names = [n.strip() for n in names]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: class name {dup!r} appears twice; each class needs its own")
    return tuple(names)


def _lines(path: Path) -> list[str]:
    """The non-empty lines of a text file, stripped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file; give one entry per line") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def read_templates(value: str | None, pick: str | None = None) -> tuple[str, ...]:
    """Templates from a built-in name (``simple``, ``openai``) or ``FILE`` (``.json``: a list,
    or CLIP_benchmark's object of one list per dataset, ``FILE#KEY`` naming the list; else one
    template per line)."""
    if value is None:
        return SIMPLE_TEMPLATES
    if value in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[value]
    path, key = _file_and_key(value)
    if not path.is_file():
        raise DataError(f"templates={value}: no such file and not a built-in set (use "
                        f"{', '.join(BUILTIN_TEMPLATES)}, a JSON file or one template a line)")
    if path.suffix.lower() != ".json":
        return check_templates(_lines(path), str(path))
    return check_templates(_json_list(path, "templates", key or pick), str(path))


def resolve_labels(raw: list[str], classnames: tuple[str, ...] | None,
                   where: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and an index per item from the labels as written.

    Whole numbers index the class names (``classnames`` when given, else ``0..max``); other
    labels are class names themselves (those of ``classnames`` when given, else the labels
    sorted). Every class must have at least one item.
    """
    raw = [str(r).strip() for r in raw]
    empty = [i for i, r in enumerate(raw) if not r]
    if empty:
        raise DataError(f"{where}: item {empty[0]} has an empty label; every image needs one")
    numeric = all(r.lstrip("-").isdigit() for r in raw)
    if numeric:
        y = np.asarray([int(r) for r in raw], dtype=np.int64)
        n = len(classnames) if classnames is not None else int(y.max()) + 1
        bad = np.flatnonzero((y < 0) | (y >= n))
        if bad.size:
            hint = (f"the classnames file names {n} classes" if classnames is not None
                    else "labels are class indices from 0")
            raise DataError(f"{where}: label {raw[bad[0]]} (item {bad[0]}) is outside "
                            f"0..{n - 1}; {hint}")
        names = classnames if classnames is not None else tuple(str(k) for k in range(n))
    else:
        names = classnames if classnames is not None else tuple(sorted(set(raw)))
        index = {c: k for k, c in enumerate(names)}
        unknown = [r for r in raw if r not in index]
        if unknown:
            raise DataError(f"{where}: label {unknown[0]!r} is not a class name of the "
                            f"classnames file (first names: {list(names[:5])})")
        y = np.asarray([index[r] for r in raw], dtype=np.int64)
    check_every_class(names, y, where)
    return tuple(names), y


def check_every_class(names, y: np.ndarray, where: str) -> None:
    counts = np.bincount(y, minlength=len(names))
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise DataError(f"{where}: class {names[empty[0]]!r} has no image ({empty.size} of "
                        f"{len(names)} classes have none); give each class an image or drop "
                        "it from the class names")


def per_class_cap(y: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of the first ``n`` items of each class, in their order (all when None)."""
    if n is None:
        return np.arange(len(y))
    seen = np.zeros(int(y.max()) + 1 if len(y) else 0, dtype=np.int64)
    keep = []
    for i, c in enumerate(y):
        if seen[c] < n:
            seen[c] += 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


class LabelledFiles(FileImageData):
    """Image files with one class each (an ImageFolder or a CSV with a label column).

    ``labels`` are indices into ``classnames``; ``templates`` are the prompt templates. The
    captions are the first template filled with each image's class name.
    """

    def __init__(self, spec: str, paths: list[Path], labels: np.ndarray, classnames,
                 templates, skip_missing: bool = False, cap: int | None = None):
        templates = check_templates(templates, spec)
        keep = per_class_cap(labels, cap)
        paths = [paths[i] for i in keep]
        labels = labels[keep]
        caps = [[templates[0].format(c=classnames[c])] for c in labels]
        super().__init__(spec, paths, caps, None, skip_missing)
        where = {p: i for i, p in enumerate(paths)}
        self.labels = labels[[where[p] for p in self.paths]]
        self.classnames = tuple(classnames)
        self.templates = templates
        check_every_class(self.classnames, self.labels, spec)

    def class_labels(self):
        return {TASK: (self.classnames, self.labels)}

    def class_templates(self, task: str) -> tuple[str, ...]:
        return self.templates


def _image_files(folder: Path) -> list[Path]:
    """Image files under a class folder in torchvision's order: the folder and its subfolders
    walked in sorted order (symlinks followed), each one's files sorted."""
    import os

    out: list[Path] = []
    for here, _, names in sorted(os.walk(folder, followlinks=True)):
        out.extend(Path(here) / n for n in sorted(names)
                   if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES)
    return out


def image_folder(root, classnames=None, templates=SIMPLE_TEMPLATES, cap: int | None = None,
                 skip_missing: bool = False, spec: str | None = None) -> LabelledFiles:
    """torchvision's ImageFolder layout: ``ROOT/CLASS/IMAGE``, classes in sorted folder order
    (their index is the label), images with an image suffix in torchvision's order (subfolders
    of a class folder included). Hidden folders (``.ipynb_checkpoints``) are not classes.

    ``classnames``: display names in the folders' order (default: the folder names, with
    ``_`` read as a space).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"imagefolder:{root}: no such folder (expected ROOT/CLASS/IMAGE files)")
    folders = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise DataError(f"imagefolder:{root}: no class folder in it (expected ROOT/CLASS/IMAGE)")
    if classnames is not None and len(classnames) != len(folders):
        raise DataError(f"imagefolder:{root}: {len(folders)} class folders but the classnames "
                        f"file names {len(classnames)} classes; give one name per folder, in "
                        "sorted folder order")
    names = classnames or tuple(f.replace("_", " ") for f in folders)
    paths, labels = [], []
    for k, f in enumerate(folders):
        files = _image_files(root / f)
        if not files:
            raise DataError(f"imagefolder:{root}: class {f!r} has no image (files ending in "
                            f"{', '.join(IMAGE_SUFFIXES[:4])}, ...)")
        paths.extend(files)
        labels.extend([k] * len(files))
    return LabelledFiles(spec or f"imagefolder:{root}", paths, np.asarray(labels, np.int64),
                         names, templates, skip_missing, cap)
