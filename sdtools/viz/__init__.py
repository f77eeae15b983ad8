"""Figures: style, pairwise plots (two checkpoints) and multi-phase figures (a run)."""
