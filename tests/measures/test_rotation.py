import itertools

import numpy as np
import pytest
import scipy.linalg
import torch
from helpers import planted_rotation, unit_rows

import sdtools

ANGLES = [170.0, 120.0, 75.0, 30.0, 10.0, 1.0, 0.1]


def test_sample_angles_known_values_and_edges():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [1.0, 1e-9]])
    b = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    ang = sdtools.sample_angles(a, b)
    assert not np.isnan(ang).any()
    np.testing.assert_allclose(ang[:4], [0.0, 90.0, 180.0, 45.0], atol=1e-12)
    # accurate near zero, where arccos(dot) would give 0 or a rounding artefact
    np.testing.assert_allclose(ang[4], np.degrees(1e-9), rtol=1e-6)


def test_sample_angles_torch_and_numpy_agree(rng):
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    np.testing.assert_allclose(
        sdtools.sample_angles(torch.from_numpy(a), torch.from_numpy(b)),
        np.degrees(np.arccos(np.sum(unit_rows(a) * unit_rows(b), 1))),
        atol=1e-9,
    )


def test_rad_summary_histogram(rng):
    a = unit_rows(rng.normal(size=(300, 6)))
    b = unit_rows(rng.normal(size=(300, 6)))
    s = sdtools.rad(a, b)
    ang = sdtools.sample_angles(a, b)
    assert s.histogram == tuple(np.histogram(ang, bins=np.arange(0, 181, 15))[0])
    assert s.mean == pytest.approx(ang.mean())
    assert s.share_above[90.0] == pytest.approx(np.mean(ang > 90))


