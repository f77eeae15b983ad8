import json

import numpy as np
import pytest
import torch
from helpers import planted_rotation, unit_rows

import sdtools


def _slow_ranks(V, T, iot):
    """Explicit loop: rank = 1 + number of wrong candidates scoring >= the best true match."""
    S = unit_rows(T) @ unit_rows(V).T
    t2i = []
    for j in range(len(T)):
        pos = S[j, iot[j]]
        t2i.append(1 + sum(S[j, i] >= pos for i in range(len(V)) if i != iot[j]))
    i2t = []
    for i in range(len(V)):
        best = max(S[j, i] for j in range(len(T)) if iot[j] == i)
        i2t.append(1 + sum(S[j, i] >= best for j in range(len(T)) if iot[j] != i))
    return np.array(i2t), np.array(t2i)


def _multi_caption(rng, n_img=30, dim=8):
    counts = rng.integers(1, 5, size=n_img)
    iot = np.repeat(np.arange(n_img), counts)
    rng.shuffle(iot)
    return iot


def _half_vectors(rng, n, dim=8):
    """Unit vectors with four entries +-0.5: every dot product is exact, so ties are exact."""
    out = np.zeros((n, dim))
    for r in range(n):
        idx = rng.choice(dim, 4, replace=False)
        out[r, idx] = rng.choice([-0.5, 0.5], 4)
    return out


def _recall_by_topk(V, T, iot, k):
    """Recall as CLIP_benchmark defines it: a hit when any positive is in the top k."""
    S = unit_rows(T) @ unit_rows(V).T
    pos = np.zeros_like(S, dtype=bool)
    pos[np.arange(len(T)), iot] = True
    top_t = np.argsort(-S, axis=1)[:, :k]
    t2i = np.mean([pos[j, top_t[j]].any() for j in range(len(T))]) * 100
    top_i = np.argsort(-S.T, axis=1)[:, :k]
    i2t = np.mean([pos.T[i, top_i[i]].any() for i in range(len(V))]) * 100
    return i2t, t2i


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_retrieval_matches_slow_loop_with_ties(rng, chunk):
    iot = _multi_caption(rng)
    V = _half_vectors(rng, 30)
    T = _half_vectors(rng, len(iot))
    T[:10] = V[iot[:10]]  # some captions equal to their image
    S = T @ V.T
    assert len(np.unique(S)) < S.size / 10  # plenty of exact ties
    i2t, t2i = _slow_ranks(V, T, iot)
    res = sdtools.retrieval(V, T, iot, ks=(1, 5, 10), chunk_size=chunk)
    np.testing.assert_array_equal(res.i2t_ranks, i2t)
    np.testing.assert_array_equal(res.t2i_ranks, t2i)
    for k in (1, 5, 10):
        assert res.i2t[k] == pytest.approx(100 * np.mean(i2t <= k))
        assert res.t2i[k] == pytest.approx(100 * np.mean(t2i <= k))
    assert res.t2i_median_rank == np.median(t2i)


def test_retrieval_matches_topk_definition_without_ties(rng):
    iot = _multi_caption(rng, n_img=40)
    V = rng.normal(size=(40, 16))
    T = V[iot] + 1.2 * rng.normal(size=(len(iot), 16))
    res = sdtools.retrieval(torch.tensor(V), torch.tensor(T), torch.tensor(iot), ks=(1, 3, 5))
    for k in (1, 3, 5):
        i2t, t2i = _recall_by_topk(V, T, iot, k)
        assert res.i2t[k] == pytest.approx(i2t)
        assert res["t2i"][k] == pytest.approx(t2i)
    assert 0 < res.t2i[1] < 100  # neither trivial nor hopeless


def test_collapsed_model_is_not_rewarded_for_ties():
    V = np.ones((10, 4))
    T = np.ones((20, 4))
    res = sdtools.retrieval(V, T, np.repeat(np.arange(10), 2))
    assert res.t2i[1] == 0.0 and res.i2t[1] == 0.0
    assert res.t2i_mean_rank == 10.0 and res.i2t_mean_rank == 19.0


