"""Image classification with a CLIP checkpoint: zero-shot and a linear probe on frozen features.

Zero-shot follows CLIP and CLIP_benchmark: a class's text embedding is the mean of its
prompts' L2-normalised embeddings, normalised again (:func:`embed_classes`); an image is
scored against every class by cosine and assigned the highest. Reported, in percent: top-1
and top-5 accuracy (top-5 only with 5 classes or more, as CLIP_benchmark does) and the mean
per-class recall (the mean over the classes present of the share of their images assigned
to them: scikit-learn's balanced accuracy, CLIP_benchmark's ``mean_per_class_recall``).

The linear probe fits scikit-learn's logistic regression (L-BFGS, multinomial) on the
L2-normalised image embeddings of a training set. Its L2 regularisation is chosen on a
validation split of the training set with CLIP_benchmark's search: a grid of 97 strengths
``lambda`` log-spaced over [1e-6, 1e2], first 7 of them (every 16th), then the best one's
neighbours at spans 8, 4, 2, 1 (the first best kept on a tie); the model is then refitted on
training + validation data and scored on the test set. scikit-learn's ``C`` for a strength
``lambda`` on ``n`` training items is ``1 / (lambda * n)`` (its loss is summed over items, the
penalty is ``|w|^2 / 2``: the mean loss plus ``lambda / 2 * |w|^2``).

This module gathers the two (:mod:`sdtools.zeroshot`, :mod:`sdtools.logistic_probe`; every
name stays importable from here) and adds what a run records after each phase:
:func:`classify_sets` and :func:`class_groups`.
"""

from __future__ import annotations

import numpy as np

from .logistic_probe import (
    PROBE_GRID,
    PROBE_MAX_ITER,
    PROBE_SEED,
    PROBE_VAL,
    SMALL_PROBE,
    LinearProbeResult,
    linear_probe,
    probe_cv,
    probe_features,
)
from .zeroshot import CONFUSION_CLASSES, ZeroShotResult, zero_shot, zero_shot_scores
from .zeroshot import _task as _task

__all__ = ["CONFUSION_CLASSES", "PROBE_GRID", "PROBE_MAX_ITER", "PROBE_SEED", "PROBE_VAL",
           "SMALL_PROBE", "LinearProbeResult", "ZeroShotResult", "class_groups",
           "classify_sets", "linear_probe", "probe_cv", "probe_features", "zero_shot",
           "zero_shot_scores"]


def classify_sets(loaded, data, image, device, cache: bool = False,
                  linear_probe: bool = True) -> dict:
    """``{task: {"zero_shot": {top1, top5, mean_per_class_recall}, "linear_probe": accuracy}}``
    for every task ``data`` carries, from its image embeddings ``image`` (what a run records
    after each phase); empty for data without labels. ``linear_probe`` False: its accuracy
    is None (zero-shot only)."""
    from .models.extract import ModelRef, embed_classes

    ref = ModelRef(loaded, cache=cache)
    out = {}
    for task, (names, y) in data.class_labels().items():
        w = embed_classes(ref, names, data.class_templates(task), device, cache=cache,
                          precision="fp32")
        r = zero_shot_scores(image, w, y, names)
        out[task] = {"zero_shot": {"top1": r.top1, "top5": r.top5,
                                   "mean_per_class_recall": r.mean_per_class_recall},
                     "linear_probe": probe_cv(image, y) if linear_probe else None}
    return out


def class_groups(named_sets) -> dict:
    """The classes of a run's labelled evaluation sets as groups of its probe's images (for
    measures that take ``groups=``): ``{"class_groups": {task: [group per image]},
    "class_group_names": {task: ["set:class", ...]}}``, the images in the probe's order (the
    sets concatenated), a group per class of each set and -1 for images of sets without
    that task. Empty when no set carries labels."""
    sizes = [d.n_images for _, d in named_sets]
    groups: dict[str, list[int]] = {}
    names: dict[str, list[str]] = {}
    for k, (set_name, d) in enumerate(named_sets):
        for task, (classes, y) in d.class_labels().items():
            if task not in groups:
                groups[task] = [-1] * sum(sizes)
                names[task] = []
            start = sum(sizes[:k])
            offset = len(names[task])
            names[task].extend(f"{set_name}:{c}" for c in classes)
            groups[task][start : start + d.n_images] = (np.asarray(y) + offset).tolist()
    return {"class_groups": groups, "class_group_names": names} if groups else {}