@pytest.mark.parametrize("dim", [16, 17])
def test_planted_rotation_recovered(rng, dim):
    R0 = planted_rotation(ANGLES, dim, rng)
    A = unit_rows(rng.normal(size=(400, dim)))
    res = sdtools.procrustes(A, A @ R0, residuals=True)
    expect = sorted(ANGLES + [0.0] * (dim // 2 - len(ANGLES)), reverse=True)
    np.testing.assert_allclose(res.angles_deg, expect, atol=1e-6)
    assert res.det == pytest.approx(1.0)
    assert not res.reflection
    assert res.explained == pytest.approx(1.0, abs=1e-12)
    assert res.residual_angles_deg.max() < 1e-6
    np.testing.assert_allclose(res.rotation, R0, atol=1e-10)
    assert res.geodesic_deg == pytest.approx(np.sqrt(np.sum(np.square(ANGLES))), abs=1e-6)
    assert res.rank == dim and res.explained_heldout == pytest.approx(1.0, abs=1e-5)
    assert res.rigidity == pytest.approx(1.0, abs=1e-5)


def test_planted_reflection_gives_det_minus_one(rng):
    R0 = planted_rotation([40.0, 20.0], 9, rng, reflect=True)
    A = unit_rows(rng.normal(size=(200, 9)))
    res = sdtools.procrustes(A, A @ R0)
    assert res.det == pytest.approx(-1.0)
    assert res.reflection
    np.testing.assert_allclose(res.angles_deg, [40.0, 20.0, 0.0, 0.0], atol=1e-6)
    assert res.explained == pytest.approx(1.0, abs=1e-12)


def test_noise_lowers_explained(rng):
    R0 = planted_rotation([60.0, 45.0, 30.0], 12, rng)
    A = unit_rows(rng.normal(size=(500, 12)))
    noise = rng.normal(size=A.shape)
    explained = [
        sdtools.procrustes(A, unit_rows(A @ R0 + s * noise)).explained
        for s in (0.0, 0.05, 0.2, 0.6)
    ]
    assert explained[0] == pytest.approx(1.0)
    assert all(x > y for x, y in itertools.pairwise(explained))
    assert explained[-1] < 0.9


def test_procrustes_matches_scipy(rng):
    """Where every direction is determined the fit is scipy's full fit."""
    A = unit_rows(rng.normal(size=(300, 10)))
    B = unit_rows(A @ planted_rotation([40.0], 10, rng) + 0.1 * rng.normal(size=A.shape))
    res = sdtools.procrustes(A, B, residuals=True)
    assert res.rank == 10
    R, _ = scipy.linalg.orthogonal_procrustes(A, B)
    np.testing.assert_allclose(res.rotation, R, atol=1e-10)
    left = np.sum((A @ R - B) ** 2)
    assert res.explained == pytest.approx(1 - left / np.sum((A - B) ** 2))
    resid = np.degrees(np.arccos(np.clip(np.sum(unit_rows(A @ R) * B, 1), -1, 1)))
    np.testing.assert_allclose(res.residual_angles_deg, resid, atol=1e-6)


def test_procrustes_float32_torch_input(rng):
    R0 = planted_rotation([50.0, 5.0], 8, rng)
    A = unit_rows(rng.normal(size=(300, 8)))
    res = sdtools.procrustes(torch.tensor(A, dtype=torch.float32),
                             torch.tensor(A @ R0, dtype=torch.float32))
    np.testing.assert_allclose(res.angles_deg, [50.0, 5.0, 0.0, 0.0], atol=1e-3)
    assert res.explained > 0.99999


def test_procrustes_centered(rng):
    R0 = planted_rotation([30.0], 6, rng)
    A = unit_rows(rng.normal(size=(200, 6)) + 2.0)
    res = sdtools.procrustes(A, A @ R0, center=True)
    np.testing.assert_allclose(res.angles_deg, [30.0, 0.0, 0.0], atol=1e-6)
    assert res.centered
    assert res.to_dict()["centered"] is True


def test_principal_angles_of_identity_and_half_turns():
    ang, refl = sdtools.principal_angles(np.eye(5))
    np.testing.assert_allclose(ang, [0.0, 0.0])
    assert not refl
    ang, refl = sdtools.principal_angles(-np.eye(4))  # two 180-degree planes
    np.testing.assert_allclose(ang, [180.0, 180.0])
    assert not refl


# ------------------------------------------------------------------ SAM drift


def _slow_drift(A, B):
    A, B = unit_rows(A), unit_rows(B)
    out = []
    n = len(A)
    for i in range(n):
        for j in range(i + 1, n):
            sa = np.degrees(np.arccos(np.clip(A[i] @ A[j], -1, 1)))
            sb = np.degrees(np.arccos(np.clip(B[i] @ B[j], -1, 1)))
            out.append(abs(sa - sb))
    return np.array(out)


def test_rigid_rotation_has_no_drift_but_large_rad(rng):
    R0 = planted_rotation([150.0, 100.0, 80.0, 60.0], 10, rng)
    A = unit_rows(rng.normal(size=(300, 10)))
    B = A @ R0
    assert sdtools.sam_drift(A, B).mean < 1e-5
    assert sdtools.sam_drift(A, B).max < 1e-4
    assert sdtools.sample_angles(A, B).mean() > 30.0


def test_non_rigid_change_has_drift(rng):
    A = unit_rows(rng.normal(size=(300, 10)))
    B = unit_rows(A + 0.4 * rng.normal(size=A.shape))
    assert sdtools.sam_drift(A, B).mean > 2.0


def test_sam_drift_matches_double_loop_and_chunking(rng):
    A = rng.normal(size=(61, 5))
    B = A + 0.3 * rng.normal(size=A.shape)
    ref = _slow_drift(A, B)
    full = sdtools.sam_drift(A, B, chunk_size=10_000)
    small = sdtools.sam_drift(A, B, chunk_size=7)
    for r in (full, small):
        assert r.exact and r.n_pairs == len(ref) == 61 * 60 // 2
        assert r.mean == pytest.approx(ref.mean(), rel=1e-9)
        assert r.std == pytest.approx(ref.std(ddof=1), rel=1e-7)
        assert r.max == pytest.approx(ref.max(), rel=1e-9)
        # quantiles come from a 0.01-degree histogram: they lie between the order statistics
        # around the quantile's position, to within one fine bin
        srt = np.sort(ref)
        for q, got in ((0.5, r.median), (0.95, r.quantiles[0.95]), (0.25, r.quantiles[0.25])):
            lo = srt[int(np.floor(q * (len(srt) - 1)))]
            hi = srt[min(int(np.ceil(q * len(srt))), len(srt) - 1)]
            assert lo - 0.011 <= got <= hi + 0.011
        assert r.histogram == tuple(np.histogram(ref, bins=r.bin_edges)[0])
    assert small.histogram == full.histogram
    # per-item terms of the interval: item i's mean drift to every other item, from the loop
    n = 61
    mat = np.zeros((n, n))
    mat[np.triu_indices(n, 1)] = ref
    h = (mat + mat.T).sum(1) / (n - 1)
    want = sdtools.Summary.of(2 * h - ref.mean(), ci=True, n_boot=300, seed=4).mean_ci
    for cs in (7, 10_000):
        got = sdtools.sam_drift(A, B, chunk_size=cs, ci=True, n_boot=300, ci_seed=4).mean_ci
        assert (got.low, got.high) == pytest.approx((want.low, want.high), rel=1e-9)
    assert full.mean_ci is None  # not asked for


def test_sam_drift_sampled_estimate_within_four_stderr(rng):
    A = rng.normal(size=(400, 16)).astype(np.float32)
    B = A + 0.5 * rng.normal(size=A.shape).astype(np.float32)
    exact = sdtools.sam_drift(A, B)
    est = sdtools.sam_drift(A, B, max_pairs=5000, seed=3)
    assert not est.exact and est.n_pairs == 5000 and est.stderr > 0
    assert abs(est.mean - exact.mean) < 4 * est.stderr
    again = sdtools.sam_drift(A, B, max_pairs=5000, seed=3)
    assert again.mean == est.mean  # deterministic by seed
    # asking for more pairs than exist falls back to the exact computation
    assert sdtools.sam_drift(A[:20], B[:20], max_pairs=10**6).exact


def test_sam_drift_sampled_quantiles_sit_at_their_share_of_every_pair(rng):
    """The sampled path's quantiles (from 0.01-degree counts of the drawn pairs): the share of
    all N(N-1)/2 drifts, computed explicitly, below each lies within sampling error of p."""
    A = rng.normal(size=(300, 12))
    B = A + 0.4 * rng.normal(size=A.shape)

    def angles(X):
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        return np.degrees(np.arccos(np.clip(X @ X.T, -1, 1)))[np.triu_indices(len(X), 1)]

    every = np.abs(angles(A) - angles(B))
    est = sdtools.sam_drift(A, B, max_pairs=30_000, seed=5, quantiles=(0.1, 0.5, 0.9))
    assert not est.exact
    for p, q in est.quantiles.items():
        assert abs((every <= q).mean() - p) < 0.02, (p, q)
    assert abs(est.median - est.quantiles[0.5]) < 1e-12
    assert est.max <= every.max() + 1e-4 and sum(est.histogram) == 30_000


def test_results_are_json(rng):
    import json

    A = rng.normal(size=(40, 6))
    B = rng.normal(size=(40, 6))
    for r in (sdtools.sam_drift(A, B), sdtools.procrustes(A, B), sdtools.rad(A, B),
              sdtools.sam_drift(A, B, max_pairs=100)):
        json.dumps(r.to_dict())


def test_noise_free_rotation_in_the_weakest_planes_of_a_steep_spectrum_reads_rigidity_1():
    """A power-law spectrum spanning 1e-5 of the top direction, with a cone: the held-out fold
    fits must resolve the weakest directions (float32 fold SVDs read 0.97 here)."""
    from sdtools.measures.planted import plane_rotation
    from sdtools.measures.properties import Shape, make_data

    X, basis, _ = make_data(np.random.default_rng(3), Shape(1200, 256, 1.8, 0.84, 0, 1))
    fit = sdtools.procrustes(X, X @ plane_rotation(basis, [60, 40, 20, 10], "low"), ci=False)
    assert fit.rank == 256
    assert fit.rigidity > 1 - 1e-6
    assert fit.explained_heldout > 1 - 1e-6
