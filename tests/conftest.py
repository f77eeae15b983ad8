import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def planted_rotation(angles_deg, dim, rng, reflect=False):
    """An orthogonal matrix with the given principal angles in a random orthonormal basis.

    Block-diagonal 2x2 rotations (one block per angle), the rest identity; with ``reflect`` a
    -1 on the last axis (which must lie outside the rotation blocks).
    """
    blocks = np.eye(dim)
    for k, a in enumerate(angles_deg):
        t = np.radians(a)
        c, s = np.cos(t), np.sin(t)
        blocks[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = [[c, -s], [s, c]]
    if reflect:
        assert 2 * len(angles_deg) < dim
        blocks[-1, -1] = -1.0
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q @ blocks @ q.T


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
