"""The linear probe: logistic regression on a CLIP checkpoint's frozen image features.

The probe fits scikit-learn's logistic regression (L-BFGS, multinomial) on the L2-normalised
image embeddings of a training set. Its L2 regularisation is chosen on a validation split of
the training set with CLIP_benchmark's search: a grid of 97 strengths ``lambda`` log-spaced
over [1e-6, 1e2], first 7 of them (every 16th), then the best one's neighbours at spans 8, 4,
2, 1 (the first best kept on a tie); the model is then refitted on training + validation data
and scored on the test set. scikit-learn's ``C`` for a strength ``lambda`` on ``n`` training
items is ``1 / (lambda * n)`` (its loss is summed over items, the penalty is ``|w|^2 / 2``: the
mean loss plus ``lambda / 2 * |w|^2``).

Scores and label checks are zero-shot classification's (:mod:`sdtools.zeroshot`);
:func:`probe_features` is pure arrays in, results out.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import DataError, UserError
from .zeroshot import _check_labels, _mean_recall, _task, _topk_hits

PROBE_GRID = np.logspace(-6, 2, num=97)  # lambda: CLIP_benchmark's weight-decay grid
PROBE_VAL = 0.2
PROBE_SEED = 0
PROBE_MAX_ITER = 1000
SMALL_PROBE = 2_000_000  # features (items x dims) below which the solver runs on one thread


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
