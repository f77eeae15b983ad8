"""The data SPEC grammar, parsed here only: one table from prefix to loader.

    synthetic[:k=v,...]                         the built-in synthetic stream (SyntheticConfig)
    csv:PATH[:opt,...]                          open_clip CSV; options skip-missing,
                                                img-key=COL, caption-key=COL, sep=tab|comma,
                                                n=N (a ':' in PATH is written \\:)
    karpathy:JSON:IMAGE_ROOT[:SPLIT[+SPLIT]][:n=N]  dataset_coco.json / dataset_flickr30k.json
                                                (a ':' in a path is written \\:)
    wds:SHARDS[:caption-key=txt;caption,n=N]    webdataset tar shards ({000..009} and ::)
    imagefolder:ROOT[:opt,...]                  torchvision's ImageFolder (ROOT/CLASS/IMAGE)
    run:RUN_DIR                                 a modx run's own probe (its evaluation sets)

Labelled sets (image classification): ``imagefolder:ROOT``, ``csv:PATH:label-key=COL`` (one
row per image, the label a class index or name) and ``wds:SHARDS:label-key=cls`` (the ``cls``
member of each sample). Their options: ``classnames=FILE`` (a JSON list, CLIP_benchmark's
classnames JSON with ``FILE#KEY`` naming the set, or one name per line), ``templates=FILE``
(CLIP_benchmark's templates JSON) or ``templates=openai`` (OpenAI's 80 ImageNet prompts) or
``templates=simple`` (``a photo of a {c}.``, the default), ``n=N`` (the first N images of
each class), ``skip-missing`` (files only). See :mod:`sdtools.data.labels`.

``n=N`` caps a probe at its first N images (in the file's order, with all their captions;
``synthetic`` has its own ``n``); webdataset shards after them are not read. A spec names a
dataset completely, so the string that opened a dataset (``data.spec``) can be passed back to
``--data``.
"""

from __future__ import annotations

import dataclasses

from ..errors import DataError
from .base import ImageTextData

USAGE = ("use synthetic[:k=v,...], csv:PATH[:options], karpathy:JSON:IMAGE_ROOT[:split], "
         "wds:SHARDS, imagefolder:ROOT or run:RUN_DIR")
LABEL_OPTIONS = ("label-key", "classnames", "templates")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A parsed spec: ``kind`` (the prefix), positional ``args`` and ``key=value`` options."""

    kind: str
    text: str
    args: tuple[str, ...]
    options: dict

    @property
    def name(self) -> str:
        """A short display name: the file's stem (and split) for files, the spec otherwise."""
        from pathlib import Path

        if self.kind in ("csv", "karpathy"):
            split = self.options.get("split")
            return Path(self.args[0]).stem + (f":{split}" if split else "")
        if self.kind == "imagefolder":
            return Path(self.args[0]).name or self.args[0]
        return self.text

    @property
    def labelled(self) -> bool:
        """Whether the spec names an image-classification set (its ``n`` counts per class)."""
        return self.kind == "imagefolder" or "label-key" in self.options


def display_names(specs) -> list[str]:
    """Short names for several data SPECs, distinct from each other: the file stem, then its
    parent folder where two stems collide (``a/good``, ``b/good``), then a count."""
    from pathlib import Path

    parsed = [parse_spec(s) for s in specs]
    stems = [p.name for p in parsed]
    names = [f"{Path(p.args[0]).parent.name or '.'}/{p.name}"
             if stems.count(p.name) > 1 and p.kind in ("csv", "karpathy", "imagefolder")
             else p.name
             for p in parsed]
    out: list[str] = []
    for n in names:
        k = out.count(n) + sum(1 for o in out if o.startswith(n + "#"))
        out.append(n if k == 0 else f"{n}#{k + 1}")
    return out


def _options(items: list[str], flags: tuple[str, ...], keys: tuple[str, ...], spec: str) -> dict:
    out: dict = {}
    for item in filter(None, (x.strip() for x in items)):
        key, eq, val = item.partition("=")
        if key in out:
            raise DataError(f"{spec}: option {key!r} is given twice; give it once")
        if not eq and key in flags:
            out[key] = True
        elif eq and key in keys:
            out[key] = val
        else:
            valid = ", ".join([*flags, *(f"{k}=..." for k in keys)])
            raise DataError(f"{spec}: unknown option {item!r}; valid: {valid}")
    return out


