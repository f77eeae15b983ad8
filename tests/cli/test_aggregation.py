"""A study aggregates only what is possible: a cell's report.json with a recall that is not a
percentage (NaN, Infinity, 250, -40) or trained with another cell's settings (seed, method,
knob) is refused naming the cell, and nothing is written."""

import json

import pytest
from helpers import fake_cell as _fake_cell

from modx.errors import ConfigError


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from modx.study import Plan

    out = tmp_path_factory.mktemp("study")
    plan = Plan("s", {"steps": 1}, [0, 1], {"finetune": [5e-4], "modx": [2.0, 3.0]})
    reports = {c.index: _fake_cell(plan, c, out) for c in plan.cells()}
    return plan, out, reports


def test_the_fake_cells_aggregate(study):
    from modx.study_stats import _collect

    plan, out, _ = study
    rows = _collect(plan, out)
    assert [r.cell for r in rows] == [c.index for c in plan.cells()]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 250.0, -40.0])
def test_an_impossible_recall_is_refused_naming_the_cell(study, value, monkeypatch):
    from modx.study_stats import _collect

    plan, out, reports = study
    path = reports[1]
    kept = path.read_text()
    rep = json.loads(kept)
    method = next(iter(rep["methods"]))
    rep["methods"][method]["r1"][1][0] = value
    try:
        path.write_text(json.dumps(rep))  # json writes NaN and Infinity as Python reads them
        with pytest.raises(ConfigError, match=r"cell 1 .*R@1 = .*not a recall"):
            _collect(plan, out)
    finally:
        path.write_text(kept)


def test_an_impossible_recall_in_one_direction_is_refused(study):
    from modx.study_stats import _collect

    plan, out, reports = study
    path = reports[2]
    kept = path.read_text()
    rep = json.loads(kept)
    m = next(iter(rep["methods"].values()))
    m["i2t"]["1"][0][0] = 250.0
    try:
        path.write_text(json.dumps(rep))
        with pytest.raises(ConfigError, match=r"cell 2 .*i2t R@1 = 250.0"):
            _collect(plan, out)
    finally:
        path.write_text(kept)


@pytest.mark.parametrize("other, what", [(3, "seed"), (2, "method"), (1, "alpha")],
                         ids=["seed", "method", "knob"])
def test_another_cells_report_is_refused(study, other, what):
    """Cell 4 (seed 1, modx alpha 2) given the report of another cell: seed 0's, finetune's,
    or modx at alpha 3's."""
    from modx.study_stats import _collect

    plan, out, reports = study
    cells = plan.cells()
    target = next(c for c in cells if (c.seed, c.method, c.value) == (1, "modx", 2.0))
    source = {1: next(c for c in cells if (c.seed, c.method, c.value) == (1, "modx", 3.0)),
              2: next(c for c in cells if (c.seed, c.method) == (1, "finetune")),
              3: next(c for c in cells if (c.seed, c.method, c.value) == (0, "modx", 2.0))}
    src = source[other]
    if src.method != target.method:  # another method's report names that method's run
        rep = json.loads(reports[src.index].read_text())
        rep["methods"] = {target.method: next(iter(rep["methods"].values()))}
        text = json.dumps(rep)
    else:
        text = reports[src.index].read_text()
    path = reports[target.index]
    kept = path.read_text()
    try:
        path.write_text(text)
        with pytest.raises(ConfigError, match=rf"cell {target.index} .*other settings .*"
                                              rf"\(({what}|methods|method_options)"):
            _collect(plan, out)
    finally:
        path.write_text(kept)
