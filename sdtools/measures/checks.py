"""Input checks and small numerically safe helpers shared by every measure.

All public measures accept numpy arrays or torch tensors (on any device) and call
:func:`as_embeddings` once per input, so every bad input gets the same one-line error.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import torch

from ..errors import InputError

# what the measures take as embeddings: a numpy array or a torch tensor (on any device)
Array: TypeAlias = "np.ndarray | torch.Tensor"

_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_tensor(x: object, name: str, *, ndim: int = 2) -> torch.Tensor:
    """Return ``x`` as a floating torch tensor (no copy where possible), checking its dtype.

    float16/bfloat16 are promoted to float32; integer, boolean and complex inputs are refused.
    """
    if isinstance(x, np.ndarray):
        if x.dtype == np.longdouble and np.longdouble != np.float64:
            x = x.astype(np.float64)  # torch has no extended precision; float64 is its widest
        if np.iscomplexobj(x):
            raise InputError(f"{name} is complex ({x.dtype}); pass real float embeddings")
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(
                f"{name} has dtype {x.dtype}; pass float embeddings (e.g. x.astype(np.float32))"
            )
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        raise InputError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if t.is_complex():
        raise InputError(f"{name} is complex ({t.dtype}); pass real float embeddings")
    if t.dtype not in _FLOAT_TYPES:
        raise InputError(f"{name} has dtype {t.dtype}; pass float embeddings (e.g. x.float())")
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    if t.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-D (N x D), got shape {tuple(t.shape)}")
    return t


def as_embeddings(x: object, name: str, *, min_rows: int = 2,
                  check_values: bool = True) -> torch.Tensor:
    """Check an (N, D) embedding matrix: float dtype, >= ``min_rows`` rows, finite, no zero rows.

    Returns the tensor un-normalised (callers normalise, often chunk by chunk to save memory).
    """
    return checked_with_norms(x, name, min_rows=min_rows, check_values=check_values)[0]


def checked_with_norms(
    x: object, name: str, *, min_rows: int = 2, check_values: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`as_embeddings` that also returns the row norms (N, 1) it computed for the checks.

    One pass: a row with a NaN or Inf has a non-finite norm, so the norms serve both checks.
    """
    t = as_tensor(x, name)
    n, d = t.shape
    if n < min_rows:
        raise InputError(f"{name} has {n} sample(s); at least {min_rows} are needed")
    if d < 1:
        raise InputError(f"{name} has no dimensions (shape {tuple(t.shape)})")
    if not check_values:
        return t, None
    norms = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    if not bool(torch.isfinite(norms).all() & (norms > 0).all()):
        # a finite, non-zero row can still overflow or underflow its norm (1e30, 1e-30):
        # scale each row by its largest entry first; directions are all that matter
        peak = t.abs().amax(dim=1, keepdim=True)
        if bool(torch.isfinite(peak).all()):
            t = t / torch.where(peak > 0, peak, torch.ones_like(peak))
            norms = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    bad = ~torch.isfinite(norms[:, 0])
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten()[:5].tolist()
        raise InputError(
            f"{name} contains NaN or Inf in {int(bad.sum())} row(s) (first: {rows}); "
            "drop or recompute those embeddings"
        )
    zero = norms[:, 0] == 0
    if bool(zero.any()):
        rows = torch.nonzero(zero).flatten()[:5].tolist()
        raise InputError(
            f"{name} has {int(zero.sum())} zero-norm row(s) (first: {rows}); "
            "an all-zero embedding has no direction"
        )
    return t, norms


def same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise InputError(
            f"{name_a} has {a.shape[0]} rows but {name_b} has {b.shape[0]}; "
            "both must embed the same samples in the same order"
        )
    if a.shape[1] != b.shape[1]:
        raise InputError(
            f"{name_a} has dimension {a.shape[1]} but {name_b} has {b.shape[1]}; a rotation "
            "between spaces of different dimension is undefined (compare checkpoints of one "
            "architecture)"
        )


