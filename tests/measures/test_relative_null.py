"""The relative rotation has a null: each of its angles beside what it reads when both
modalities turn in step at the probe's sizes and noise (from the cross residual's halvings)."""

import numpy as np
import pytest

import sdtools
from sdtools.measures.planted import jitter, plane_rotation, unit


def _probe(rng, n=2000, d=64, r=10):
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    V = unit(rng.standard_normal((n, r)) @ basis[:, :r].T + 0.02 * rng.standard_normal((n, d)))
    iot = np.repeat(np.arange(n), 2)
    T = unit(V[iot] + 0.3 * rng.standard_normal((2 * n, d)))
    return V, T, iot, basis


@pytest.mark.parametrize("seed", [0, 1])
def test_in_step_rotation_with_jitter_is_within_its_null(seed):
    """One shared rotation, independent 15-degree jitter in both: the largest relative angle
    read 15.6 degrees with nothing to say whether that is noise."""
    rng = np.random.default_rng(seed)
    V, T, iot, basis = _probe(rng)
    R = plane_rotation(basis, [60.0, 40.0, 20.0])
    d = sdtools.deviation(V, T, jitter(V @ R, 15.0, rng), jitter(T @ R, 15.0, rng), iot)
    rel = d.to_dict()["relative_rotation"]
    assert len(rel["null_angles_deg"]) == len(rel["above_null"]) > 0
    # calibrated: the in-step null's largest angle is about the observed one
    assert 0.6 < rel["max_angle"] / rel["null_angles_deg"][0] < 1.6
    assert not rel["max_above_null"]


def test_captions_turned_in_a_shared_plane_are_above_the_null():
    rng = np.random.default_rng(2)
    V, T, iot, basis = _probe(rng)
    R = plane_rotation(basis, [30.0])
    extra = plane_rotation(basis[:, [0, 3, 4] + list(range(1, 3)) + list(range(5, 64))], [25.0])
    d = sdtools.deviation(V, T, jitter(V @ R, 5.0, rng), jitter(T @ R @ extra, 5.0, rng), iot)
    rel = d.to_dict()["relative_rotation"]
    assert rel["max_angle"] > 20.0 and rel["max_above_null"]
