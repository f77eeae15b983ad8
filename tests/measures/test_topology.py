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


def _directional_jitter(seed, n, d, alpha, cone, where, deg):
    """Shapes where the earlier null (each item turned in another item's direction, carried
    over by parallel transport) read jitter along the weakest directions +0.07 to +0.09 and
    along the strongest -0.07: the transport leaked a donor's move into strong directions."""
    from sdtools.measures.properties import Shape, _turn, make_data

    rng = np.random.default_rng(seed)
    X, basis, _ = make_data(rng, Shape(n, d, alpha, cone, 0, 1))
    w = np.arange(1, d, dtype=np.float64) ** (-alpha / 2.0)
    w = np.concatenate([[0.0], w if where == "strong" else 1.0 / w])
    return X, _turn(X, (rng.standard_normal(X.shape) * w / w.max()) @ basis.T, deg)


@pytest.mark.parametrize("case", [(1256, 33, 1.87, 0.0, "weak", 16.0),
                                  (1937, 175, 0.59, 0.57, "weak", 11.0),
                                  (498, 307, 1.34, 0.0, "strong", 22.0),
                                  (1290, 228, 0.59, 0.32, "weak", 6.0)])
def test_jitter_along_the_strongest_or_weakest_directions_reads_zero(case):
    X, B = _directional_jitter(7, *case)
    top = sdtools.topology_kept(X, B, seed=1)
    assert abs(top.topology_kept) < 0.03 and abs(top.metric_kept) < 0.03


def test_the_null_is_the_change_with_random_signs(cone_data, monkeypatch):
    """With every sign +1 the null is the change itself: both readings are exactly 0."""
    from sdtools.measures import topology

    X, basis = cone_data
    B = jitter(X @ plane_rotation(basis, [30.0]), 5.0, np.random.default_rng(24))
    assert sdtools.topology_kept(X, B).topology_kept > 0.5
    monkeypatch.setattr(topology, "_signs", lambda codes, n, live, rng: np.ones(n))
    top = sdtools.topology_kept(X, B)
    assert top.drift == pytest.approx(top.null, rel=1e-9)
    assert top.topology_kept == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("n_groups", [2, 3])
def test_few_groups_read_a_rotation_with_jitter_as_items_do(cone_data, n_groups):
    """With 2-3 groups a group-wise sign null kept the agreement inside each group, which is
    most pairs: rotation with jitter read 0.6-0.8 by the seed where items read 0.8. Only pairs
    across groups are read, and draws giving every group one sign are drawn again."""
    X, basis = cone_data
    B = jitter(X @ plane_rotation(basis, [30.0]), 5.0, np.random.default_rng(25))
    lab = np.arange(len(X)) % n_groups
    items = sdtools.topology_kept(X, B).topology_kept
    for seed in range(3):
        top = sdtools.topology_kept(X, B, groups=lab, seed=seed)
        assert top.topology_kept == pytest.approx(items, abs=0.08)
        assert top.n_pairs < len(X) * (len(X) - 1) // 2  # pairs inside a group left out


def test_one_group_reads_item_by_item_with_a_warning(cone_data):
    X, basis = cone_data
    B = jitter(X @ plane_rotation(basis, [30.0]), 5.0, np.random.default_rng(26))
    one = sdtools.topology_kept(X, B, groups=np.zeros(len(X)))
    assert one.groups == 0 and "one group" in one.warnings[0]
    assert one.topology_kept == pytest.approx(sdtools.topology_kept(X, B).topology_kept, abs=1e-12)


def test_a_drift_shared_by_every_item_is_coherent_not_jitter(cone_data):
    """Every item shifted toward one direction: the moves agree, so the reading is above 0."""
    X, _ = cone_data
    v = unit(np.random.default_rng(27).standard_normal((1, X.shape[1])))
    top = sdtools.topology_kept(X, unit(X + 0.15 * v))
    assert top.topology_kept > 0.3
