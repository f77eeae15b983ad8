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

This module sits above :mod:`sdtools.models` (it embeds); :func:`zero_shot_scores` and
:func:`probe_features` are pure arrays in, results out.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import DataError, UserError

PROBE_GRID = np.logspace(-6, 2, num=97)  # lambda: CLIP_benchmark's weight-decay grid
PROBE_VAL = 0.2
PROBE_SEED = 0
PROBE_MAX_ITER = 1000
CONFUSION_CLASSES = 100  # a JSON result holds the confusion matrix up to this many classes
SMALL_PROBE = 2_000_000  # features (items x dims) below which the solver runs on one thread


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


# --------------------------------------------------------------------------- linear probe
@dataclasses.dataclass(frozen=True)
class LinearProbeResult:
    """A linear probe's test scores (percent; ``top5`` None with fewer than 5 classes) and
    its settings: the regularisation chosen and how.

    See Also
    --------
    linear_probe : Returns it.
    ZeroShotResult : Zero-shot classification's scores.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(2), 20)
    >>> x = np.eye(2, 4)[y] + 0.1 * np.random.default_rng(0).standard_normal((40, 4))
    >>> r = probe_features(x[::2], y[::2], x[1::2], y[1::2], lambdas=[1e-4, 1e-2, 1.0])
    >>> r.top1, r.top5, sorted(r.to_dict())
    (100.0, None, ['mean_per_class_recall', 'n_test', 'settings', 'top1', 'top5'])
    """

    top1: float
    top5: float | None
    mean_per_class_recall: float
    settings: dict
    pred: np.ndarray
    labels: np.ndarray

    def to_dict(self) -> dict:
        return {"top1": self.top1, "top5": self.top5,
                "mean_per_class_recall": self.mean_per_class_recall,
                "n_test": int(self.labels.size), "settings": self.settings}


