"""The property harness: drawn data shapes and changes, each measure's stated invariants
(:mod:`sdtools.measures.properties`); a few small draws here, many in
``benchmarks/validity.py --properties``."""

import numpy as np
import pytest

from sdtools.measures import properties


def test_drawn_shapes_and_changes_keep_every_stated_invariant():
    misses = []
    kinds = set()
    for s, kind, detail, rows in properties.draws(6, seed=0, max_d=40, budget=8_000):
        kinds.add(kind)
        misses += [(s.text(), kind, detail, r) for r in rows if not r[-1]]
    assert not misses, misses
    assert len(kinds) >= 4  # the draws cover several kinds of change


def test_generated_shapes_are_what_they_say():
    rng = np.random.default_rng(3)
    s = properties.Shape(n=600, d=32, alpha=1.0, cone=0.6, clusters=0, captions=4)
    X, basis, labels = properties.make_data(rng, s)
    assert X.shape == (600, 32) and np.bincount(labels).min() >= 4
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    # every row sits alike on the cone's axis: scaling it keeps the order of all angles
    np.testing.assert_allclose(X @ basis[:, 0], np.sqrt(0.6))
    assert np.mean(X @ X.T) == pytest.approx(0.6, abs=0.1)


def test_groups_too_few_for_the_folds_are_a_stated_refusal():
    """A rotation of rows in two groups: rigidity's held-out folds cannot be made, and the
    harness counts the one-line refusal as the invariant (not a crash, not a number)."""
    rng = np.random.default_rng(0)
    s = properties.draw_shape(rng, 64, 100_000)
    X, _, _ = properties.make_data(rng, s)
    Q, _ = np.linalg.qr(rng.standard_normal((X.shape[1], X.shape[1])))
    rows = properties.check("rotation", X, X @ Q, np.arange(X.shape[0]) % 2, s)
    assert [r for r in rows if r[0] == "rigidity"] == [
        ("rigidity", "refused (too few groups)", "refused", "-", True)]
