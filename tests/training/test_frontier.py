"""The rule of modx.frontier: known answers for the per-seed classes and bounds, Holm over the
planned family, the exact sign-flip test, and its error rates over simulated trade-off shapes
(the full table: benchmarks/verdicts.py)."""

import numpy as np
import pytest

from modx.frontier import ALPHA, classify, frontier_gap, frontier_verdict, holm, sign_flip_p
from modx.frontier_sim import rates

BASE = [(5.0, 0.0), (10.0, -5.0)]


def test_each_seed_is_classified_with_its_bounds():
    m = classify((7.0, -1.0), BASE)  # inside the range, between the two points
    assert m["class"] == "matched" and m["lower"] == -1.0 and m["upper"] == 4.0
    assert m["gap"] == pytest.approx(1.0)  # the chord at 7 reads -2
    d = classify((12.0, 1.0), BASE)  # learns more than every point and keeps more than the top
    assert d["class"] == "dominating" and d["lower"] == 6.0 and d["upper"] is None
    assert d["below"] == [10.0, -5.0] and d["gap"] is None
    d = classify((6.0, 0.5), BASE)  # beats (5, 0) on both axes inside the range
    assert d["class"] == "dominating" and d["lower"] == 0.5
    w = classify((4.0, -1.0), BASE)  # (5, 0) learns more and keeps more
    assert w["class"] == "dominated" and w["upper"] == -1.0 and w["lower"] is None
    assert classify((12.0, -6.0), BASE)["class"] == "incomparable"  # more learning, less kept
    assert classify((4.0, 1.0), BASE)["class"] == "incomparable"  # less learning, more kept
    assert classify((4.0, 1.0), [])["class"] == "no data"


def test_ties_are_kept_and_the_envelope_takes_the_best():
    """Of equal learning, the envelope reads the point that keeps more, the chord their mean:
    a method at the same learning keeping less than one of them is dominated by it."""
    c = classify((5.0, -0.5), [(5.0, 0.0), (5.0, -1.0), (10.0, -5.0)])
    assert c["lower"] == -0.5 and c["upper"] == -0.5 and c["gap"] == pytest.approx(0.0)
    assert c["class"] == "dominated" and c["above"] == [5.0, 0.0]


def test_a_point_beaten_on_both_axes_reads_through_the_envelope():
    """Slow fine-tuning that learns less and forgets more than fast fine-tuning (the domains
    stream): a method between them is not credited against the weak slow point; the fast
    point learns more and keeps more, so the method is dominated."""
    base = [(10.0, -38.0), (20.0, -30.0), (35.0, -25.0), (60.0, -15.0)]
    c = classify((29.0, -16.0), base)
    assert c["lower"] == -1.0 and c["upper"] == -1.0 and c["class"] == "dominated"
    assert c["below"] == [60.0, -15.0] and c["above"] == [60.0, -15.0]
    assert c["gap"] == pytest.approx(-16.0 - (-30.0 + 9 / 15 * 5.0))  # the chord, descriptive


def test_dominating_method_holds_on_its_bound_and_dominated_does_not():
    base = {s: [(5.0, 0.0), (10.0, -5.0)] for s in range(5)}
    up = {s: (12.0 + 0.1 * s, -3.0 + 0.3 * s) for s in range(5)}  # lower bounds 2.0 .. 3.2
    g = frontier_gap(up, base)
    assert g["classes"]["dominating"] == 5 and g["lower"]["mean"] == pytest.approx(2.6)
    assert g["lower"]["p"] < ALPHA and g["upper"]["missing"] == [str(s) for s in range(5)]
    v = frontier_verdict({1.0: g})
    assert v["verdict"] == "holds" and v["best"] == "1.0"
    down = {s: (9.0, -4.0 - 0.5 * s) for s in range(5)}  # (10, -5) beats it from seed 3
    g = frontier_gap(down, base)
    assert g["classes"] == {"matched": 3, "dominating": 0, "dominated": 2, "incomparable": 0}
    assert frontier_verdict({1.0: g})["verdict"] == "inconclusive"
    down = {s: (4.0 + 0.1 * s, -1.0 - 0.5 * s) for s in range(5)}  # (5, 0) beats every seed
    g = frontier_gap(down, base)
    assert g["classes"]["dominated"] == 5 and g["lower"]["missing"]
    v = frontier_verdict({1.0: g})
    assert v["verdict"] == "does not hold"


def test_no_lower_bound_is_said_with_its_reason():
    base = {s: [(5.0, 0.0), (10.0, -5.0)] for s in range(4)}
    method = {0: (7.0, -1.0), 1: (8.0, -2.0), 2: (6.0, 0.0), 3: (4.0, 3.0)}
    v = frontier_verdict({3.0: frontier_gap(method, base)})
    assert v["verdict"] == "inconclusive" and "no lower bound in seed(s) 3 of 4" in v["reason"]
    same = {s: (12.0, 1.0) for s in range(4)}
    v = frontier_verdict({3.0: frontier_gap(same, base)})
    assert v["verdict"] == "inconclusive" and "no spread" in v["reason"]


