"""modx: continual CLIP training with Mod-X and its baselines."""

__version__ = "0.1.0"
