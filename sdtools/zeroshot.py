"""Zero-shot classification with a CLIP checkpoint, following CLIP and CLIP_benchmark.

A class's text embedding is the mean of its prompts' L2-normalised embeddings, normalised
again (:func:`sdtools.models.extract.embed_classes`); an image is scored against every class
by cosine and assigned the highest. Reported, in percent: top-1 and top-5 accuracy (top-5 only
with 5 classes or more, as CLIP_benchmark does) and the mean per-class recall (the mean over
the classes present of the share of their images assigned to them: scikit-learn's balanced
accuracy, CLIP_benchmark's ``mean_per_class_recall``).

The label checks and scores here are shared with the linear probe
(:mod:`sdtools.logistic_probe`); :mod:`sdtools.classify` gathers both. This module sits above
:mod:`sdtools.models` (it embeds); :func:`zero_shot_scores` is pure arrays in, results out.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import DataError, UserError

CONFUSION_CLASSES = 100  # a JSON result holds the confusion matrix up to this many classes


@dataclasses.dataclass(frozen=True)
class ZeroShotResult:
    """Zero-shot classification of one labelled set. Accuracies in percent; ``top5`` is
    None with fewer than 5 classes. ``pred`` (n_images,) and ``labels`` (n_images,) are class
    indices into ``classnames``; ``confusion[i, j]`` counts images of class i assigned j.

    See Also
    --------
    zero_shot : Returns it.
    LinearProbeResult : The linear probe's scores.

    Examples
    --------
    >>> import numpy as np
    >>> r = zero_shot_scores(np.eye(2, 3)[[0, 1, 1]], np.eye(2, 3), [0, 1, 0], ["cat", "dog"])
    >>> r.confusion.tolist(), r.per_class_recall().tolist(), r.to_dict()["n_classes"]
    ([[1, 1], [0, 1]], [50.0, 100.0], 2)
    """

    top1: float
    top5: float | None
    mean_per_class_recall: float
    classnames: tuple[str, ...]
    pred: np.ndarray
    labels: np.ndarray
    n_templates: int = 0
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return int(self.labels.size)

    @property
    def confusion(self) -> np.ndarray:
        k = len(self.classnames)
        return np.bincount(self.labels * k + self.pred, minlength=k * k).reshape(k, k)

    def per_class_recall(self) -> np.ndarray:
        """(n_classes,) recall per class in percent (NaN for a class without images)."""
        c = self.confusion
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * np.diag(c) / c.sum(1)

    def to_dict(self, predictions: bool = False) -> dict:
        """The scores, class names, per-class recall and the confusion matrix (up to
        ``CONFUSION_CLASSES`` classes, or with ``predictions``: every image's predicted and
        true class, from which any confusion matrix follows)."""
        d = {"top1": self.top1, "top5": self.top5,
             "mean_per_class_recall": self.mean_per_class_recall, "n_images": self.n_images,
             "n_classes": len(self.classnames), "n_templates": self.n_templates,
             "classnames": list(self.classnames),
             "per_class_recall": [None if np.isnan(x) else float(x)
                                  for x in self.per_class_recall()], **self.meta}
        if len(self.classnames) <= CONFUSION_CLASSES or predictions:
            d["confusion"] = self.confusion.tolist()
        if predictions:
            d["pred"] = self.pred.tolist()
            d["labels"] = self.labels.tolist()
        return d


def _check_labels(y, n_items: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.size != n_items or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"labels must be {n_items} whole numbers (one per image), got "
                        f"shape {y.shape} {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise UserError(f"labels must lie in 0..{n_classes - 1}")
    return y.astype(np.int64)


def _topk_hits(scores: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Whether each item's true class is among its ``k`` highest scores."""
    own = scores[np.arange(len(y)), y][:, None]
    return (scores > own).sum(1) < k


