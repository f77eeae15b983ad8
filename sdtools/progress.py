"""Progress bars: tqdm, switched off in quiet mode and on other ranks (``disable``)."""

from __future__ import annotations


def bar(enabled: bool, total: int, desc: str, unit: str = "item", initial: int = 0):
    """A tqdm bar that draws only when ``enabled`` (a disabled one costs next to nothing)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False,
                disable=not enabled)
