"""Classification figures: the confusion matrix of a zero-shot evaluation."""

from __future__ import annotations

import numpy as np

from .style import pyplot, save, styled

MAX_LABELLED = 40  # class names on the axes up to this many classes


@styled
def plot_confusion(result, path, title: str | None = None):
    """Row-normalised confusion matrix (true class down, predicted class across), per-class
    recall on the diagonal; ``result``: a :class:`sdtools.classify.ZeroShotResult`."""
    c = result.confusion.astype(np.float64)
    rows = c.sum(1, keepdims=True)
    share = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0)
    k = len(result.classnames)
    size = min(10.0, 2.5 + 0.25 * k)
    fig, ax = pyplot().subplots(figsize=(size + 1.0, size))
    im = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class's images")
    if k <= MAX_LABELLED:
        ax.set_xticks(range(k), result.classnames, rotation=90)
        ax.set_yticks(range(k), result.classnames)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    top5 = "" if result.top5 is None else f", top-5 {result.top5:.1f}%"
    ax.set_title(title or f"zero-shot: top-1 {result.top1:.1f}%{top5}, mean per-class recall "
                 f"{result.mean_per_class_recall:.1f}% ({result.n_images} images)")
    return save(fig, path)
