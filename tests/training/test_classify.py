"""Zero-shot classification and the linear probe in runs: known answers on planted features,
and the synthetic stream's shape and colour labels."""

import numpy as np
import pytest
from helpers import tiny_model

from modx.classify import classify
from sdtools.classify import probe_cv, zero_shot_scores
from sdtools.data.specs import open_data


def test_zero_shot_picks_the_nearest_class_and_recall_is_per_class():
    W = np.eye(3, 4)
    img = np.array([[1, 0.1, 0, 0], [0, 1, 0.2, 0], [0, 0, 1, 0], [0.9, 1, 0, 0]])
    y = np.array([0, 1, 2, 0])  # the last image is nearer class 1
    r = zero_shot_scores(img, W, y)
    assert r.top1 == pytest.approx(75.0)
    assert r.mean_per_class_recall == pytest.approx(100 * (0.5 + 1 + 1) / 3)
    assert r.top5 is None  # fewer than 5 classes, as CLIP_benchmark
    assert r.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_linear_probe_separates_what_is_separable_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    centres = rng.standard_normal((3, 8)) * 3
    x = centres[y] + 0.3 * rng.standard_normal((120, 8))
    assert probe_cv(x, y) > 95
    assert probe_cv(rng.standard_normal((120, 8)), y) < 60  # chance is 33%
    assert probe_cv(x[:3], y[:3]) is None  # a class with fewer images than folds


def test_synthetic_labels_and_classify_on_a_model():
    data = open_data("synthetic:n=30,domain=0")
    labels = data.class_labels()
    assert set(labels) == {"shape", "colour"}
    names, y = labels["shape"]
    assert y.shape == (data.n_images,) and y.max() < len(names)
    sub = data.subset(np.arange(10))
    np.testing.assert_array_equal(sub.class_labels()["colour"][1], labels["colour"][1][:10])
    assert sub.class_templates("shape") == data.class_templates("shape")
    assert all("{c}" in t for t in data.class_templates("colour"))
    loaded, _ = tiny_model(0)
    img = np.random.default_rng(0).standard_normal((data.n_images, 32))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    out = classify(loaded, data, img, "cpu")
    for task in ("shape", "colour"):
        assert 0 <= out[task]["zero_shot"]["top1"] <= 100
        assert 0 <= out[task]["linear_probe"] <= 100
    off = classify(loaded, data, img, "cpu", linear_probe=False)  # linear_probe = false
    assert all(off[t]["linear_probe"] is None for t in off)
    assert all(off[t]["zero_shot"] == out[t]["zero_shot"] for t in off)
    assert classify(loaded, open_data("synthetic:n=4").subset([0]), img[:1], "cpu") != {}
