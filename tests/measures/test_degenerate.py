"""Degenerate probes are said, not computed: repeated items, a collapsed space, noise-free
rounding against a tiny null, and changes below the inputs' precision."""

import numpy as np
import pytest

import sdtools
from sdtools.measures.planted import captions, clip_like, jitter, plane_rotation, unit


def test_repeated_items_are_counted_once_and_said():
    """Rows listed once per caption (400 images x 5) moved jitter's rigidity by 0.1 and
    silenced the sample-size warning."""
    rng = np.random.default_rng(0)
    X, _ = clip_like(rng, 400, 64, "power")
    B = jitter(X, 10.0, rng)
    once = sdtools.procrustes(X, B, ci=False, residuals=True)
    rep = np.repeat(np.arange(400), 5)
    five = sdtools.procrustes(X[rep], B[rep], ci=False, residuals=True)
    assert five.n == 400
    assert five.rigidity == pytest.approx(once.rigidity, abs=1e-9)
    assert any("1600 of 2000 probe items repeat" in w for w in five.warnings)
    assert any("only 400 probe items" in w for w in five.warnings)  # the size warning is back
    assert five.residual_angles_deg.shape == (2000,)
    np.testing.assert_allclose(five.residual_angles_deg, once.residual_angles_deg[rep])


def test_a_collapsed_space_has_no_rigidity():
    """A checkpoint that maps everything to one direction read rigidity 0.69."""
    rng = np.random.default_rng(1)
    X, _ = clip_like(rng, 500, 32, "power")
    B = np.tile(unit(rng.standard_normal((1, 32))), (500, 1))  # every item on one direction
    fit = sdtools.procrustes(X, B, n_boot=100)
    assert fit.rigidity is None and fit.explained_heldout is None and fit.rigidity_ci is None
    assert any("collapsed" in w for w in fit.warnings)


def test_noise_free_in_step_rotations_are_never_above_their_null():
    """Noise-free draws: rounding of 1e-13 against a null of 1e-27 read "above" in 4 of 12."""
    above = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        V, basis = clip_like(rng, 120, 16, "power")
        T, iot = captions(rng, V, (1, 3))
        R = plane_rotation(basis, [30.0, 15.0])
        c = sdtools.deviation(V, T, V @ R, T @ R, iot).to_dict()["cross_residual"]
        above.append(c["above_null"])
    assert not any(above)


def test_nothing_moved_withholds_the_cross_residual_and_the_heldout_share():
    """A cell trained at lr 1e-12: the cross residual's null read 3,003 and explained_heldout
    -28,857, and a study averaged them."""
    rng = np.random.default_rng(2)
    V, _ = clip_like(rng, 300, 16, "power")
    T, iot = captions(rng, V, (2, 2))
    V, T = V.astype(np.float32), T.astype(np.float32)
    Vb = (V + 1e-9 * rng.standard_normal(V.shape)).astype(np.float32)  # rounding only
    Tb = (T + 1e-9 * rng.standard_normal(T.shape)).astype(np.float32)
    c = sdtools.deviation(V, T, Vb, Tb, iot).to_dict()["cross_residual"]
    assert c["mean"] is None and c["null"] is None and "withheld" in c
    fit = sdtools.procrustes(V, Vb, n_boot=100)
    assert fit.rigidity is None and fit.explained_heldout is None
    assert fit.to_dict()["explained_heldout"] is None
    # captions that move while images stay: the captions' direction still reads
    Tm = unit(jitter(T.astype(np.float64), 5.0, rng) @ plane_rotation(np.eye(16), [20.0]))
    c = sdtools.deviation(V, T, Vb, Tm.astype(np.float32), iot).to_dict()["cross_residual"]
    assert c["image_by_text"] is None and c["text_by_image"] is not None
    assert c["mean"] == c["text_by_image"] and "images moved less" in c["withheld"]
