"""Zero-shot classification and a linear probe on frozen image features, per evaluation set.

Zero-shot follows CLIP_benchmark's protocol: each class's text embedding is the mean of its
prompt templates' normalised embeddings, normalised again; an image is assigned the class of
highest cosine; top-1 accuracy and mean per-class recall are reported in percent. The linear
probe is scikit-learn's logistic regression on the L2-normalised image embeddings, scored by
2-fold stratified cross-validation over the set's images (an evaluation set has no train
split of its own), with a fixed seed.
"""

from __future__ import annotations

import numpy as np
import torch

TEMPLATES = {
    "shape": ("a photo of a {}.", "a {} shape.", "a picture of a {} on a background.",
              "there is a {} in the image."),
    "colour": ("a photo of something {}.", "a {} shape.", "an object coloured {}.",
               "there is something {} in the image."),
}
PROBE_FOLDS = 2
PROBE_SEED = 0


def class_embeddings(loaded, classes, templates, device) -> np.ndarray:
    """(n_classes, D): each class's mean normalised prompt embedding, normalised."""
    model = loaded.model
    out = []
    with torch.inference_mode():
        for c in classes:
            tok = loaded.tokenizer([t.format(c) for t in templates]).to(device)
            f = model.encode_text(tok, normalize=True).float().mean(0)
            out.append((f / f.norm()).cpu().numpy())
    return np.stack(out)


def zero_shot(image: np.ndarray, weights: np.ndarray, y: np.ndarray) -> dict:
    """Top-1 accuracy and mean per-class recall (percent) of nearest-class assignment."""
    pred = np.argmax(image @ weights.T, axis=1)
    present = np.unique(y)
    recall = [np.mean(pred[y == c] == c) for c in present]
    return {"top1": float(100.0 * np.mean(pred == y)),
            "mean_per_class_recall": float(100.0 * np.mean(recall))}


def linear_probe(image: np.ndarray, y: np.ndarray, seed: int = PROBE_SEED) -> float | None:
    """Cross-validated accuracy (percent) of a logistic regression on the features; None when
    a class has fewer images than folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    if counts.size < 2 or counts.min() < PROBE_FOLDS:
        return None
    x = image / np.linalg.norm(image, axis=1, keepdims=True)
    hits = 0
    for train, test in StratifiedKFold(PROBE_FOLDS, shuffle=True, random_state=seed).split(x, y):
        clf = LogisticRegression(max_iter=1000, C=10.0)
        clf.fit(x[train], y[train])
        hits += int(np.sum(clf.predict(x[test]) == y[test]))
    return float(100.0 * hits / y.size)


def classify(loaded, data, image: np.ndarray, device) -> dict:
    """``{task: {"zero_shot": {...}, "linear_probe": accuracy}}`` for the tasks ``data``
    carries (see :meth:`ImageTextData.class_labels`); empty when it carries none."""
    out = {}
    for task, (classes, y) in data.class_labels().items():
        w = class_embeddings(loaded, classes, TEMPLATES.get(task, ("a photo of a {}.",)), device)
        out[task] = {"zero_shot": zero_shot(image, w, y), "linear_probe": linear_probe(image, y)}
    return out
