"""Datasets of image files: open_clip's CSV convention and Karpathy-split JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import DataError
from ..io import check_regular_input
from .base import FileImageData

KARPATHY_SPLITS = ("train", "restval", "val", "test")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")  # keep going; odd bytes become U+FFFD


def resolve_image_path(written: str, csv_dir: Path) -> Path:
    """Where an image path from a CSV opens: as written (absolute, or relative to the working
    directory, as open_clip opens it) when that file exists, else relative to the CSV's folder."""
    p = Path(written)
    if p.is_absolute():
        return p
    if p.is_file():
        return p.absolute()
    beside = (csv_dir / p).absolute()
    return beside if beside.is_file() else p.absolute()


def _csv_rows(path: Path, sep: str | None, keys) -> tuple[list[dict], str]:
    """The rows of a CSV file (dicts by column) and its separator; ``keys``: (column, option)
    pairs that must be present."""
    if path.is_dir():
        raise DataError(f"{path} is a folder; csv: takes a CSV file (csv:FOLDER/captions.csv)")
    check_regular_input(path, "CSV file", DataError)
    if not path.is_file():
        raise DataError(f"CSV file not found: {path}")
    text = _read_text(path)
    header = text.splitlines()[0] if text else ""
    names = {"tab": "\t", "comma": ",", "\\t": "\t"}
    delim = names.get(sep, sep) if sep else ("\t" if "\t" in header else ",")
    if len(delim) != 1:
        raise DataError(f"separator {sep!r} must be one character, tab or comma")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=delim))
    if not rows:
        raise DataError(f"{path} has no data rows")
    cols = set(rows[0])
    for key, opt in keys:
        if key not in cols:
            raise DataError(f"{path} has no column {key!r} (columns: {sorted(cols)}); name the "
                            f"column with csv:{path}:{opt}=COLUMN")
    return rows, delim


def load_labelled_csv(path, label_key: str, img_key: str = "filepath", classnames=None,
                      templates=None, sep: str | None = None, skip_missing: bool = False,
                      cap: int | None = None, spec: str | None = None):
    """open_clip's CSV convention with a class label column (``label_key``): one row per
    image; a label is a class index (into ``classnames``) or a class name. ``cap``: the first
    that many images of each class."""
    from .labels import SIMPLE_TEMPLATES, LabelledFiles, resolve_labels

    path = Path(path)
    rows, _ = _csv_rows(path, sep, ((img_key, "img-key"), (label_key, "label-key")))
    seen: dict[str, str] = {}
    for n, r in enumerate(rows):
        key, label = (r[img_key] or "").strip(), (r[label_key] or "").strip()
        if key in seen and seen[key] != label:
            raise DataError(f"{path}: image {key} has two labels ({seen[key]!r} and {label!r}, "
                            f"row {n + 2}); a labelled CSV gives each image one class")
        seen[key] = label
    names, y = resolve_labels(list(seen.values()), classnames, str(path))
    paths = [resolve_image_path(k, path.parent) for k in seen]
    return LabelledFiles(spec or f"csv:{path}:label-key={label_key}", paths, y, names,
                         templates or SIMPLE_TEMPLATES, skip_missing, cap)


def load_csv(path, img_key: str = "filepath", caption_key: str = "title",
             domain_key: str | None = None, skip_missing: bool = False,
             sep: str | None = None) -> FileImageData:
    """open_clip's CSV convention; rows sharing an image path are one image with many captions.

    ``sep``: ``tab``/``comma`` (or the character); by default guessed from the header (a tab
    in it means tab-separated). Image paths open as written (absolute or relative to the
    working directory, as open_clip opens them), with the CSV's folder as a fallback.
    ``domain_key`` (default: a ``domain`` or ``phase`` column when present) labels images.
    """
    path = Path(path)
    rows, delim = _csv_rows(path, sep, ((img_key, "img-key"), (caption_key, "caption-key")))
    cols = set(rows[0])
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
    paths = [resolve_image_path(k, path.parent) for k in order]
    spec = "csv:" + str(path).replace(":", "\\:")  # a ':' in the path, escaped
    if (img_key, caption_key) != ("filepath", "title") or sep:
        opts = [f"img-key={img_key}", f"caption-key={caption_key}"]
        if sep:
            opts.append(f"sep={'tab' if delim == chr(9) else sep}")
        spec += ":" + ",".join(opts)
    return FileImageData(spec, paths, caps, doms if domain_key else None, skip_missing)


def _karpathy_images(json_path: Path) -> list:
    try:
        data = json.loads(_read_text(json_path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{json_path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                        "give a Karpathy split file (dataset_coco.json)") from None
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        raise DataError(f"{json_path} is a COCO captions file (images + annotations); karpathy: "
                        "expects a Karpathy split file (dataset_coco.json: images with "
                        "filename, split and sentences)")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{json_path} has no 'images' list; karpathy: expects a Karpathy split "
                        "file (dataset_coco.json, dataset_flickr30k.json)")
    return data["images"]


def load_karpathy(json_path, image_root, split: str | None = "test",
                  skip_missing: bool = False) -> FileImageData:
    """Karpathy-split JSON (``dataset_coco.json``, ``dataset_flickr30k.json``).

    ``split``: ``train`` (with COCO's ``restval``, as Karpathy's split intends), ``restval``
    alone, ``val``, ``test``, several joined with ``+`` (``train+val`` is the official Mod-X
    Flickr30K training set: 29,000 + 1,014 images), or ``all``.
    """
    json_path = Path(json_path)
    check_regular_input(json_path, "Karpathy JSON", DataError)
    if not json_path.is_file():
        raise DataError(f"Karpathy JSON not found: {json_path}")
    split = split or "all"
    named = set(KARPATHY_SPLITS) if split == "all" else set(split.split("+"))
    unknown = sorted(named - set(KARPATHY_SPLITS))
    if unknown:
        raise DataError(f"unknown split {unknown[0]!r}; use train, restval, val, test, several "
                        "joined with + (train+val) or all")
    wanted = named | ({"restval"} if "train" in named else set())
    root = Path(image_root)
    paths, caps = [], []
    for n, img in enumerate(_karpathy_images(json_path)):
        if not isinstance(img, dict) or not isinstance(img.get("filename"), str):
            raise DataError(f"{json_path}: image {n} has no 'filename' string; is it a Karpathy "
                            "split file?")
        if img.get("split") not in wanted:
            continue
        sents = img.get("sentences", [])
        if not isinstance(sents, list) or not all(isinstance(s, dict) for s in sents):
            raise DataError(f"{json_path}: image {n} ({img['filename']}) has 'sentences' that "
                            "are not a list of objects with 'raw' or 'tokens'")
        rel = Path(str(img.get("filepath", ""))) / img["filename"]
        paths.append(root / rel)
        caps.append([str(s.get("raw", " ".join(map(str, s.get("tokens", []))))).strip()
                     for s in sents])
    if not paths:
        raise DataError(f"{json_path} has no images in split {split!r}")
    def esc(p):
        return str(p).replace(":", "\\:")

    return FileImageData(f"karpathy:{esc(json_path)}:{esc(root)}:{split}", paths, caps, None,
                         skip_missing)
