"""Validity on planted truths shaped like CLIP embeddings: cones, power-law spectra, rotations
in low-variance planes, tiny changes, captions sharing images (the full grid with its table
is ``benchmarks/validity.py``)."""

import numpy as np
import pytest
import torch
from helpers import planted_rotation

import sdtools
from sdtools.errors import InputError
from sdtools.measures import summary
from sdtools.measures.planted import captions, clip_like, jitter, plane_rotation, unit

ANGLES = [80.0, 45.0, 20.0]
SHAPES = [("iso", 0.0), ("power", 0.0), ("power", 0.8)]  # the last: a cone of mean cos 0.8


@pytest.mark.parametrize("shape,cone", SHAPES)
@pytest.mark.parametrize("where", ["high", "low"])
@pytest.mark.parametrize("n,d", [(128, 64), (640, 64)])
def test_planted_rotation_read_back_on_clip_shaped_data(shape, cone, where, n, d):
    """A rotation in the weakest planes of a decaying spectrum was read as [57, 42, 28] when
    the rank kept 99% of the energy; a determinacy rule keeps those planes."""
    rng = np.random.default_rng(7)
    X, basis = clip_like(rng, n, d, shape, cone)
    fit = sdtools.procrustes(X, jitter(X @ plane_rotation(basis, ANGLES, where), 2.0, rng),
                             ci=False)
    np.testing.assert_allclose(fit.angles_deg[:3], ANGLES, atol=3.0 if n >= 4 * d else 10.0)
    assert fit.rigidity > 0.5


def test_weak_planes_at_scale_and_a_cone_keep_their_rank():
    rng = np.random.default_rng(1)
    X, basis = clip_like(rng, 6400, 64, "power")
    fit = sdtools.procrustes(X, jitter(X @ plane_rotation(basis, ANGLES, "low"), 3.0, rng),
                             ci=False)
    assert fit.rank == 64
    np.testing.assert_allclose(fit.angles_deg[:3], ANGLES, atol=1.0)
    # an almost untrained checkpoint: everything in a tight cone (mean cosine 0.99)
    X, basis = clip_like(rng, 3000, 32, "power", cone=0.99)
    fit = sdtools.procrustes(X, X @ plane_rotation(basis, [30.0], "low"), ci=False)
    assert fit.rank == 32
    assert fit.angles_deg[0] == pytest.approx(30.0, abs=1e-6)


def test_determinacy_depends_on_rows_and_noise_not_on_variance():
    rng = np.random.default_rng(2)
    # heavy noise on few rows: the weakest directions are not determined, the strongest are
    X, _ = clip_like(rng, 400, 32, "power", alpha=2.0)
    fit = sdtools.procrustes(X, jitter(X, 40.0, rng), ci=False)
    assert 0 < fit.rank < 32
    # the same spectrum with many rows and little noise: every direction is
    X, _ = clip_like(rng, 20000, 32, "power", alpha=2.0)
    assert sdtools.procrustes(X, jitter(X, 2.0, rng), ci=False).rank == 32
    # below N = 2 D: nothing truncated, a warning instead
    X, _ = clip_like(rng, 90, 64, "iso")
    fit = sdtools.procrustes(X, jitter(X, 20.0, rng), ci=False)
    assert fit.rank == 64 and "only 90 probe items for 64 dimensions" in fit.warnings[0]


def _rank10(rng, n, d):
    """Images of rank 10; captions near them, with a little spread in every direction."""
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :10]
    V = unit(rng.standard_normal((n, 10)) @ basis.T)
    iot = np.repeat(np.arange(n), 3)
    T = unit(V[iot] + 0.3 * unit(rng.standard_normal((3 * n, d))))
    return V, T, iot, basis


@pytest.mark.parametrize("angles", [[60.0, 40.0, 20.0], [90.0, 90.0, 60.0, 60.0, 30.0]])
def test_one_shared_rotation_has_no_relative_rotation(angles):
    """Composed in the wrong space, one exact shared rotation read 6-22 degrees: the fits
    are known on the data's span in a-space, which the rotation carries elsewhere in b."""
    rng = np.random.default_rng(3)
    V, T, iot, _ = _rank10(rng, 600, 32)
    R = planted_rotation(angles, 32, rng)  # planes in the whole space, not the data's span
    d = sdtools.deviation(V, T, V @ R, T @ R, iot).to_dict()
    assert d["relative_rotation"]["rank"] == 10
    assert d["relative_rotation"]["max_angle"] < 1e-6
    assert abs(d["cross_residual"]["mean"]) < 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_modality_turned_reads_its_planted_angles(seed):
    """An energy cut and a cosine cut shrank these to 70-78 / 30-43 / 14-15 (isotropic) and
    [22, 6, 0] (weak planes of a power law)."""
    rng = np.random.default_rng(seed)
    V, basis = clip_like(rng, 600, 16, "iso")
    T = unit(V + 0.5 * rng.standard_normal(V.shape))
    R = plane_rotation(basis, ANGLES)
    ang = sdtools.deviation(V, T, V, T @ R, np.arange(600)).to_dict()["relative_rotation"]
    np.testing.assert_allclose(ang["angles_deg"][:3], ANGLES, atol=0.5)
    V, basis = clip_like(rng, 4000, 64, "power")
    T, iot = captions(rng, V)
    R = plane_rotation(basis, ANGLES, "low")
    ang = sdtools.deviation(V, T, V, T @ R, iot).to_dict()["relative_rotation"]
    np.testing.assert_allclose(ang["angles_deg"][:3], ANGLES, atol=1.0)


