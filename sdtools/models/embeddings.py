"""The :class:`Embeddings` container: image and caption embeddings of one probe set.

Saved as ``.npz`` (no pickles: ``meta`` is stored as JSON text), written atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np

from ..errors import EmbeddingsError, InputError, UserError
from ..io import EMBEDDINGS_FORMAT, atomic_path
from ..measures.checks import as_embeddings, check_image_of_text, to_numpy

FORMAT_VERSION = EMBEDDINGS_FORMAT


def npz_path(path) -> Path:
    """The file :meth:`Embeddings.save` writes for ``path``: ``.npz`` added unless it ends
    so (``emb`` -> ``emb.npz``, ``emb.v2`` -> ``emb.v2.npz``)."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


@dataclasses.dataclass
class Embeddings:
    """``image`` (n_images, D), ``text`` (n_texts, D), ``image_of_text`` (n_texts,), ``meta``.

    ``meta`` is a JSON-ready dict (checkpoint, data spec, domain labels, ...).

    Attributes
    ----------
    image : ndarray (n_images, D), float32
        Image embeddings.
    text : ndarray (n_texts, D), float32
        Caption embeddings.
    image_of_text : ndarray (n_texts,), int64
        Index of each caption's image.
    meta : dict
        Provenance: checkpoint, data spec, probe, precision, evaluation sets.

    See Also
    --------
    embed : Makes Embeddings from a checkpoint and a data SPEC.
    rotation_report : Intra-modal rotation between two Embeddings of one probe.
    deviation_report : Inter-modal deviation between two Embeddings of one probe.

    Examples
    --------
    >>> import os, tempfile, numpy as np, sdtools
    >>> e = sdtools.Embeddings(np.eye(3, 4), np.eye(3, 4)[[0, 0, 1, 2]], np.array([0, 0, 1, 2]))
    >>> e.n_images, e.n_texts, e.dim
    (3, 4, 4)
    >>> path = e.save(os.path.join(tempfile.mkdtemp(), "emb.npz"))
    >>> sdtools.Embeddings.load(path).image_of_text.tolist()
    [0, 0, 1, 2]
    """

    image: np.ndarray
    text: np.ndarray
    image_of_text: np.ndarray
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for name in ("image", "text", "image_of_text"):
            if getattr(getattr(self, name), "is_meta", False):
                raise InputError(f"Embeddings: {name} is a tensor on the meta device (a shape "
                                 "without values); pass a tensor that holds data")
        img = as_embeddings(self.image, "image", min_rows=1)
        txt = as_embeddings(self.text, "text", min_rows=1)
        if img.shape[1] != txt.shape[1]:
            raise InputError(
                f"image embeddings have dimension {img.shape[1]} but text embeddings have "
                f"{txt.shape[1]}; both must come from one model"
            )
        iot = check_image_of_text(self.image_of_text, img.shape[0], txt.shape[0], "cpu")
        self.image = to_numpy(img)
        self.text = to_numpy(txt)
        self.image_of_text = iot.numpy().astype(np.int64)
        self.meta = dict(self.meta or {})

    @property
    def n_images(self) -> int:
        return self.image.shape[0]

    @property
    def n_texts(self) -> int:
        return self.text.shape[0]

    @property
    def dim(self) -> int:
        return self.image.shape[1]

    def subset(self, images) -> Embeddings:
        """The given images (indices, in order) with all their captions."""
        images = np.asarray(images, dtype=np.int64)
        remap = np.full(self.n_images, -1, dtype=np.int64)
        remap[images] = np.arange(images.size)
        keep = np.flatnonzero(remap[self.image_of_text] >= 0)
        meta = {k: v for k, v in self.meta.items()
                if k not in ("set_of_image", "domains", "probe")}
        if isinstance(meta.get("class_groups"), dict):  # one group per image: keep those kept
            meta["class_groups"] = {t: [g[i] for i in images.tolist()]
                                    for t, g in meta["class_groups"].items()}
        return Embeddings(self.image[images], self.text[keep], remap[self.image_of_text[keep]],
                          meta)

    def sets(self) -> dict[str, np.ndarray]:
        """Image indices of each evaluation set a run's probe holds (``meta``: ``sets`` and
        ``set_of_image``), in the run's order; empty when the probe is one set."""
        names, of = self.meta.get("sets"), self.meta.get("set_of_image")
        if not names or of is None or len(names) < 2:
            return {}
        of = np.asarray(of)
        return {name: np.flatnonzero(of == k) for k, name in enumerate(names)}

    def first_caption(self) -> np.ndarray:
        """Index of one caption per image (the first), to pair images with texts 1:1."""
        first = np.full(self.n_images, -1, dtype=np.int64)
        for j in range(self.n_texts - 1, -1, -1):
            first[self.image_of_text[j]] = j
        return first

    def save(self, path) -> Path:
        """Write ``path`` (.npz added when it has another suffix) atomically; returns the
        path written."""
        path = npz_path(path)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    image=self.image,
                    text=self.text,
                    image_of_text=self.image_of_text,
                    meta=np.array(json.dumps(self.meta)),
                    format_version=np.array(FORMAT_VERSION),
                )
        return path

    @classmethod
    def load(cls, path) -> Embeddings:
        """Read an ``.npz`` written by :meth:`save` (no pickles are ever loaded)."""
        import zipfile

        from ..io import check_regular_input

        path = Path(path)
        if path.exists() and not path.is_dir():
            check_regular_input(path, "embeddings file", EmbeddingsError)
        if not path.is_file():
            raise EmbeddingsError(f"embeddings file not found: {path}"
                                  + (" (it is a directory)" if path.is_dir() else ""))
        hint = "write one with `sdtools embed CKPT --data SPEC --out F.npz` or Embeddings.save"
        try:
            z = np.load(path, allow_pickle=False)
            if not hasattr(z, "files"):  # a bare .npy array under an .npz name
                raise EmbeddingsError(f"{path} is not an embeddings file (a bare array, not "
                                      f"an .npz archive); {hint}")
            with z:
                missing = {"image", "text", "image_of_text"} - set(z.files)
                if missing:
                    raise EmbeddingsError(f"{path} is not an embeddings file (missing "
                                          f"{sorted(missing)}); {hint}")
                if "format_version" in z.files:
                    version = z["format_version"]
                    if version.shape != () or not np.issubdtype(version.dtype, np.integer) \
                            or int(version) > FORMAT_VERSION or int(version) < 1:
                        raise EmbeddingsError(
                            f"{path} has embeddings format {version.tolist()!r}, and this "
                            f"version of sdtools reads format 1 to {FORMAT_VERSION}; embed again "
                            "with this version, or upgrade sdtools to read it")
                meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
                if not isinstance(meta, dict):
                    raise EmbeddingsError(f"{path} is not an embeddings file (its meta is a "
                                          f"JSON {type(meta).__name__}, not an object); {hint}")
                return cls(z["image"], z["text"], z["image_of_text"], meta)
        except EmbeddingsError:
            raise
        except UserError as exc:  # arrays that are there but unusable (NaN, shapes, ...)
            raise type(exc)(f"{path}: {exc}") from None
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            why = "unreadable or truncated"
            if "pickle" in str(exc):  # numpy tries to unpickle what is neither .npz nor .npy
                head = b""
                with contextlib.suppress(OSError), open(path, "rb") as fh:
                    head = fh.read(2)
                why = ("it holds pickled objects" if head[:1] == b"\x80"
                       else "not an .npz archive: it starts with neither the zip nor the .npy "
                       "signature")
            raise EmbeddingsError(f"{path} is not an embeddings file ({why}); {hint}") from None

    def __repr__(self) -> str:
        return (
            f"Embeddings(n_images={self.n_images}, n_texts={self.n_texts}, dim={self.dim}, "
            f"meta_keys={sorted(self.meta)})"
        )