def parse_spec(spec) -> DataSpec:
    """Split a SPEC into its kind, arguments and options (no file is opened)."""
    text = str(spec).strip()
    kind, colon, rest = text.partition(":")
    if kind == "synthetic":
        return DataSpec(kind, text, (rest,), {})
    if kind == "csv" and colon:
        path, opts = _csv_path(rest)
        o = _options(",".join(opts).split(","), ("skip-missing",),
                     ("img-key", "caption-key", "sep", "n", *LABEL_OPTIONS), text)
        _check_label_options(o, text)
        return DataSpec(kind, text, (path,), o)
    if kind == "imagefolder" and colon:
        path, opts = _csv_path(rest, folder=True)
        if not path:
            raise DataError(f"{text}: name the folder, e.g. imagefolder:data/val")
        o = _options(",".join(opts).split(","), ("skip-missing",),
                     ("n", "classnames", "templates"), text)
        return DataSpec(kind, text, (path,), o)
    if kind == "karpathy" and colon:
        # a colon inside a path is escaped with a backslash (as for csv:)
        parts = [x.replace("\0", ":") for x in rest.replace("\\:", "\0").split(":")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise DataError(f"{text}: a karpathy spec is karpathy:JSON:IMAGE_ROOT[:split] (a ':' "
                            "inside a path is written \\:)")
        o = {"split": parts[2] if len(parts) > 2 and parts[2] else "test"}
        o.update(_options(parts[3:], ("skip-missing",), ("n",), text))
        return DataSpec(kind, text, (parts[0], parts[1]), o)
    if kind == "wds" and colon:
        shards, wopts = rest, {}
        # options follow the last ':' only when it holds key=value (shard lists use '::')
        head, sep, tail = rest.rpartition(":")
        keys = ("caption-key", "n", *LABEL_OPTIONS)
        if sep and "=" in tail and ("/" not in tail or all(
                x.partition("=")[0].strip() in keys for x in tail.split(",") if x.strip())):
            shards, wopts = head, _options(tail.split(","), (), keys, text)
            _check_label_options(wopts, text)
        if not shards:
            raise DataError(f"{text}: name the shards, e.g. wds:data/{{000..009}}.tar")
        return DataSpec(kind, text, (shards,), wopts)
    if kind == "run" and colon and rest:
        return DataSpec(kind, text, (rest,), {})
    raise DataError(f"unknown data spec {text!r}; {USAGE}")


def _cap(p: DataSpec) -> int | None:
    """The ``n=N`` option as a positive integer (None when absent)."""
    if "n" not in p.options:
        return None
    v = p.options["n"]
    if not v.isdigit() or int(v) < 1:
        raise DataError(f"{p.text}: n={v} must be a positive whole number of images")
    return int(v)


def _check_label_options(o: dict, text: str) -> None:
    if ("classnames" in o or "templates" in o) and "label-key" not in o:
        raise DataError(f"{text}: classnames= and templates= describe labels; name the label "
                        "column or member with label-key=COL (csv) or label-key=cls (wds)")


def _label_files(p: DataSpec):
    """``(classnames or None, templates)`` of a labelled spec's options."""
    from .labels import read_classnames, read_templates

    names = p.options.get("classnames")
    return (read_classnames(names, p.name) if names else None,
            read_templates(p.options.get("templates"), p.name))


def _capped(data: ImageTextData, p: DataSpec) -> ImageTextData:
    """The first ``n`` images of a dataset with all their captions, named by the spec."""
    n = _cap(p)
    if n is None or n >= data.n_images:
        return data
    import numpy as np

    from .base import Subset

    out = Subset(data, np.arange(n))
    out.spec = p.text
    return out


def _csv_path(rest: str, folder: bool = False) -> tuple[str, list[str]]:
    """A CSV path (or a folder's) and its options. A ':' inside the path is written ``\\:``;
    a path that names an existing file (folder) whole is taken whole (its ':' are part of it)."""
    from pathlib import Path

    exists = Path(rest).is_dir() if folder else Path(rest).is_file()
    if "\\:" not in rest and ":" in rest and exists:
        return rest, []
    parts = [p.replace("\0", ":") for p in rest.replace("\\:", "\0").split(":")]
    return parts[0], parts[1:]


def synthetic_of(spec):
    """``(SyntheticConfig, domains, split, n)`` of a synthetic spec, or None for other kinds."""
    p = parse_spec(spec)
    if p.kind != "synthetic":
        return None
    from .synthetic import parse_synthetic_spec

    return parse_synthetic_spec(p.args[0])


def _open_synthetic(p: DataSpec, skip_missing: bool) -> ImageTextData:
    from .synthetic import synthetic_from_spec

    return synthetic_from_spec(p.args[0])


def _open_csv(p: DataSpec, skip_missing: bool) -> ImageTextData:
    from .files import load_csv, load_labelled_csv

    o = p.options
    if p.labelled:
        names, templates = _label_files(p)
        return load_labelled_csv(p.args[0], o["label-key"], img_key=o.get("img-key", "filepath"),
                                 classnames=names, templates=templates, sep=o.get("sep"),
                                 skip_missing=skip_missing or bool(o.get("skip-missing")),
                                 cap=_cap(p), spec=p.text)
    return load_csv(p.args[0], img_key=o.get("img-key", "filepath"),
                    caption_key=o.get("caption-key", "title"), sep=o.get("sep"),
                    skip_missing=skip_missing or bool(o.get("skip-missing")))


def _open_karpathy(p: DataSpec, skip_missing: bool) -> ImageTextData:
    from .files import load_karpathy

    return load_karpathy(p.args[0], p.args[1], p.options["split"],
                         skip_missing=skip_missing or bool(p.options.get("skip-missing")))


def _open_wds(p: DataSpec, skip_missing: bool) -> ImageTextData:
    from .webdataset import WebDatasetData

    keys = p.options.get("caption-key")
    n = _cap(p)
    if p.labelled:
        from .webdataset import LabelledWebDataset

        names, templates = _label_files(p)
        labelled = LabelledWebDataset(p.args[0], p.options["label-key"], classnames=names,
                                      templates=templates, cap=n)
        labelled.spec = p.text
        return labelled
    data = WebDatasetData(p.args[0], caption_keys=keys.split(";") if keys else None,
                          max_items=n)
    if n is not None:
        data.spec = p.text
    return data


def _open_run(p: DataSpec, skip_missing: bool) -> ImageTextData:
    from ..runs import RunDir
    from .base import ConcatData

    rd = RunDir(p.args[0])
    if not rd.path.is_dir():
        raise DataError(f"run:{p.args[0]}: run directory not found; give a modx run's folder")
    specs = rd.read_eval("phase0", 0).get("specs") if rd.is_done("phase0", 0) else None
    if not specs:
        raise DataError(f"run:{p.args[0]}: no finished phase 0 that names its evaluation sets "
                        "(a modx run directory written by this version)")
    parts = [open_data(s, skip_missing) for s in specs]
    return parts[0] if len(parts) == 1 else ConcatData(parts)


def _open_imagefolder(p: DataSpec, skip_missing: bool) -> ImageTextData:
    from .labels import image_folder, read_classnames, read_templates

    names = p.options.get("classnames")
    return image_folder(p.args[0], read_classnames(names, p.name) if names else None,
                        read_templates(p.options.get("templates"), p.name), cap=_cap(p),
                        skip_missing=skip_missing or bool(p.options.get("skip-missing")),
                        spec=p.text)


LOADERS = {"synthetic": _open_synthetic, "csv": _open_csv, "karpathy": _open_karpathy,
           "wds": _open_wds, "imagefolder": _open_imagefolder, "run": _open_run}


def open_data(spec, skip_missing: bool = False) -> ImageTextData:
    """Parse a data SPEC (see the module docstring) into a dataset.

    Parameters
    ----------
    spec : str
        ``synthetic[:k=v,...]``, ``csv:PATH[:options]``, ``karpathy:JSON:IMAGE_ROOT[:split]``,
        ``wds:SHARDS`` or ``run:RUN_DIR``.
    skip_missing : bool
        Leave out images whose files are missing (else an error naming them).

    Returns
    -------
    ImageTextData
        Images (decoded on demand), ``captions`` and ``image_of_text``.

    Raises
    ------
    DataError
        The SPEC is malformed or names an unknown kind or option, or its files, images or run
        directory cannot be used.

    See Also
    --------
    embed : Embeds the dataset (accepts the SPEC itself).
    SyntheticStream : The synthetic stream behind ``synthetic:`` SPECs.

    Examples
    --------
    >>> import sdtools
    >>> data = sdtools.open_data("synthetic:domain=1,split=test,n=5")
    >>> data.n_images, len(data.captions), data.load_image(0).size
    (5, 15, (32, 32))
    """
    p = parse_spec(spec)
    data = LOADERS[p.kind](p, skip_missing)
    return _capped(data, p) if p.kind in ("csv", "karpathy") and not p.labelled else data
