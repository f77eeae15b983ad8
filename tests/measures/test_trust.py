"""Known answers for what the measures mean: zero when nothing changed, rotation-like only when
the change is a rotation, reflections only when real, intervals that cover the truth."""

import math

import numpy as np
import pytest
import torch
from helpers import planted_rotation, unit_rows

import sdtools
from sdtools.measures.sam import SAM_EDGES, _DriftAccumulator


def _jitter(X, deg, rng):
    """Turn every row by ``deg`` degrees towards a random perpendicular direction."""
    E = rng.standard_normal(X.shape)
    E -= (E * X).sum(1, keepdims=True) * X
    E = unit_rows(E)
    t = np.radians(deg)
    return np.cos(t) * X + np.sin(t) * E


def _low_rank(rng, n, r, d, floor=0.02):
    basis = np.linalg.qr(rng.standard_normal((d, r)))[0]
    return unit_rows(rng.standard_normal((n, r)) @ basis.T + floor * rng.standard_normal((n, d)))


def test_identical_inputs_with_fewer_samples_than_dimensions(rng):
    A = rng.standard_normal((20, 64))
    fit = sdtools.procrustes(A, A)
    assert fit.max_angle < 1e-6  # no noise reported as rotation outside the data's span
    assert fit.det == 1.0 and not fit.reflection
    assert fit.rank <= 20
    assert fit.warnings and "only 20 probe items" in fit.warnings[0]


def test_rotation_outside_the_probe_span_is_not_reported(rng):
    """Data in 6 of 32 dimensions; a rotation that only moves the other 26 is invisible."""
    basis = np.linalg.qr(rng.standard_normal((32, 32)))[0]
    A = unit_rows(rng.standard_normal((500, 6)) @ basis[:, :6].T)
    hidden = basis[:, 6:] @ planted_rotation([90.0, 60.0], 26, rng) @ basis[:, 6:].T
    R = basis[:, :6] @ basis[:, :6].T + hidden
    fit = sdtools.procrustes(A, A @ R)
    assert fit.rank == 6 and fit.max_angle < 1e-6


@pytest.mark.slow
def test_identical_inputs_give_zero_relative_rotation(rng):
    V = rng.standard_normal((200, 512))
    iot = np.repeat(np.arange(200), 5)
    T = V[iot] + rng.standard_normal((1000, 512))
    d = sdtools.deviation(V, T, V, T, iot).to_dict()
    assert d["relative_rotation"]["max_angle"] < 1e-6
    # nothing moved: the cross residual is a share of rounding, withheld (it read 0.0)
    assert d["cross_residual"]["mean"] is None and "withheld" in d["cross_residual"]


@pytest.mark.parametrize("jitter", [15.0, 30.0])
def test_shared_rotation_with_independent_jitter_stays_near_zero(rng, jitter):
    n, dim = 2000, 64
    V = _low_rank(rng, n, 10, dim)
    iot = np.repeat(np.arange(n), 2)
    T = unit_rows(V[iot] + 0.3 * rng.standard_normal((2 * n, dim)))
    R = planted_rotation([60.0, 40.0, 20.0], dim, rng)
    d = sdtools.deviation(V, T, _jitter(V @ R, jitter, rng), _jitter(T @ R, jitter, rng), iot)
    dd = d.to_dict()
    assert dd["relative_rotation"]["max_angle"] < 10.0  # was 33-65 degrees on all dimensions
    assert dd["relative_rotation"]["rank"] <= 12
    assert abs(dd["cross_residual"]["mean"]) < 0.03


def test_rotations_in_different_planes_are_found(rng):
    n, dim = 1500, 16
    V = unit_rows(rng.standard_normal((n, dim)))
    T = unit_rows(V + 0.3 * rng.standard_normal((n, dim)))
    R1 = planted_rotation([40.0], dim, np.random.default_rng(5))
    R2 = planted_rotation([40.0], dim, np.random.default_rng(6))
    d = sdtools.deviation(V, T, V @ R1, T @ R2, np.arange(n))
    dd = d.to_dict()
    assert dd["relative_rotation"]["max_angle"] > 30.0
    assert dd["cross_residual"]["mean"] > 0.5
    # the per-pair unsync barely sees it, although many top-1 hits are lost
    assert dd["unsync_abs_mean"] < 10.0 and d.top1_changes()["t2i"]["lost"] > 100


def test_pure_jitter_is_not_rotation_like_and_a_rotation_is(rng):
    A = unit_rows(rng.standard_normal((1000, 256)))
    jit = sdtools.procrustes(A, _jitter(A, 30.0, rng))
    assert jit.explained > 0.1  # in sample, a fit of this size explains noise
    assert jit.explained_heldout < 0.0  # held out it does not
    assert abs(jit.rigidity) < 0.1
    A = unit_rows(rng.standard_normal((4000, 32)))
    R = planted_rotation([50.0, 30.0, 20.0, 10.0], 32, rng)
    rot = sdtools.procrustes(A, _jitter(A @ R, 2.0, rng))
    assert rot.rigidity > 0.9 and rot.explained_heldout > 0.9
    big_n = sdtools.procrustes(A, _jitter(A, 30.0, rng))
    assert abs(big_n.rigidity) < 0.05 and abs(big_n.explained) < 0.05


def test_reflection_only_when_significant(rng):
    noisy = []
    for s in range(8):
        X = unit_rows(np.random.default_rng(s).standard_normal((300, 64)))
        noisy.append(sdtools.procrustes(X, _jitter(X, 50.0, rng)).reflection)
    assert not any(noisy)
    R0 = planted_rotation([40.0], 9, rng, reflect=True)
    A = unit_rows(rng.standard_normal((300, 9)))
    fit = sdtools.procrustes(A, _jitter(A @ R0, 5.0, rng))
    assert fit.reflection and fit.det == -1.0