def test_intervals_over_captions_resample_images():
    """Captions of one image share its change: the caption-level intervals must be those of a
    bootstrap over images with all their captions (checked against a slow explicit loop)."""
    rng = np.random.default_rng(4)
    iot = np.repeat(np.arange(30), rng.integers(3, 6, 30))
    v = rng.normal(size=30)[iot] + 0.1 * rng.normal(size=iot.size)
    boot = summary.cluster_means(v, iot, n_boot=200, seed=5)
    gen = np.random.default_rng(5)
    slow = []
    for _ in range(200):
        draw = gen.integers(0, 30, size=30, dtype=np.int32)
        slow.append(np.concatenate([v[iot == i] for i in draw]).mean())
    np.testing.assert_allclose(boot, slow, rtol=1e-12)
    naive = summary.mean_interval(v)
    clustered = summary.mean_interval(v, clusters=iot)
    assert clustered.high - clustered.low > 1.4 * (naive.high - naive.low)


@pytest.mark.slow
def test_interval_coverage_with_captions_sharing_images():
    """Positive-pair shift and text-to-image recall intervals covered the truth in 57-80% of
    probes when they resampled captions; resampling images brings them to 85-100%."""
    rng = np.random.default_rng(5)
    n, d, draws = 120, 16, 60
    big, _ = clip_like(np.random.default_rng(99), 60 * n, d, "power")
    truth = _shift(big, rng)[0].pos_shift.mean()
    hits = 0
    for _ in range(draws):
        V, _ = clip_like(rng, n, d, "power")
        dv, _ = _shift(V, rng)
        iv = dv.to_dict()["pos_shift"]["mean_ci"]
        hits += iv["low"] <= truth <= iv["high"]
    assert 0.85 * draws <= hits <= draws


def _shift(V, rng):
    T, iot = captions(rng, V, spread=0.8)
    eff = np.abs(rng.normal(0.0, 8.0, size=V.shape[0]))  # each image its own change
    return sdtools.deviation(V, T, jitter(V, eff, rng), jitter(T, eff[iot] + 1.0, rng), iot), iot


def test_tiny_change_reads_rotation_and_rounding_does_not():
    """Float32 fold fits drowned a 0.01-degree rotation (rigidity 0 [0, 0], null_heldout in
    the thousands); a bf16 re-save read as a rotation (rigidity 0.82)."""
    rng = np.random.default_rng(6)
    X, basis = clip_like(rng, 3000, 32, "power", cone=0.8)
    A = X.astype(np.float32)
    B = (X @ plane_rotation(basis, [0.01])).astype(np.float32)
    fit = sdtools.procrustes(A, B)
    assert fit.angles_deg[0] == pytest.approx(0.01, abs=5e-4)
    assert fit.rigidity > 0.99 and fit.rigidity_ci.low > 0.99
    assert -1.0 < fit.null_heldout < 0.1
    half = torch.from_numpy(A).bfloat16().float().numpy()
    fit = sdtools.procrustes(A, half)
    assert fit.precision == "bfloat16" and fit.rigidity is None and fit.rigidity_ci is None
    assert "rounding, not a rotation" in fit.warnings[-1]
    # told the embeddings came from fp16 weights, a change under its floor is not judged
    small = unit(X @ plane_rotation(basis, [0.02], "high"))
    assert sdtools.procrustes(X, small, precision="float16").rigidity is None
    assert sdtools.procrustes(X, small).rigidity > 0.99


def test_centred_fit_has_a_centred_null_and_folds_are_checked():
    rng = np.random.default_rng(8)
    X, _ = clip_like(rng, 2000, 32, "power", cone=0.8)
    fit = sdtools.procrustes(X, jitter(X, 15.0, rng), center=True, ci=False)
    assert abs(fit.rigidity) < 0.1  # an uncentred null read -0.14
    for bad in (1, 0, 2.5, True):
        with pytest.raises(InputError, match="folds"):
            sdtools.procrustes(X, X, folds=bad)