def test_retrieval_perfect_and_json(rng):
    V = unit_rows(rng.normal(size=(25, 32)))
    iot = np.repeat(np.arange(25), 5)
    res = sdtools.retrieval(V, V[iot] + 1e-3 * rng.normal(size=(125, 32)), iot)
    assert res.i2t[1] == 100.0 and res.t2i[1] == 100.0
    assert res.mean_r1 == 100.0
    json.dumps(res.to_dict())


# ------------------------------------------------------------------ deviation


def _paired(rng, n=120, dim=10):
    V = unit_rows(rng.normal(size=(n, dim)))
    iot = np.repeat(np.arange(n), 2)
    T = unit_rows(V[iot] + 0.7 * rng.normal(size=(2 * n, dim)))
    return V, T, iot


def test_deviation_synchronised_rotation_is_zero(rng):
    V, T, iot = _paired(rng)
    R = planted_rotation([80.0, 40.0, 20.0], 10, rng)
    d = sdtools.deviation(V, T, V @ R, T @ R, iot)
    # whole-space unsynchronised rotation is zero; per pair, unsync is the difference of the
    # two per-sample angles (a shared rotation still moves different vectors by different angles)
    np.testing.assert_allclose(
        d.unsync, sdtools.sample_angles(V, V @ R)[iot] - sdtools.sample_angles(T, T @ R),
        atol=1e-9)
    assert np.abs(d.pos_shift).max() < 1e-12
    np.testing.assert_allclose(d.relative_angles_deg, 0.0, atol=1e-6)
    np.testing.assert_array_equal(d.t2i_rank_a, d.t2i_rank_b)
    top1 = d.top1_changes()
    assert top1["t2i"]["lost"] == top1["t2i"]["gained"] == 0
    assert d.gap_a == pytest.approx(d.gap_b)
    assert d.image_angles.mean() > 10  # each space did rotate


def test_deviation_text_only_rotation_gives_planted_angles(rng):
    V, T, iot = _paired(rng)
    planted = [80.0, 40.0, 20.0]
    R = planted_rotation(planted, 10, rng)
    d = sdtools.deviation(V, T, V, T @ R, iot)
    np.testing.assert_allclose(d.relative_angles_deg, [80.0, 40.0, 20.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(d.image_angles, 0.0, atol=1e-9)
    np.testing.assert_allclose(d.unsync, -sdtools.sample_angles(T, T @ R), atol=1e-9)
    np.testing.assert_allclose(d.pos_sim_b, np.sum(V[iot] * unit_rows(T @ R), 1), atol=1e-12)
    top1 = d.top1_changes()
    assert top1["t2i"]["lost"] > 0
    assert (d.t2i_rank_b.mean() > d.t2i_rank_a.mean())
    gap = np.linalg.norm(V.mean(0) - unit_rows(T @ R).mean(0))
    assert d.gap_b == pytest.approx(gap)
    json.dumps(d.to_dict())


def test_mean_r1_interval_resamples_images_with_their_captions(rng):
    """The interval of (i2t R@1 + t2i R@1) / 2 equals a slow loop over resampled images (the
    run report averaged the two directions' bounds, which is no interval of the mean)."""
    V = rng.standard_normal((40, 8))
    iot = np.repeat(np.arange(40), 3)
    T = V[iot] + 1.5 * rng.standard_normal((120, 8))
    r = sdtools.retrieval(V, T, iot, ci=True, n_boot=200, seed=3)
    gen = np.random.default_rng(3)
    vals = []
    for _ in range(200):
        draw = gen.integers(0, 40, size=40, dtype=np.int32)
        caps = np.concatenate([np.flatnonzero(iot == i) for i in draw])
        vals.append(50 * (np.mean(r.i2t_ranks[draw] <= 1) + np.mean(r.t2i_ranks[caps] <= 1)))
    lo, hi = np.quantile(vals, [0.025, 0.975])
    assert r.mean_r1_ci.low == pytest.approx(lo) and r.mean_r1_ci.high == pytest.approx(hi)
    assert r.mean_r1_ci.low <= r.mean_r1 <= r.mean_r1_ci.high