def _normed(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def _val_split(y: np.ndarray, share: float, seed: int):
    """Training and validation indices: stratified where every class has two items or more."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(y.size)
    _, counts = np.unique(y, return_counts=True)
    n_val = max(1, int(round(share * y.size)))
    strat = y if counts.min() >= 2 and n_val >= counts.size and y.size - n_val >= counts.size \
        else None
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(va)


def _fit(x, y, lam: float, max_iter: int, seed: int):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    clf = LogisticRegression(C=1.0 / (lam * len(y)), max_iter=max_iter, random_state=seed)
    # small problems: BLAS threads only contend (20x slower on a busy 2-core machine)
    with warnings.catch_warnings(), threadpool_limits(1 if x.size < SMALL_PROBE else None):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def probe_features(train_x, train_y, test_x, test_y, *, val_proportion: float = PROBE_VAL,
                   seed: int = PROBE_SEED, max_iter: int = PROBE_MAX_ITER,
                   lambdas=None) -> LinearProbeResult:
    """A logistic-regression probe on features: regularisation chosen on a validation split
    of the training set (see the module docstring), refitted on all training data, scored on
    the test set. Features are L2-normalised first.

    Parameters
    ----------
    train_x, test_x : arrays (N, D) and (M, D)
    train_y, test_y : arrays (N,) and (M,) of class indices
    val_proportion : float
        Share of the training set held out to choose the regularisation.
    seed : int
        Seed of the validation split (and the solver).
    max_iter : int
        L-BFGS iterations.
    lambdas : array, optional
        The grid of strengths (default: 97 values log-spaced over [1e-6, 1e2]).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 30)
    >>> x = np.eye(3, 8)[y] + 0.3 * rng.standard_normal((90, 8))
    >>> r = probe_features(x[::2], y[::2], x[1::2], y[1::2])
    >>> r.top1 > 90, r.settings["solver"]
    (True, 'lbfgs')
    """
    xtr, xte = _normed(train_x), _normed(test_x)
    if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
        raise UserError(f"training features {xtr.shape} and test features {xte.shape} must be "
                        "(N, D) and (M, D)")
    ytr = _check_labels(train_y, xtr.shape[0], np.iinfo(np.int64).max)
    yte = _check_labels(test_y, xte.shape[0], np.iinfo(np.int64).max)
    if np.unique(ytr).size < 2:
        raise DataError("the probe's training set needs images of two classes or more")
    if not 0 < val_proportion < 1:
        raise UserError(f"val_proportion must lie in (0, 1), got {val_proportion}")
    unseen = sorted(set(yte.tolist()) - set(ytr.tolist()))
    if unseen:
        raise DataError(f"test class {unseen[0]} has no training image; a probe can only "
                        "predict the classes it was trained on")
    grid = np.asarray(PROBE_GRID if lambdas is None else lambdas, dtype=np.float64)
    tr, va = _val_split(ytr, val_proportion, seed)
    val_acc: dict[int, float] = {}

    def score(i: int) -> float:
        if i not in val_acc:
            clf = _fit(xtr[tr], ytr[tr], grid[i], max_iter, seed)
            val_acc[i] = float(np.mean(clf.predict(xtr[va]) == ytr[va]))
        return val_acc[i]

    def peak(candidates) -> int:
        best, best_acc = candidates[0], -1.0
        for i in candidates:
            if score(i) > best_acc:
                best, best_acc = i, score(i)
        return best

    step = max(1, (len(grid) - 1) // 6)
    best = peak(list(range(0, len(grid), step)))
    span = step // 2
    while span > 0:
        best = peak([max(best - span, 0), best, min(best + span, len(grid) - 1)])
        span //= 2
    clf = _fit(xtr, ytr, grid[best], max_iter, seed)
    proba = np.full((xte.shape[0], int(max(ytr.max(), yte.max())) + 1), -np.inf)
    proba[:, clf.classes_] = clf.decision_function(xte) if len(clf.classes_) > 2 else \
        np.stack([-clf.decision_function(xte), clf.decision_function(xte)], 1)
    pred = clf.classes_[np.argmax(proba[:, clf.classes_], axis=1)]
    n_classes = len(clf.classes_)
    settings = {
        "model": "logistic regression (scikit-learn)", "solver": "lbfgs",
        "max_iter": max_iter, "features": "L2-normalised image embeddings",
        "val_proportion": val_proportion, "seed": seed,
        "lambda_grid": f"logspace({np.log10(grid[0]):g}, {np.log10(grid[-1]):g}, "
                       f"{len(grid)})",
        "search": "CLIP_benchmark's: every 16th, then spans 8, 4, 2, 1",
        "lambda": float(grid[best]), "C": float(1.0 / (grid[best] * len(ytr))),
        "val_top1": 100.0 * val_acc[best], "n_train": int(tr.size), "n_val": int(va.size),
        "n_classes": n_classes, "refit_on": "training + validation",
    }
    top5 = (float(100.0 * _topk_hits(proba, yte, 5).mean()) if n_classes >= 5 else None)
    return LinearProbeResult(float(100.0 * np.mean(pred == yte)), top5,
                             _mean_recall(pred, yte), settings, pred.astype(np.int64), yte)


def linear_probe(model_or_spec, train, test, *, task: str | None = None, arch=None,
                 device=None, batch_size: int = 256, cache: bool = True, cache_dir=None,
                 num_workers: int = 0, progress: bool = False, precision: str = "auto",
                 val_proportion: float = PROBE_VAL, seed: int = PROBE_SEED,
                 max_iter: int = PROBE_MAX_ITER) -> LinearProbeResult:
    """A linear probe of a checkpoint's frozen image embeddings: trained on the labelled set
    ``train``, scored on ``test`` (see :func:`probe_features`; both sets must name the same
    classes in the same order).

    Parameters
    ----------
    model_or_spec : str, Loaded or model
        A checkpoint spec (see :func:`sdtools.load_checkpoint`) or what it returns.
    train, test : str or dataset
        Labelled data SPECs (``imagefolder:ROOT``, ...) or opened datasets.
    task : str, optional
        Which classification task, where the data carries several.
    arch, device, batch_size, cache, cache_dir, num_workers, progress, precision
        As :func:`sdtools.embed` (image embeddings are cached).
    val_proportion, seed, max_iter
        As :func:`probe_features`.

    Returns
    -------
    LinearProbeResult
        Test scores; ``settings`` records the regularisation chosen, the search and the sets.

    Raises
    ------
    UserError
        ``train`` or ``test`` is neither a SPEC nor a dataset; ``val_proportion`` is not in
        (0, 1); ``precision`` is not ``auto``, ``fp32`` or ``bf16``; ``model_or_spec`` cannot
        embed (see :func:`sdtools.embed`); or a set's labels do not fit its classes.
    DataError
        A set cannot be opened or carries no usable labels; the two sets name different
        classes; the training set has fewer than two classes; a test class has no training
        image.
    DeviceError
        ``device`` is not one this machine has.
    CheckpointError
        A checkpoint spec that cannot be loaded.

    See Also
    --------
    LinearProbeResult : The result's fields.
    zero_shot : Zero-shot classification of a labelled set.
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
    >>> r = sdtools.linear_probe(path, "synthetic:domain=0,split=train,n=30",
    ...                          "synthetic:domain=0,n=12", task="shape", cache=False,
    ...                          max_iter=100)
    >>> r.labels.size, r.settings["n_train"] + r.settings["n_val"], 0 <= r.top1 <= 100
    (12, 30, True)
    """
    from .data.base import ImageTextData
    from .data.specs import open_data
    from .models.extract import ModelRef, _compute, embed_images

    sets = []
    for d in (train, test):
        if not isinstance(d, (str, ImageTextData)):
            raise UserError(f"data must be a data SPEC or a dataset, got {type(d).__name__}")
        sets.append(open_data(d) if isinstance(d, str) else d)
    (task_tr, (names_tr, ytr)), (_, (names_te, yte)) = _task(sets[0], task), _task(sets[1], task)
    if tuple(names_tr) != tuple(names_te):
        raise DataError(f"the training and test sets name different classes ({len(names_tr)} "
                        f"and {len(names_te)}, first {list(names_tr[:3])} and "
                        f"{list(names_te[:3])}); give both the same classes in the same order")
    ref = ModelRef(model_or_spec, arch, cache)
    kw = dict(cache=cache, cache_dir=cache_dir, progress=progress, precision=precision,
              num_workers=num_workers)
    xtr = embed_images(ref, sets[0], batch_size, device, **kw)
    xte = embed_images(ref, sets[1], batch_size, device, **kw)
    r = probe_features(xtr, ytr, xte, yte, val_proportion=val_proportion, seed=seed,
                       max_iter=max_iter)
    settings = {**r.settings, **ref.info(), "train": sets[0].spec, "test": sets[1].spec,
                "task": task_tr, "precision": precision, **_compute(device, precision)[2]}
    return dataclasses.replace(r, settings=settings)


def probe_cv(image, y, folds: int = 2, seed: int = PROBE_SEED, C: float = 10.0):
    """Cross-validated accuracy (percent) of a logistic regression on one set's L2-normalised
    embeddings, by stratified ``folds``-fold splits (a set without a training split of its
    own, as a run's evaluation sets); None when a class has fewer images than folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    _, counts = np.unique(y, return_counts=True)
    if counts.size < 2 or counts.min() < folds:
        return None
    x = _normed(image)
    hits = 0
    from threadpoolctl import threadpool_limits

    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = LogisticRegression(max_iter=1000, C=C)
        with threadpool_limits(1 if x.size < SMALL_PROBE else None):
            clf.fit(x[tr], y[tr])
        hits += int(np.sum(clf.predict(x[te]) == y[te]))
    return float(100.0 * hits / y.size)


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