def test_holm_runs_over_the_planned_family():
    """A planned value that cannot be tested still counts: it enters with p = 1."""
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None}) == pytest.approx(
        {"a": 0.03, "c": 0.06, "b": 0.06})
    base = {s: [(5.0, 0.0), (10.0, -5.0)] for s in range(5)}
    lows = [0.3, 1.0, 2.0, 0.6, 2.5]  # lower bounds, one-sided t p about 0.02
    good = frontier_gap({s: (12.0, x - 5.0) for s, x in enumerate(lows)}, base)
    p = good["lower"]["p"]
    assert ALPHA / 2 < p < ALPHA  # alone it holds; with a second planned value it does not
    assert frontier_verdict({1.0: good})["verdict"] == "holds"
    untestable = frontier_gap({s: (3.0, 0.0) for s in range(5)}, base)
    v = frontier_verdict({1.0: good, 3.0: untestable})
    assert v["holm_p"]["1.0"] == pytest.approx(2 * p) and v["holm_p"]["3.0"] == 1.0
    assert v["verdict"] == "inconclusive" and v["family"] == ["1.0", "3.0"]


def test_sign_flip_is_exact():
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(1 / 32)
    assert sign_flip_p([1.0, -1.0]) == pytest.approx(3 / 4)
    assert sign_flip_p([-1.0, -2.0, -3.0], side="<") == pytest.approx(1 / 8)


@pytest.mark.parametrize("shape", ["concave", "saturating"])
def test_no_effect_rarely_holds_where_chords_are_biased(shape):
    """The issue's worst case: a method on fine-tuning's curve, the domains sweep's spacing, a
    20-point drop over the sweep, noise 0.5. The chord rule says "holds" far above 5% on
    these shapes in the same studies; the bound rule at most 5%."""
    r = rates(np.random.default_rng(0), shape, "domains", 0.5, 0.0, 300)
    assert r["holds"] <= 0.05
    assert r["chord_holds"] > 0.05


def test_a_planted_effect_is_found_with_dense_brackets():
    """+2 points on a concave curve bracketed every 2 learning points: mostly "holds"."""
    r = rates(np.random.default_rng(1), "concave", "dense", 0.5, 2.0, 150)
    assert r["holds"] >= 0.7


def test_rounding_is_no_spread():
    """Bounds equal up to float rounding (-4 + 0.3 s minus -5 + 0.3 s) give no p value."""
    from modx.frontier import t_interval, t_p

    v = [(-4.0 + 0.3 * s) - (-5.0 + 0.3 * s) for s in range(3)]
    assert len(set(v)) > 1  # they do differ in the last bits
    assert t_p(v) is None and t_interval(v)["ci"] is None


def test_a_study_reads_zero_shot_accuracy_when_its_plan_says_so():
    """metric = "zero_shot:TASK": learning and retention come from that task's accuracy
    matrix (sets without the task left out), not from R@1; a task the runs lack, or an old
    domain without labels, is a one-line error."""
    from types import SimpleNamespace

    from modx.errors import ConfigError
    from modx.study import Plan
    from modx.study_stats import cell_metrics

    r1 = [[50.0, 10.0, 10.0], [40.0, 60.0, 12.0], [30.0, 50.0, 70.0]]
    zs = [[80.0, 20.0, None], [70.0, 90.0, None], [65.0, 85.0, None]]
    rep = SimpleNamespace(r1=r1, zero_shot={"class": zs}, sets=["a", "b", "c"], geometry=[])
    report = SimpleNamespace(methods={"m": rep})
    by_r1 = cell_metrics(report, "m")
    assert (by_r1.retention, by_r1.learning) == (-20.0, (50.0 + 60.0) / 2)
    by_zs = cell_metrics(report, "m", "zero_shot:class")
    assert by_zs.retention == -15.0 and by_zs.learning == 70.0  # set c carries no labels
    assert by_zs.max_drop == 15.0 and by_zs.phase0_r1 == [80.0, 20.0, None]
    # only the old domain carries the task: no learning to read (None, not a learning of 0),
    # and such a cell is no data against a trade-off curve
    rep.zero_shot["only_old"] = [[row[0], None, None] for row in zs]
    none = cell_metrics(report, "m", "zero_shot:only_old")
    assert none.learning is None and none.retention == -15.0
    from modx.frontier import classify

    assert classify((none.learning, none.stability("retention")), [(1.0, 0.0)])["class"] \
        == "no data"
    with pytest.raises(ConfigError, match="no zero-shot task 'shape'.*it has class"):
        cell_metrics(report, "m", "zero_shot:shape")
    rep.zero_shot["class"] = [[None, *row[1:]] for row in zs]
    with pytest.raises(ConfigError, match="old domain, carries no such labels"):
        cell_metrics(report, "m", "zero_shot:class")
    with pytest.raises(ConfigError, match="use \"r1\" or \"zero_shot:TASK\""):
        Plan("p", {"steps": 1}, [0], {"finetune": []}, metric="top1")
