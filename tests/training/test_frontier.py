"""The frontier rule: known answers, and its error rates under a simulated null trade-off."""

import numpy as np
import pytest

from modx.frontier import frontier, frontier_gap, frontier_verdict, holm, retention_at


def test_frontier_drops_dominated_points_and_interpolates():
    pts = [(5.0, 0.0), (6.0, -0.5), (6.0, -0.2), (7.0, -1.0), (6.5, -1.5), (8.0, -2.0)]
    assert frontier(pts) == [(5.0, 0.0), (6.0, -0.2), (7.0, -1.0), (8.0, -2.0)]
    f = frontier(pts)
    assert retention_at(f, 6.5) == pytest.approx(-0.6)
    assert retention_at(f, 4.9) is None and retention_at(f, 8.1) is None  # no extrapolation
    # a point that learns more and retains more beats everything below it
    assert frontier([(5.0, -1.0), (9.0, 0.5), (7.0, 0.0)]) == [(9.0, 0.5)]


def test_gap_against_the_frontier_per_seed():
    base = {s: [(5.0, 0.0), (10.0, -5.0)] for s in range(4)}
    method = {0: (7.0, -1.0), 1: (8.0, -2.0), 2: (6.0, 0.0), 3: (9.0, -3.0)}
    g = frontier_gap(method, base)
    assert g["per_seed"] == {"0": 1.0, "1": 1.0, "2": 1.0, "3": 1.0}
    assert g["matched"] and g["n_seeds"] == 4 and g["p"] is None  # no spread: no p value
    v = frontier_verdict({3.0: g})
    assert v["verdict"] == "inconclusive" and "no spread" in v["reason"]
    method[3] = (11.0, 0.0)  # learns more than any fine-tuning rate did
    g = frontier_gap(method, base)
    assert not g["matched"] and g["n_seeds"] == 3
    assert "not matched" in frontier_verdict({3.0: g})["reason"]


def test_holm_adjusts_step_down():
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    assert adj == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def _study(rng, effect: float, gaps=(1.5, 2.5), seeds=5, noise=0.5):
    """One simulated study: per seed a fine-tuning trade-off (0.5-1 retention point per
    learning point) sampled at 7 learning rates, and a method at 1.5-2.5 points less learning
    than the reference rate, on the same trade-off plus ``effect``."""
    k = rng.uniform(0.5, 1.0)
    base, methods = {}, {g: {} for g in gaps}
    for s in range(seeds):
        c, u = rng.normal(0, 1), rng.normal(0, 1)
        learning = np.linspace(5, 11, 7) + u + rng.normal(0, 0.3, 7)
        base[s] = [(x, c - k * (x - 9 - u) + rng.normal(0, noise)) for x in learning]
        for g in gaps:
            x = 9 + u - g + rng.normal(0, 0.3)
            methods[g][s] = (x, c - k * (x - 9 - u) + effect + rng.normal(0, noise))
    return frontier_verdict({g: frontier_gap(m, base) for g, m in methods.items()})


def test_null_trade_off_rarely_holds_and_a_real_effect_is_found():
    """A method that is fine-tuning at lower plasticity must not read as "forgets less"; the
    rule that picked the single closest learning rate said "holds" in 25-93% of such
    studies."""
    rng = np.random.default_rng(0)
    n = 400
    null = [_study(rng, 0.0)["verdict"] for _ in range(n)]
    assert null.count("holds") <= 0.05 * n
    real = [_study(rng, 2.0)["verdict"] for _ in range(n)]
    assert real.count("holds") >= 0.8 * n


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
    assert (by_r1["retention"], by_r1["learning"]) == (-20.0, (50.0 + 60.0) / 2)
    by_zs = cell_metrics(report, "m", "zero_shot:class")
    assert by_zs["retention"] == -15.0 and by_zs["learning"] == 70.0  # set c carries no labels
    assert by_zs["max_drop"] == 15.0 and by_zs["phase0_r1"] == [80.0, 20.0, None]
    with pytest.raises(ConfigError, match="no zero-shot task 'shape'.*it has class"):
        cell_metrics(report, "m", "zero_shot:shape")
    rep.zero_shot["class"] = [[None, *row[1:]] for row in zs]
    with pytest.raises(ConfigError, match="old domain, carries no such labels"):
        cell_metrics(report, "m", "zero_shot:class")
    with pytest.raises(ConfigError, match="use \"r1\" or \"zero_shot:TASK\""):
        Plan("p", {"steps": 1}, [0], {"finetune": []}, metric="top1")
