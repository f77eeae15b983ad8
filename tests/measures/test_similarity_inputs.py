import numpy as np
import pytest
import torch
from helpers import planted_rotation, unit_rows

import sdtools
from sdtools.errors import InputError
from sdtools.measures.similarity import knn_indices

# ------------------------------------------------------------------ CKA and mutual kNN


def _cka_gram(X, Y, debiased):
    """Reference CKA from explicit N x N Gram matrices."""
    X, Y = unit_rows(X), unit_rows(Y)
    n = len(X)
    K, L = X @ X.T, Y @ Y.T

    def hsic(K, L):
        if not debiased:
            H = np.eye(n) - 1.0 / n
            return np.trace(K @ H @ L @ H)
        K, L = K.copy(), L.copy()
        np.fill_diagonal(K, 0)
        np.fill_diagonal(L, 0)
        one = np.ones(n)
        return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_gram_reference(rng, debiased):
    X = rng.normal(size=(50, 7))
    Y = X @ rng.normal(size=(7, 5)) + rng.normal(size=(50, 5))
    assert sdtools.linear_cka(X, Y, debiased=debiased) == pytest.approx(
        _cka_gram(X, Y, debiased), rel=1e-9
    )


def test_cka_invariant_to_rotation_and_low_for_independent(rng):
    X = rng.normal(size=(200, 8))
    R = planted_rotation([70.0, 30.0], 8, rng)
    assert sdtools.linear_cka(X, X @ R) == pytest.approx(1.0)
    assert sdtools.linear_cka(X, X @ R, debiased=True) == pytest.approx(1.0)
    assert sdtools.linear_cka(X, rng.normal(size=(200, 8)), debiased=True) < 0.1


def test_mutual_knn_matches_loop(rng):
    X = rng.normal(size=(40, 6))
    Y = X + 0.8 * rng.normal(size=X.shape)
    k = 5
    Xn, Yn = unit_rows(X), unit_rows(Y)
    ref = 0.0
    for i in range(40):
        sx = [j for j in np.argsort(-(Xn @ Xn[i])) if j != i][:k]
        sy = [j for j in np.argsort(-(Yn @ Yn[i])) if j != i][:k]
        ref += len(set(sx) & set(sy)) / k
    assert sdtools.mutual_knn(X, Y, k=k, chunk_size=6) == pytest.approx(ref / 40)
    R = planted_rotation([45.0], 6, rng)
    assert sdtools.mutual_knn(X, X @ R, k=k) == 1.0
    nn = knn_indices(torch.tensor(Xn), 3)
    assert not (nn == torch.arange(40)[:, None]).any()  # never its own neighbour


# ------------------------------------------------------------------ bad input


@pytest.fixture
def good(rng):
    return rng.normal(size=(20, 4))


@pytest.mark.parametrize(
    "fn",
    [sdtools.sample_angles, sdtools.sam_drift, sdtools.procrustes, sdtools.linear_cka],
)
def test_bad_inputs_rejected(fn, good):
    cases = [
        (good, good[:10], "rows"),
        (good[:1], good[:1], "at least 2"),
        (np.where(np.arange(80).reshape(20, 4) == 5, np.nan, good), good, "NaN or Inf"),
        (np.where(np.arange(80).reshape(20, 4) == 5, np.inf, good), good, "NaN or Inf"),
        (np.vstack([np.zeros((1, 4)), good[1:]]), good, "zero-norm"),
        (good.astype(np.int64), good, "dtype"),
        (good.astype(np.complex128), good, "complex"),
        (torch.ones(20, 4, dtype=torch.int32), good, "dtype"),
        (good[:, :, None], good, "2-D"),
        ([[1.0, 2.0]], good, "numpy array or torch tensor"),
    ]
    for a, b, msg in cases:
        with pytest.raises(ValueError, match=msg):
            fn(a, b)


def test_rotation_between_different_dimensions_refused(good):
    for fn in (sdtools.sample_angles, sdtools.sam_drift, sdtools.procrustes):
        with pytest.raises(ValueError, match="different dimension"):
            fn(good, good[:, :3])


def test_image_of_text_checks(good):
    T = np.repeat(good, 2, axis=0)
    iot = np.repeat(np.arange(20), 2)
    with pytest.raises(ValueError, match="outside"):
        sdtools.retrieval(good, T, np.where(iot == 3, 20, iot))
    with pytest.raises(ValueError, match="outside"):
        sdtools.retrieval(good, T, np.where(iot == 3, -1, iot))
    with pytest.raises(ValueError, match="no caption"):
        sdtools.retrieval(good, T, np.where(iot == 3, 4, iot))
    with pytest.raises(ValueError, match="one image index per caption"):
        sdtools.retrieval(good, T, iot[:-1])
    with pytest.raises(ValueError, match="integer"):
        sdtools.retrieval(good, T, iot.astype(float))
    with pytest.raises(ValueError, match="share one space"):
        sdtools.retrieval(good, T[:, :3], iot)
    with pytest.raises(ValueError, match="no caption"):
        sdtools.deviation(good, T, good, T, np.where(iot == 0, 1, iot))
    with pytest.raises(ValueError, match="rows"):
        sdtools.deviation(good, T, good[:10], T, iot)


