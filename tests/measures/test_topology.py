"""topology_kept's known answers: rotations and order-preserving changes kept, jitter of any
structure at 0, rows that do not move left out of the null's moves, moves shared by a group."""

import numpy as np
import pytest

import sdtools
from sdtools.measures.planted import clip_like, jitter, plane_rotation, unit


def _cone(X, axis, factor):
    """Every row's component on the cone axis scaled by ``factor`` (then unit again)."""
    return unit(X + (factor - 1.0) * np.outer(X @ axis, axis))


@pytest.fixture(scope="module")
def cone_data():
    rng = np.random.default_rng(21)
    X, basis = clip_like(rng, 600, 32, "power", cone=0.5)
    return X, basis


@pytest.mark.parametrize("factor", [1.3, 0.8])
def test_a_cone_that_tightens_or_widens_keeps_the_topology(cone_data, factor):
    """A cone scaled by 1.3 keeps every neighbourhood; it read -2.6 ("worse than jitter")."""
    X, basis = cone_data
    top = sdtools.topology_kept(X, _cone(X, basis[:, 0], factor))
    assert top.topology_kept == pytest.approx(1.0, abs=1e-3)
    assert top.metric_kept < 0  # the metric reading counts the angles' coherent shrinking


def test_rotation_plus_a_small_cone_change_reads_as_the_rotation(cone_data):
    X, basis = cone_data
    Xr = X @ plane_rotation(basis, [30.0, 20.0])
    B = _cone(Xr, basis[:, 0], 1.1)  # mean cosine 0.50 -> about 0.55
    assert np.mean(B @ B.T) > np.mean(X @ X.T) + 0.03
    assert sdtools.topology_kept(X, B).topology_kept == pytest.approx(1.0, abs=1e-3)  # was 0.04


def test_rotation_with_jitter_reads_between_on_the_scale_of_the_metric(cone_data):
    X, basis = cone_data
    rng = np.random.default_rng(22)
    top = sdtools.topology_kept(X, jitter(X @ plane_rotation(basis, [80.0, 45.0, 20.0]), 5.0,
                                          rng))
    assert 0.6 < top.topology_kept < 0.98
    assert top.topology_kept == pytest.approx(top.metric_kept, abs=0.1)


@pytest.mark.parametrize("still", [0.5, 0.2])
def test_rows_that_do_not_move_are_not_shrunk_in_the_null(cone_data, still):
    """Half the rows jittered 10 degrees, half exactly unchanged read -0.55 (truth 0): a null
    row whose donor did not move was shrunk instead of turned. Unmoved rows stay put."""
    X, _ = cone_data
    rng = np.random.default_rng(23)
    stay = rng.random(len(X)) < still
    B = jitter(X, 10.0, rng)
    B[stay] = X[stay]
    top = sdtools.topology_kept(X, B)
    assert top.n_moved == int((~stay).sum())
    assert abs(top.topology_kept) < 0.05 and abs(top.metric_kept) < 0.05


def test_a_rotated_subset_with_the_rest_unchanged_reads_above_zero(cone_data):
    """Rows that keep their place keep their angles with each other: a rotated half and an
    unchanged half keep more than jitter does (it read -0.9 for clusters)."""
    X, basis = cone_data
    stay = np.arange(len(X)) % 2 == 0
    B = X @ plane_rotation(basis, [30.0, 20.0])
    B[stay] = X[stay]
    top = sdtools.topology_kept(X, B)
    assert top.topology_kept > 0.2 and top.metric_kept > 0.2


def test_class_drift_is_jitter_when_the_classes_are_given():
    """Ten classes, each drifting 10 degrees its own way: within a class the angles are kept, so
    a null that moves items one by one reads it as partly kept; drawn by class it is jitter."""
    rng = np.random.default_rng(1)
    X, _ = clip_like(rng, 600, 32, "iso")
    lab = rng.integers(0, 10, len(X))
    X = unit(unit(rng.standard_normal((10, 32)))[lab] + 0.3 * X)
    E = unit(rng.standard_normal((10, 32)))[lab]
    E = unit(E - (E * X).sum(1, keepdims=True) * X)
    B = np.cos(np.radians(10)) * X + np.sin(np.radians(10)) * E
    loose = sdtools.topology_kept(X, B)
    top = sdtools.topology_kept(X, B, groups=lab)
    assert top.groups == 10 and loose.groups == 0
    assert abs(top.topology_kept) < 0.06 and abs(top.metric_kept) < 0.08
    assert loose.metric_kept > top.metric_kept + 0.1


def test_independent_jitter_reads_zero_with_or_without_groups():
    rng = np.random.default_rng(2)
    X, _ = clip_like(rng, 600, 32, "power", cone=0.3)
    lab = rng.integers(0, 20, len(X))
    B = jitter(X, rng.uniform(2.0, 20.0, len(X)), rng)
    for g in (None, lab):
        top = sdtools.topology_kept(X, B, groups=g)
        assert abs(top.topology_kept) < 0.05 and abs(top.metric_kept) < 0.05


def test_groups_must_label_every_item():
    X = unit(np.random.default_rng(3).standard_normal((20, 4)))
    with pytest.raises(sdtools.UserError, match="one label per item"):
        sdtools.topology_kept(X, X, groups=np.zeros(19))


def test_repeated_items_are_counted_once(cone_data):
    """Rows listed once per caption read as pairs kept exactly (angle 0 under both)."""
    X, _ = cone_data
    B = jitter(X, 10.0, np.random.default_rng(24))
    rep = np.repeat(np.arange(len(X)), 5)
    once, five = sdtools.topology_kept(X, B), sdtools.topology_kept(X[rep], B[rep])
    assert five.n_items == len(X) and "repeat another item" in five.warnings[0]
    assert five.topology_kept == pytest.approx(once.topology_kept, abs=1e-9)


@pytest.mark.parametrize("draw", [168, 270, 305, 357])
def test_jitter_along_the_strongest_or_weakest_directions_reads_zero(draw):
    """Drawn shapes where the earlier null (each item turned in another item's direction,
    carried over by parallel transport) read weak-direction jitter +0.065 to +0.091 and strong-
    direction jitter -0.072: the transport leaked a donor's move into strong directions. The
    null now moves each item along its own direction with a random sign, which has the same
    distribution as any jitter whose moves are independent of each other's."""
    from sdtools.measures.properties import draw_change, draw_shape, make_data

    rng = np.random.default_rng([0, draw])
    s = draw_shape(rng, 1024, 3_000_000)
    X, basis, labels = make_data(rng, s)
    kind, detail, B, groups = draw_change(rng, X, basis, labels, s)
    assert kind == "jitter" and detail.split()[0] in ("weak", "strong")
    top = sdtools.topology_kept(X, B, seed=draw, groups=groups)
    assert abs(top.topology_kept) < 0.03 and abs(top.metric_kept) < 0.03


def test_the_null_is_the_change_with_random_signs(cone_data):
    """Under independent jitter, flipping every move's sign gives the same distribution: a
    change whose every move is reversed reads like the original (up to the null's draw)."""
    X, _ = cone_data
    rng = np.random.default_rng(24)
    B = jitter(X, rng.uniform(3.0, 15.0, len(X)), rng)
    back = unit(2 * (X * B).sum(1, keepdims=True) * X - B)  # every move reversed
    one, two = sdtools.topology_kept(X, B), sdtools.topology_kept(X, back)
    assert one.null == pytest.approx(two.null, rel=0.05)  # the same sizes, the signs redrawn
    assert abs(one.topology_kept) < 0.05 and abs(two.topology_kept) < 0.05
