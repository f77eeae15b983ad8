"""The jitter null follows the data's spectrum at any D: pure jitter reads rigidity about 0 on
wide, cone-shaped embeddings at moderate N/D (it read 0.13 at D 256 and 0.28 at D 768, N/D 3,
when the null sampled the spectrum at 32 points including the top one)."""

import numpy as np
import pytest

import sdtools
from sdtools.measures.planted import clip_like, jitter


def _rigidity_of_jitter(d, cone, seed=0, ratio=3):
    rng = np.random.default_rng(seed)
    X, _ = clip_like(rng, ratio * d, d, "power", cone)
    return sdtools.procrustes(X, jitter(X, 10.0, rng), ci=False).rigidity


@pytest.mark.parametrize("cone", [0.0, 0.5, 0.8])
def test_pure_jitter_reads_zero_at_d256_on_a_cone(cone):
    assert abs(_rigidity_of_jitter(256, cone)) < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("d", [768, 1024])
def test_pure_jitter_reads_zero_on_wide_models(d):
    assert abs(_rigidity_of_jitter(d, 0.5)) <= 0.1