@pytest.mark.parametrize("n_img", [60, 400])
def test_cross_residual_has_a_calibrated_null(n_img):
    """Under one shared rotation with jitter the residual read 0.01-0.19 at 60 images and
    0.002-0.03 at 400 against a fixed 0.05 threshold; the null follows the probe's size."""
    rng = np.random.default_rng(9)
    values, nulls, above = [], [], 0
    for _ in range(4):
        V, basis = clip_like(rng, n_img, 32, "power")
        T, iot = captions(rng, V)
        R = plane_rotation(basis, [40.0, 20.0])
        c = sdtools.deviation(V, T, jitter(V @ R, 15.0, rng), jitter(T @ R, 15.0, rng),
                              iot).to_dict()["cross_residual"]
        values.append(c["mean"])
        nulls.append(c["null"]["mean"]["value"])
        above += c["above_null"]
    ratio = np.mean(values) / np.mean(nulls)
    assert (0.7 if n_img >= 400 else 0.1) < ratio < 1.4  # small probes: the null is cautious
    assert above <= 1
    if n_img < 400:
        return
    # out of step: captions turned 30 degrees more than images, well above the null
    V, basis = clip_like(rng, n_img, 32, "power")
    T, iot = captions(rng, V)
    R = plane_rotation(basis, [40.0, 20.0])
    other = plane_rotation(basis, [30.0], "low")
    c = sdtools.deviation(V, T, jitter(V @ R, 15.0, rng), jitter(T @ R @ other, 15.0, rng),
                          iot).to_dict()["cross_residual"]
    assert c["above_null"] and c["excess"] > 0


def test_cross_residual_is_none_when_nothing_is_determined():
    rng = np.random.default_rng(10)
    V, T = unit(rng.standard_normal((200, 32))), unit(rng.standard_normal((200, 32)))
    Vb, Tb = unit(rng.standard_normal((200, 32))), unit(rng.standard_normal((200, 32)))
    d = sdtools.deviation(V, T, Vb, Tb, np.arange(200)).to_dict()
    assert d["relative_rotation"]["rank"] == 0
    assert d["cross_residual"]["mean"] is None  # was 0.0: "in step"


@pytest.mark.slow
@pytest.mark.parametrize("shape,cone", SHAPES)
def test_topology_kept_is_one_for_rotation_and_zero_for_every_jitter(shape, cone):
    rng = np.random.default_rng(11)
    X, basis = clip_like(rng, 600, 64, shape, cone)
    R = plane_rotation(basis, ANGLES)
    other = clip_like(rng, len(X), 64, shape, cone)[0]
    assert sdtools.topology_kept(X, X @ R).topology_kept == pytest.approx(1.0, abs=1e-9)
    kinds = {
        "isotropic": jitter(X, 20.0, rng),
        "per-sample size": jitter(X, rng.uniform(1.0, 40.0, len(X)), rng),
        "in 8 fixed dims": unit(X + 0.3 * rng.standard_normal((len(X), 8))
                                @ np.linalg.qr(rng.standard_normal((64, 8)))[0].T),
        "shaped like the data": unit(X + 0.3 * (other - other.mean(0))),
    }
    for kind, B in kinds.items():
        top = sdtools.topology_kept(X, B)
        assert abs(top.topology_kept) < 0.05, kind
        assert top.drift > 0
    top = sdtools.topology_kept(X, jitter(X @ R, 5.0, rng))
    assert 0.3 < top.topology_kept < 0.97  # rotation with some jitter: in between


def test_topology_pairs_exact_below_the_cap_and_sampled_above():
    rng = np.random.default_rng(12)
    X = unit(rng.standard_normal((100, 8)))
    B = jitter(X, 10.0, rng)
    exact = sdtools.topology_kept(X, B)
    assert exact.exact and exact.n_pairs == 100 * 99 // 2
    # the drift over every pair equals the SAM drift mean
    assert exact.drift == pytest.approx(sdtools.sam_drift(X, B).mean, rel=1e-3)
    est = sdtools.topology_kept(X, B, max_pairs=2000)
    assert not est.exact and est.n_pairs == 2000
    assert est.topology_kept == pytest.approx(exact.topology_kept, abs=0.1)


def test_bootstrap_memory_is_flat_and_draws_do_not_depend_on_the_block(monkeypatch):
    v = np.random.default_rng(13).normal(size=(5000, 2))
    full = summary.bootstrap_means(v, 300, 3)
    monkeypatch.setattr(summary, "BLOCK_DRAWS", 7000)  # one resample per block
    np.testing.assert_allclose(summary.bootstrap_means(v, 300, 3), full, rtol=1e-12)
    with pytest.raises(InputError, match="n_boot"):
        summary.bootstrap_means(v, 0, 3)
