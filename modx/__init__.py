"""modx: continual CLIP training with Mod-X and its baselines."""

from sdtools import __version__  # one version for both packages (pyproject reads it)

__all__ = ["__version__"]
