"""Figures: style, pairwise plots (two checkpoints), multi-phase figures (a run) and the
confusion matrix of a classification (classes.py)."""