def test_sam_histogram_counts_past_two_to_the_24():
    big = (1 << 24) + 3
    acc = _DriftAccumulator(1, 1, 1, torch.float32, "cpu", per_item=False)
    acc.within(torch.full((big,), math.radians(12.345)), None, 0)
    acc.within(torch.full((5,), math.pi), None, 0)  # exactly pi lands in the last bin
    res = acc.result(2, SAM_EDGES, (0.5,))
    assert res.n_pairs == big + 5 and sum(res.histogram) == big + 5
    assert res.histogram[SAM_EDGES.index(12.0)] == big and res.histogram[-1] == 5
    assert res.max == pytest.approx(180.0) and res.median == pytest.approx(12.345, abs=0.01)


def test_bin_edges_have_no_float_noise(rng):
    V, T = rng.standard_normal((20, 4)), rng.standard_normal((20, 4))
    d = sdtools.deviation(V, T, V, T + 0.1, np.arange(20)).to_dict()
    assert -0.4 in d["pos_shift"]["bin_edges"]
    assert all(len(repr(e)) < 8 for e in d["pos_shift"]["bin_edges"])


def test_bootstrap_intervals_cover_the_truth():
    """95% intervals of a mean and a recall cover the true value in about 95% of draws."""
    rng = np.random.default_rng(3)
    hits = 0
    for s in range(200):
        x = rng.exponential(2.0, size=300)
        ci = sdtools.Summary.of(x, ci=True, n_boot=400, seed=s).mean_ci
        hits += ci.low <= 2.0 <= ci.high
    assert 0.90 <= hits / 200 <= 0.99
    V = unit_rows(rng.standard_normal((400, 8)))
    r = sdtools.retrieval(V, unit_rows(V + 0.6 * rng.standard_normal(V.shape)), np.arange(400),
                          ci=True)
    assert r.i2t_ci[1].low <= r.i2t[1] <= r.i2t_ci[1].high
    assert r.to_dict()["i2t_ci"]["1"]["n_boot"] == 1000


@pytest.mark.slow
def test_procrustes_intervals_cover_the_population_share():
    """Planted rotation plus noise: the population share of the true map (from 2M rows) lies
    in the 95% intervals of explained and held-out explained in about 95% of probes."""
    rng = np.random.default_rng(1)
    d = 8
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))

    def draw(n):
        A = unit_rows(rng.standard_normal((n, d)))
        return A, unit_rows(A @ Q + 0.3 * rng.standard_normal((n, d)))

    A, B = draw(2_000_000)
    truth = 1.0 - np.sum((A @ Q - B) ** 2) / np.sum((A - B) ** 2)
    hits = np.zeros(2)
    for s in range(100):
        fit = sdtools.procrustes(*draw(2000), n_boot=400, ci_seed=s)
        for j, ci in enumerate((fit.explained_ci, fit.explained_heldout_ci)):
            hits[j] += ci.low <= truth <= ci.high
        assert fit.rigidity_ci.low <= fit.rigidity <= fit.rigidity_ci.high
    assert np.all((hits / 100 >= 0.85) & (hits / 100 <= 1.0)), hits
    no_ci = sdtools.procrustes(A[:2000], B[:2000], ci=False)
    with_ci = sdtools.procrustes(A[:2000], B[:2000])
    assert no_ci.explained_ci is None and "explained_ci" not in no_ci.to_dict()
    assert (no_ci.explained, no_ci.explained_heldout) == (with_ci.explained,
                                                          with_ci.explained_heldout)


@pytest.mark.slow
def test_sam_drift_interval_covers_the_population_mean():
    rng = np.random.default_rng(2)

    def draw(n):
        A = unit_rows(rng.standard_normal((n, 5)))
        return A, unit_rows(A + 0.4 * rng.standard_normal((n, 5)))

    A, B = draw(2_000_000)  # independent pairs (2i, 2i+1): the population mean drift
    ang = [np.degrees(np.arccos(np.clip(np.sum(X[0::2] * X[1::2], 1), -1, 1))) for X in (A, B)]
    truth = np.mean(np.abs(ang[0] - ang[1]))
    hits = 0
    for s in range(150):
        ci = sdtools.sam_drift(*draw(150), ci=True, n_boot=400, ci_seed=s).mean_ci
        hits += ci.low <= truth <= ci.high
    assert 0.88 <= hits / 150 <= 0.99, hits


def test_one_shared_orthogonal_map_with_a_reflection_is_in_step(rng):
    """The README's snippet: both modalities moved by one random orthogonal map (here with
    det -1): the reflection is found in both, and the relative rotation is 0."""
    V = rng.standard_normal((400, 64))
    iot = np.repeat(np.arange(400), 5)
    T = V[iot] + 0.5 * rng.standard_normal((2000, 64))
    Q = np.linalg.qr(rng.standard_normal((64, 64)))[0]
    if np.linalg.det(Q) > 0:
        Q[:, 0] = -Q[:, 0]
    d = sdtools.deviation(V, T, V @ Q, T @ Q, iot).to_dict()
    assert d["relative_rotation"]["max_angle"] < 1e-6
    A = rng.standard_normal((2000, 64))
    fit = sdtools.procrustes(A, A @ Q + 0.05 * rng.standard_normal(A.shape))
    assert fit.reflection and fit.explained > 0.99
