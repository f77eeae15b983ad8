"""The look of every figure: palette, an rc context (global rcParams are left alone), saving.

No backend is chosen here: matplotlib picks one (Agg on a machine without a display).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from .. import __version__

RC = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7,
      "figure.dpi": 150, "axes.spines.top": False, "axes.spines.right": False}
MODALITY_COLOURS = {"image": "#1f77b4", "text": "#d62728"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def colour(name: str, styles: dict | None = None) -> str:
    """A series' colour: ``styles[name]["colour"]`` when given (a trainer says how its methods
    are drawn), else one from a stable hash of the name (the same in every process, unlike
    ``hash()``)."""
    given = ((styles or {}).get(name) or {}).get("colour")
    if given:
        return given
    digest = hashlib.sha256(name.encode()).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def pyplot():
    import matplotlib.pyplot as plt

    return plt


def styled(fn):
    """Run a figure function inside the house rc context."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(RC):
            return fn(*args, **kwargs)

    return wrapper


def save(fig, path, close: bool = True) -> Path:
    """Save atomically; the format follows the suffix (.png, .pdf, .svg)."""
    from ..io import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fmt = path.suffix.lstrip(".").lower() or "png"
        tag = {"png": "Software", "pdf": "Creator", "svg": "Creator"}.get(fmt)
        fig.savefig(tmp, bbox_inches="tight", format=fmt,
                    metadata={tag: f"sdtools {__version__}"} if tag else None)
    if close:
        pyplot().close(fig)
    return path


def save_both(fig, out, name: str) -> list[Path]:
    """Write the figure as ``name.png`` and ``name.pdf`` in ``out``."""
    out = Path(out)
    png = save(fig, out / f"{name}.png", close=False)
    return [png, save(fig, out / f"{name}.pdf")]