def common(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Put two tensors on one device and one dtype (the wider of the two), on ``a``'s device."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(device=a.device, dtype=dtype)


def normalize(t: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = t / torch.linalg.vector_norm(t, dim=1, keepdim=True)
    return out


def check_image_of_text(image_of_text: object, n_images: int, n_texts: int,
                        device: torch.device | str | None) -> torch.Tensor:
    """Check the caption -> image index array; every image must own at least one caption."""
    if isinstance(image_of_text, torch.Tensor):
        idx = image_of_text.detach().cpu()
    else:
        arr = np.asarray(image_of_text)
        if arr.dtype == object or arr.dtype.kind in "USV":
            raise InputError("image_of_text must be an integer array with one image index per "
                             f"caption, got {type(image_of_text).__name__} ({arr.dtype}); for "
                             "one caption per image give numpy.arange(n_images)")
        idx = torch.as_tensor(arr)
    if idx.ndim != 1:
        raise InputError(f"image_of_text must be 1-D, got shape {tuple(idx.shape)}")
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.is_complex():
        raise InputError(f"image_of_text must hold integer indices, got {idx.dtype}")
    if idx.numel() != n_texts:
        raise InputError(
            f"image_of_text has {idx.numel()} entries but there are {n_texts} text embeddings; "
            "give one image index per caption"
        )
    idx = idx.long()
    if n_texts and (int(idx.min()) < 0 or int(idx.max()) >= n_images):
        raise InputError(
            f"image_of_text has indices outside [0, {n_images}) (min {int(idx.min())}, "
            f"max {int(idx.max())}); indices refer to rows of the image embeddings"
        )
    counts = torch.bincount(idx, minlength=n_images)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise InputError(
            f"{int((counts == 0).sum())} image(s) have no caption in image_of_text "
            f"(first: {missing}); drop them or give each image a caption"
        )
    return idx.to(device)


def stable_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise angle between unit vectors, ``2 atan2(|a-b|, |a+b|)``, in degrees.

    Accurate near 0 and 180 degrees, where ``arccos`` of the dot product loses digits.
    """
    d = torch.linalg.vector_norm(a - b, dim=1)
    s = torch.linalg.vector_norm(a + b, dim=1)
    return torch.rad2deg(2.0 * torch.atan2(d, s))


def repeated_rows(*mats: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """Items whose rows repeat an earlier item's in every matrix (directions compared, e.g. an
    image listed once per caption): ``(keep, inverse)`` with ``keep`` the first of each distinct
    item and ``inverse`` each item's place among them, or None when every item is distinct.
    Rows are keyed by two seeded random projections of each matrix's unit rows (row by row, in
    float64: equal rows give equal keys)."""
    gen = torch.Generator().manual_seed(0)
    keys = []
    for m in mats:
        p = torch.randn(m.shape[1], 2, generator=gen, dtype=torch.float64).to(m.device)
        for s in range(0, m.shape[0], 65536):  # in blocks: memory flat in N
            u = normalize(m[s : s + 65536].double())
            keys.append(torch.stack([(u * p[:, c]).sum(1) for c in range(2)], 1).cpu().numpy())
    n = mats[0].shape[0]
    step = -(-n // 65536)  # blocks per matrix
    keys = [np.concatenate(keys[i * step : (i + 1) * step]) for i in range(len(mats))]
    _, keep, inverse = np.unique(np.concatenate(keys, 1), axis=0, return_index=True,
                                 return_inverse=True)
    if keep.size == mats[0].shape[0]:
        return None
    order = np.argsort(keep)  # distinct items in their first appearance's order
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return keep[order], rank[inverse.ravel()]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# unit roundoff scale (machine epsilon) of the float formats an embedding's values can carry
PRECISION_EPS = {"bfloat16": 2.0**-7, "float16": 2.0**-10, "float32": 2.0**-23,
                 "float64": 2.0**-52}
_SAMPLE_ROWS = 4096


def value_precision(x: object) -> str:
    """The coarsest float format that holds every value of ``x`` exactly (judged on its first
    4,096 rows): ``bfloat16`` or ``float16`` for float32 values that were rounded to one
    (a half-precision re-save), else the array's own dtype name."""
    if not isinstance(x, torch.Tensor):
        if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
            # float16 is named below; other types are judged (or refused) by as_tensor
            return "float16" if getattr(x, "dtype", None) == np.float16 else "float64"
        x = torch.from_numpy(np.ascontiguousarray(x[:_SAMPLE_ROWS]))
    t = x
    name = str(t.dtype).replace("torch.", "")
    if name in ("bfloat16", "float16") or name not in PRECISION_EPS:
        return name if name in PRECISION_EPS else "float32"
    head = t[:_SAMPLE_ROWS].detach()
    for fmt, dt in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        if bool(torch.isfinite(head.to(dt)).all()) and bool((head.to(dt).to(head.dtype)
                                                              == head).all()):
            return fmt
    return name


def coarsest(*names: str | None) -> str:
    """The coarsest of several precision names (None entries ignored)."""
    given = [n for n in names if n]
    return max(given, key=lambda n: PRECISION_EPS.get(n, 0.0)) if given else "float64"


def check_groups(groups: object, n: int, name: str = "groups") -> np.ndarray:
    """``groups`` (an array or tensor of labels) as an (n,) array, checked: one label per item,
    no missing label (NaN or infinite: give each item without a group a label of its own)."""
    g = (groups.detach().cpu().numpy() if isinstance(groups, torch.Tensor)
         else np.asarray(groups))
    if g.ndim != 1 or g.size != n:
        raise InputError(f"{name} must hold one label per item ({n}), got shape {g.shape}")
    if g.dtype.kind in "fc" and not np.isfinite(g).all():
        bad = int((~np.isfinite(g)).sum())
        raise InputError(f"{name} has {bad} missing label(s) (NaN or infinite); give each item a "
                         "label (an item without a group gets a label of its own)")
    if g.dtype.kind == "O":
        raise InputError(f"{name} must be numbers or strings, got objects; give an array of "
                         "labels")
    return g


def check_count(x: object, name: str, least: int, what: str = "", why: str = "") -> int:
    """An integer of at least ``least`` (a bool is not one), else a one-line InputError:
    ``{name} must be an integer of at least {least}{what}, got {x!r}{why}``."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < least:
        raise InputError(f"{name} must be an integer of at least {least}{what}, got {x!r}{why}")
    return int(x)


def check_seed(seed: object, name: str = "seed") -> int:
    """A random seed of a measure: an integer in [0, 2^63) (numpy Generators and torch take any;
    a training seed is narrower, [0, 2^32), as numpy's global seeding takes)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= int(seed) < 2**63:
        raise InputError(f"{name} must be an integer in [0, 2^63), got {seed!r}")
    return int(seed)
