"""Progress bars (tqdm) that cost nothing when switched off (quiet mode, other ranks)."""

from __future__ import annotations


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def bar(enabled: bool, total: int, desc: str, unit: str = "item", initial: int = 0):
    """A tqdm bar when ``enabled``, else an object with the same methods that does nothing."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False)