def _mean_recall(pred: np.ndarray, y: np.ndarray) -> float:
    return float(100.0 * np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def zero_shot_scores(image, weights, labels, classnames=None) -> ZeroShotResult:
    """Zero-shot classification of image embeddings against class embeddings.

    Parameters
    ----------
    image : array (N, D)
        L2-normalised image embeddings.
    weights : array (C, D)
        L2-normalised class embeddings (:func:`embed_classes`).
    labels : array (N,)
        True class index of each image.
    classnames : sequence of str, optional
        C names (default ``"0" .. "C-1"``).

    Returns
    -------
    ZeroShotResult

    Examples
    --------
    >>> import numpy as np
    >>> r = zero_shot_scores(np.eye(3, 4)[[0, 1, 2, 1]], np.eye(3, 4), [0, 1, 2, 0])
    >>> r.top1, r.top5, round(r.mean_per_class_recall, 2), r.pred.tolist()
    (75.0, None, 83.33, [0, 1, 2, 1])
    """
    image = np.asarray(image, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if image.ndim != 2 or weights.ndim != 2 or image.shape[1] != weights.shape[1]:
        raise UserError(f"image embeddings {image.shape} and class embeddings {weights.shape} "
                        "must be (N, D) and (C, D)")
    y = _check_labels(labels, image.shape[0], weights.shape[0])
    if y.size == 0:
        raise UserError("no image to classify")
    names = tuple(classnames) if classnames is not None else tuple(map(str, range(len(weights))))
    scores = image @ weights.T
    pred = np.argmax(scores, axis=1)
    top5 = (float(100.0 * _topk_hits(scores, y, 5).mean()) if weights.shape[0] >= 5
            else None)
    return ZeroShotResult(float(100.0 * np.mean(pred == y)), top5, _mean_recall(pred, y),
                          names, pred.astype(np.int64), y)


def _task(data, task: str | None):
    tasks = data.class_labels()
    if not tasks:
        raise DataError(f"{data.spec} carries no class labels; give a labelled set "
                        "(imagefolder:ROOT, csv:PATH:label-key=COL, wds:SHARDS:label-key=cls)")
    if task is None:
        if len(tasks) > 1:
            raise DataError(f"{data.spec} carries several classification tasks "
                            f"({', '.join(tasks)}); choose one with --task TASK "
                            "(task=TASK in Python)")
        task = next(iter(tasks))
    if task not in tasks:
        raise DataError(f"{data.spec} has no task {task!r} (tasks: {', '.join(tasks)})")
    return task, tasks[task]


def zero_shot(model_or_spec, data, *, task: str | None = None, templates=None, arch=None,
              device=None, batch_size: int = 256, cache: bool = True, cache_dir=None,
              num_workers: int = 0, progress: bool = False,
              precision: str = "auto") -> ZeroShotResult:
    """Zero-shot classification of a labelled set with a checkpoint.

    Parameters
    ----------
    model_or_spec : str, Loaded or model
        A checkpoint spec (see :func:`sdtools.load_checkpoint`) or what it returns.
    data : str or dataset
        A labelled data SPEC (``imagefolder:ROOT``, ``csv:PATH:label-key=COL``,
        ``wds:SHARDS:label-key=cls``, ``synthetic``) or an opened dataset.
    task : str, optional
        Which classification task, where the data carries several (the synthetic stream's
        ``shape`` and ``colour``).
    templates : sequence of str, optional
        Prompt templates with ``{c}`` (default: the data's own).
    arch, device, batch_size, cache, cache_dir, num_workers, progress, precision
        As :func:`sdtools.embed`. Image embeddings and class embeddings are both cached.

    Returns
    -------
    ZeroShotResult

    Raises
    ------
    UserError
        ``data`` is neither a SPEC nor a dataset; ``precision`` is not ``auto``, ``fp32`` or
        ``bf16``; ``model_or_spec`` cannot embed (see :func:`sdtools.embed`); or the data's
        labels do not fit its classes.
    DataError
        The data cannot be opened, carries no class labels, carries several tasks and
        ``task`` is not given, or has no task ``task``; a template is unusable.
    DeviceError
        ``device`` is not one this machine has.
    CheckpointError
        A checkpoint spec that cannot be loaded.

    See Also
    --------
    ZeroShotResult : The result's fields.
    linear_probe : A linear probe of the same embeddings.
    embed : How the images are embedded.

    Examples
    --------
    >>> import os, tempfile, sdtools
    >>> from sdtools.models.build import build_model
    >>> from sdtools.models.checkpoints import save_safetensors
    >>> from sdtools.models.configs import tiny_clip_cfg
    >>> cfg = tiny_clip_cfg(embed_dim=16, width=64, layers=1, patch_size=8)
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> save_safetensors(build_model(cfg), path, cfg)
    >>> r = sdtools.zero_shot(path, "synthetic:domain=0,n=12", task="shape", cache=False)
    >>> r.n_images, len(r.classnames), 0 <= r.top1 <= 100
    (12, 6, True)
    """
    from .data.base import ImageTextData
    from .data.labels import check_templates
    from .data.specs import open_data
    from .models.extract import ModelRef, _compute, embed_classes, embed_images

    if not isinstance(data, (str, ImageTextData)):
        raise UserError(f"data must be a data SPEC or a dataset, got {type(data).__name__}")
    data = open_data(data) if isinstance(data, str) else data
    task, (names, y) = _task(data, task)
    templates = check_templates(templates if templates is not None
                                else data.class_templates(task), "templates")
    ref = ModelRef(model_or_spec, arch, cache)
    kw = dict(cache=cache, cache_dir=cache_dir, progress=progress, precision=precision)
    image = embed_images(ref, data, batch_size, device, num_workers=num_workers, **kw)
    weights = embed_classes(ref, names, templates, device, batch_size=batch_size, **kw)
    r = zero_shot_scores(image, weights, y, names)
    meta = {**ref.info(), "data": data.spec, "task": task, "templates": list(templates),
            "precision": precision, **_compute(device, precision)[2]}
    return dataclasses.replace(r, n_templates=len(templates), meta=meta)