def test_other_argument_checks(good):
    with pytest.raises(ValueError, match="max_pairs"):
        sdtools.sam_drift(good, good, max_pairs=1)
    with pytest.raises(ValueError, match="chunk_size"):
        sdtools.sam_drift(good, good, chunk_size=0)
    with pytest.raises(ValueError, match="ks"):
        sdtools.retrieval(good, good, np.arange(20), ks=(0,))
    with pytest.raises(ValueError, match="k must be"):
        sdtools.mutual_knn(good, good, k=20)
    with pytest.raises(ValueError, match="4 samples"):
        sdtools.linear_cka(good[:3], good[:3], debiased=True)


def test_embeddings_roundtrip_and_errors(tmp_path, good):
    iot = np.repeat(np.arange(20), 2)
    emb = sdtools.Embeddings(good, np.repeat(good, 2, axis=0), iot, {"ckpt": "a", "n": 3})
    path = emb.save(tmp_path / "e.npz")
    back = sdtools.Embeddings.load(path)
    np.testing.assert_array_equal(back.image, emb.image)
    np.testing.assert_array_equal(back.text, emb.text)
    np.testing.assert_array_equal(back.image_of_text, iot)
    assert back.meta == {"ckpt": "a", "n": 3}
    np.testing.assert_array_equal(back.first_caption(), np.arange(0, 40, 2))
    assert not list(tmp_path.glob("*.tmp*"))
    with pytest.raises(ValueError, match="not found"):
        sdtools.Embeddings.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an embeddings file"):
        sdtools.Embeddings.load(tmp_path / "other.npz")
    np.savez(tmp_path / "obj.npz", image=np.array([{"a": 1}], dtype=object), text=good,
             image_of_text=iot)
    with pytest.raises(ValueError):
        sdtools.Embeddings.load(tmp_path / "obj.npz")  # object arrays need pickle: refused
    with pytest.raises(ValueError, match="dimension"):
        sdtools.Embeddings(good, good[:, :3], np.arange(20))


def test_embeddings_files_that_are_not_ours_say_why(tmp_path, good):
    import pickle

    (tmp_path / "text.npz").write_text("hello\n")
    with pytest.raises(ValueError, match="neither the zip nor the .npy signature"):
        sdtools.Embeddings.load(tmp_path / "text.npz")
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"image": 1}))
    with pytest.raises(ValueError, match="pickled objects"):
        sdtools.Embeddings.load(tmp_path / "pickled.npz")
    iot = np.arange(20)
    path = sdtools.Embeddings(good, good, iot).save(tmp_path / "e.npz")
    with np.load(path) as z:
        arrays = dict(z)
    for version in (np.array(99), np.array(0), np.array([1, 2]), np.array(1.5)):
        np.savez(tmp_path / "v.npz", **{**arrays, "format_version": version})
        with pytest.raises(ValueError, match="embeddings format"):
            sdtools.Embeddings.load(tmp_path / "v.npz")


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from sdtools.io import write_text

    write_text(tmp_path / "r.md", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "r.md").stat().st_mode & 0o777 == 0o666 & ~mask


def test_mutual_knn_over_drawn_queries_matches_the_loop_on_those_rows(rng):
    """``queries``: the mean over drawn rows, each with its neighbours among all N (not a
    subset's neighbourhoods)."""
    X = rng.normal(size=(60, 5))
    Y = X + 0.7 * rng.normal(size=X.shape)
    k = 4
    Xn, Yn = unit_rows(X), unit_rows(Y)
    rows = np.sort(np.random.default_rng(3).choice(60, 17, replace=False))
    ref = 0.0
    for i in rows:
        sx = [j for j in np.argsort(-(Xn @ Xn[i])) if j != i][:k]
        sy = [j for j in np.argsort(-(Yn @ Yn[i])) if j != i][:k]
        ref += len(set(sx) & set(sy)) / k
    got = sdtools.mutual_knn(X, Y, k=k, queries=17, seed=3, chunk_size=5)
    assert got == pytest.approx(ref / 17)
    assert sdtools.mutual_knn(X, Y, k=k, queries=60) == sdtools.mutual_knn(X, Y, k=k)
    with pytest.raises(InputError, match="queries must be an integer"):
        sdtools.mutual_knn(X, Y, k=k, queries=0)
