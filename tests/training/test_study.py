"""Studies: paired intervals as scipy computes them, cells run alone aggregate to the same
study, and the shift stream that the study's preset uses."""

import json

import numpy as np
import pytest
import scipy.stats
from helpers import tiny_cfg

from modx.study import load_plan, run_study
from modx.study_stats import markdown, t_interval, verdict
from sdtools.data.synthetic import SHIFT, SyntheticConfig, SyntheticStream
from sdtools.records import RecordError

PLAN = """
name = "tiny"
seeds = [0, 1]
[base]
data = "synthetic:protocol=shift,train_per_domain=96,test_per_domain=24"
phases = "base+contiguous:2"
model = "{model}"
phase0_steps = 6
steps = 3
batch_size = 16
log_every = 0
[grid]
finetune = [5e-4]
modx = [3.0]
"""


def test_t_interval_matches_scipy():
    d = [1.5, -0.2, 2.7, 0.9, 1.1]
    got = t_interval(d)
    ref = scipy.stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert got["mean"] == pytest.approx(np.mean(d))
    np.testing.assert_allclose(got["ci"], [ref.low, ref.high], rtol=1e-12)
    assert got["n_seeds"] == 5
    assert verdict(got["ci"]) == "holds" if ref.low > 0 else "inconclusive"
    assert verdict([-2.0, -1.0]) == "does not hold" and verdict([-1.0, 1.0]) == "inconclusive"
    assert verdict([-2.0, -1.0], 0.0, "<") == "holds"


def test_zero_spread_gives_no_interval_and_no_verdict():
    """Identical values across seeds are no evidence of certainty."""
    same = t_interval([1.0, 1.0, 1.0])
    assert same["ci"] is None and verdict(same["ci"]) == "inconclusive"


def _claims(d_claim):
    """A study's claims with (a)-(c) from one interval and (d) as given."""
    ti = t_interval([1.0, 2.0])
    plain = {"claim": "x", "statistic": "y", **ti, "verdict": "inconclusive"}
    rotation = {"claim": "r", "statistic": "s", "rigidity_image": ti, "rigidity_text": ti,
                "topology_kept_image": ti, "topology_kept_text": ti,
                "mostly_rotation": "inconclusive", "verdict": "inconclusive"}
    return {"a_finetune_forgets": plain, "b_rotation_like": rotation, "c_out_of_step": plain,
            "d_modx_vs_finetune": d_claim}


def test_report_gives_joint_against_both():
    jm = t_interval([2.0, 2.5, 1.5])
    jf = t_interval([3.0, -1.0, 0.5])
    classes = {"matched": 0, "dominating": 3, "dominated": 0, "incomparable": 0}
    lower = {**t_interval([1.0, 2.0, 1.5]), "p": 0.01, "p_sign_flip": 0.125, "missing": []}
    claim = {"claim": "Mod-X forgets less", "measure": "retention",
             "statistic": "lower bound against fine-tuning's points", "verdict": "holds",
             "best": "3.0", "holm_p": {"3.0": 0.01}, "family": ["3.0"], "alpha": 0.025,
             "reason": None, "value": 3.0, "against": "finetune", "lower": lower,
             "classes": classes, "by_value": {}, "by_measure": {},
             "joint_minus_modx_final_avg": jm, "joint_minus_finetune_final_avg": jf,
             "joint_above_both": "inconclusive"}
    study = {"plan": {"name": "x", "seeds": [0, 1, 2], "reference": 5e-4}, "cells": [],
             "claims": _claims(claim), "paired": []}
    md = markdown(study)
    row = next(line for line in md.splitlines() if line.startswith("| joint training above"))
    assert "+2.000 / +0.833" in row and row.endswith("| 3 | inconclusive |")
    assert f"[{jm['ci'][0]:+.2f}, {jm['ci'][1]:+.2f}]" in row
    head = next(line for line in md.splitlines() if line.startswith("| Mod-X forgets less"))
    assert "| +1.500 |" in head and head.endswith("| holds (best value 3.0) |")
    # a claim's key gone is said, naming it, not rendered from a default
    del claim["lower"]["n_seeds"]
    with pytest.raises(RecordError, match=r"^study.claims.d_modx_vs_finetune.lower: "
                                          r"missing n_seeds$"):
        markdown(study)
    claim["lower"]["n_seeds"] = 3
    del claim["joint_above_both"]  # the joint comparison comes whole or not at all
    with pytest.raises(RecordError, match="missing joint_above_both"):
        markdown(study)


def _plan(tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_cfg()))
    (tmp_path / "plan.toml").write_text(PLAN.format(model=tmp_path / "tiny.json"))
    return load_plan(tmp_path / "plan.toml")


@pytest.mark.slow
def test_study_cells_alone_aggregate_like_one_process(tmp_path):
    plan = _plan(tmp_path)
    cells = plan.cells()
    assert [c.name for c in cells] == ["finetune-lr0.0005", "modx-alpha3"] * 2
    one = run_study(plan, tmp_path / "one", progress=False)
    for c in reversed(cells):  # a job array, in any order, one cell per process
        res = run_study(plan, tmp_path / "array", cell=c.index, progress=False)
    assert res is not None
    strip = lambda s: {k: v for k, v in s.items()  # noqa: E731
                         if k not in ("cell_seconds", "cell_cpu_seconds")}
    assert strip(res) == strip(one)
    # per-seed paired differences, with intervals as scipy computes them
    rows = {(r["seed"], r["method"]): r for r in one["cells"]}
    d = [rows[(s, "modx")]["retention"] - rows[(s, "finetune")]["retention"] for s in (0, 1)]
    p = next(x for x in one["paired"] if x["method"] == "modx" and x["metric"] == "retention")
    assert p["mean"] == pytest.approx(np.mean(d)) and p["n_seeds"] == 2
    if np.std(d) > 0:
        ref = scipy.stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
        np.testing.assert_allclose(p["ci"], [ref.low, ref.high], rtol=1e-9)
    assert set(one["claims"]) >= {"a_finetune_forgets", "b_rotation_like", "c_out_of_step",
                                  "d_modx_vs_finetune"}
    for c in one["claims"].values():
        assert c["verdict"] in ("holds", "does not hold", "inconclusive")
    assert (tmp_path / "one" / "figures" / "stability_plasticity.png").is_file()
    # both cells of a seed start from the seed's one phase-0 model
    a = json.loads((cells[0].run_dir(tmp_path / "one") / "report.json").read_text())
    b = json.loads((cells[1].run_dir(tmp_path / "one") / "report.json").read_text())
    assert a["methods"]["finetune"]["r1"][0] == b["methods"]["modx"]["r1"][0]
    # phase 0 is evaluated on the old (base) and the new (shifted) test sets
    assert a["methods"]["finetune"]["sets"] == ["domain0", "domain1"]
    # finished cells are skipped: a rerun changes nothing
    again = run_study(plan, tmp_path / "one", progress=False)
    assert strip(again) == strip(one)


def test_shift_stream_shares_its_vocabulary_and_shifts_the_rest():
    cfg = SyntheticConfig(protocol="shift", train_per_domain=400, test_per_domain=50)
    s = SyntheticStream(cfg)
    base, new = s.domain(0, "train"), s.domain(1, "train")
    for key in ("shape", "colour"):  # the same vocabulary, all of it
        assert set(base.attributes[key]) == set(new.attributes[key]) == set(
            range(len(set(new.attributes[key]))))
    assert set(new.attributes["style"]) - set(base.attributes["style"])  # an unseen style
    assert set(new.attributes["tone"]) - set(base.attributes["tone"])  # an unseen tone
    assert np.mean(new.attributes["size"] == 0) > np.mean(base.attributes["size"] == 0) + 0.1
    # caption templates differ: the shifted set is worded in a template the base never uses
    assert set(SHIFT[1]["templates"]) - set(SHIFT[0]["templates"])
    words = lambda d: {c.split(" ")[0] for c in d.captions}  # noqa: E731
    assert words(new) - words(base)


def test_domains_protocol_domain_3_does_not_repeat_domain_0():
    cfg = SyntheticConfig(n_domains=4)
    assert cfg.domain_vocab(3)["shape"] != cfg.domain_vocab(0)["shape"]
    assert cfg.domain_vocab(3)["colour"] != cfg.domain_vocab(0)["colour"]


def test_example_shift_plan_is_the_shift_preset():
    """The docs say examples/study_shift.toml and `--preset shift` are one plan."""
    from pathlib import Path

    from modx.demo import study_plan

    path = Path(__file__).resolve().parents[2] / "examples" / "study_shift.toml"
    assert load_plan(path).to_dict() == study_plan("shift").to_dict()


def _fake_rows(plan, point):
    """Cells of a plan without training: ``point(cell) -> (learning, retention, max_drop)``."""
    from modx.study_records import CellMetrics, CellResult

    rows = []
    for c in plan.cells():
        learning, retention, drop = point(c)
        rows.append(CellResult(c.index, c.seed, c.method, c.value, c.name, CellMetrics(
            phase0_r1=[50.0], learning=learning, retention=retention, max_drop=drop,
            area_old=retention / 2, final_avg=50.0 + learning / 10, geometry=None)))
    return rows


def test_study_classifies_every_seed_and_reads_each_stability_measure(tmp_path, monkeypatch):
    """Known answers: Mod-X learns more than every fine-tuning rate and keeps 2-2.8 points
    more than the fastest: dominating in every seed, (d) holds on its lower bound; on the
    largest drop it is worse than the fastest rate's, so there it does not dominate."""
    from modx.demo import study_plan
    from modx.study_stats import claims, figure_gaps, frontier_table
    from sdtools.viz.study import plasticity_figure

    plan = study_plan("quick")
    assert len(plan.grid["lwf"]) > 1  # claim (e) needs LwF's curve
    # the known answers are on the rate axis; the steps axis has its own test (below)
    assert plan.grid.pop("finetune_steps")
    ft = {1e-4: (5.0, -1.0), 5e-4: (10.0, -5.0), 2e-3: (15.0, -9.0)}
    lwf = {0.3: (8.0, -3.0), 1.0: (10.0, -4.0), 3.0: (12.0, -6.0)}

    def point(c):
        level = 0.3 * c.seed
        if c.method == "finetune":
            x, r = ft[c.value]
            return x + c.seed, r + level, -r - level
        if c.method == "lwf":
            x, r = lwf[c.value]
            return x + c.seed, r + level, -r - level
        if c.method == "modx":
            return 16.0 + c.seed, -7.0 + 0.4 * c.seed + level, 12.0
        return 30.0, 0.0, 0.0

    rows = _fake_rows(plan, point)
    from modx.study_stats import _front

    assert all(pts[-1] == (0.0, 0.0) and len(pts) == 4  # lr -> 0: the phase-0 model
               for pts in _front(rows, plan, "finetune").values())
    assert all(len(pts) == 3 for pts in _front(rows, plan, "lwf").values())
    out = claims(rows, plan)
    d = out["d_modx_vs_finetune"]
    assert d["verdict"] == "holds" and d["value"] == 3.0 and d["classes"]["dominating"] == 3
    assert d["lower"]["mean"] == pytest.approx(2.4)  # 2.0, 2.4, 2.8
    assert d["family"] == ["3.0"]
    drop = d["by_measure"]["max_drop"]
    assert drop["verdict"] == "inconclusive" and drop["classes"]["incomparable"] == 3
    assert set(d["by_measure"]) == {"retention", "max_drop", "area_old"}
    assert out["e_modx_vs_lwf"]["family"] == ["3.0"]
    table = frontier_table(rows, plan)
    assert {g["measure"] for g in table} == {"retention", "max_drop", "area_old"}
    seeds = next(g for g in table if g["method"] == "modx" and g["measure"] == "retention")
    assert seeds["per_seed"]["1"]["below"] == [16.0, -8.7] and seeds["per_seed"]["1"]["class"] \
        == "dominating"
    md = markdown({"plan": plan.to_dict(), "cells": rows, "claims": out, "paired": [],
                   "frontier": table})
    assert "| modx | 3.0 | 1 | dominating |" in md
    assert "the same, on minus the largest drop" in md
    gaps = figure_gaps(table)
    assert [s["class"] for s in gaps[0]["seeds"]] == ["dominating"] * 3
    curves = {"finetune": [{"knob": 1e-4, "learning": {"mean": 5.0},
                            "retention": {"mean": -1.0}}]}
    files = plasticity_figure(curves, tmp_path, gaps, baseline="finetune")
    assert all(p.is_file() for p in files)
    # the whole aggregation on these cells: study.json, report.md and the figure
    import modx.study_stats as ss

    monkeypatch.setattr(ss, "_collect", lambda plan, out, partial=False: rows)
    study = ss.aggregate(plan, tmp_path / "study")
    saved = json.loads((tmp_path / "study" / "study.json").read_text())
    from modx.study_records import CellResult

    assert [CellResult.from_dict(c).to_dict() for c in saved["cells"]] == saved["cells"]
    from modx.study_records import Claims, FrontierRow, PairedRow

    assert Claims.from_dict(saved["claims"]).to_dict() == saved["claims"]
    for key, rec in (("frontier", FrontierRow), ("paired", PairedRow)):
        assert [rec.from_dict(g).to_dict() for g in saved[key]] == saved[key]
    assert json.dumps(Claims.from_dict(saved["claims"]).to_dict()) == json.dumps(
        saved["claims"])  # the file's key order
    assert [r.to_dict() for r in rows] == saved["cells"]
    d = saved["claims"]["d_modx_vs_finetune"]
    assert d["verdict"] == "holds" and d["classes"]["dominating"] == 3
    per_seed = next(g for g in saved["frontier"] if g["method"] == "modx"
                    and g["measure"] == "retention")["per_seed"]
    assert {s["class"] for s in per_seed.values()} == {"dominating"}
    assert study["claims"]["d_modx_vs_finetune"]["verdict"] == "holds"
    assert "dominating" in (tmp_path / "study" / "report.md").read_text()
    assert (tmp_path / "study" / "figures" / "stability_plasticity.png").is_file()


def test_cell_metrics_read_stability_three_ways():
    """Relearning at the end: end-of-stream retention -5, the largest drop 10, the area under
    the old-domain curve -7.5 (mean of -10 and -5)."""
    from types import SimpleNamespace

    from modx.study_stats import STABILITY, cell_metrics

    r1 = [[80.0, 10.0, 10.0], [70.0, 50.0, 12.0], [75.0, 48.0, 60.0]]
    rep = SimpleNamespace(methods={"finetune": SimpleNamespace(r1=r1, geometry=[],
                                                               sets=["d0", "d1", "d2"])})
    m = cell_metrics(rep, "finetune")
    assert (m.retention, m.max_drop, m.area_old) == (-5.0, 10.0, -7.5)
    assert m.learning == 45.0 and m.geometry is None
    assert [STABILITY[k](m) for k in ("retention", "max_drop", "area_old")] == [-5.0, -10.0,
                                                                                 -7.5]


def test_a_second_sweep_axis_joins_finetunes_curve():
    """``finetune_steps`` (fine-tuning over steps per phase) brackets where the learning rates
    do not: a method between two lr points far apart is matched with a tight bracket."""
    from modx.study import Plan
    from modx.study_stats import _front, frontier_table

    grid = {"finetune": [1e-4, 1e-3], "finetune_steps": [5, 20], "modx": [3.0]}
    plan = Plan("two-axes", {"steps": 10, "log_every": 0}, [0, 1, 2], grid, reference=1e-4)
    assert plan.config(0, "finetune_steps", 20).steps == 20
    assert [c.name for c in plan.cells()[:4]] == ["finetune-lr0.0001", "finetune-lr0.001",
                                                  "finetune_steps-steps5",
                                                  "finetune_steps-steps20"]
    pts = {("finetune", 1e-4): (5.0, -1.0), ("finetune", 1e-3): (40.0, -30.0),
           ("finetune_steps", 5): (18.0, -6.0), ("finetune_steps", 20): (22.0, -9.0),
           ("modx", 3.0): (20.0, -5.0)}
    rows = _fake_rows(plan, lambda c: (*pts[(c.method, c.value)], 0.0))
    assert sorted(_front(rows, plan, "finetune")[0]) == [(0.0, 0.0), (5.0, -1.0), (18.0, -6.0),
                                                         (22.0, -9.0), (40.0, -30.0)]
    table = [g for g in frontier_table(rows, plan) if g["measure"] == "retention"]
    assert [g["method"] for g in table] == ["modx"]  # the steps axis is fine-tuning itself
    seed = table[0]["per_seed"]["0"]
    assert seed["class"] == "dominating" and seed["lower"] == 1.0 and seed["upper"] == 4.0


def test_data_seed_draws_each_seeds_synthetic_data(tmp_path):
    """With data_seed each seed's cells (and its phase 0) train and test on data drawn with
    that seed; without it every seed shares seed 0's data."""
    from modx.config import ConfigError
    from modx.study import Plan, _same_training, write_plan
    from sdtools.data.specs import open_data

    base = {"data": "synthetic:protocol=shift,train_per_domain=20,test_per_domain=8"}
    plan = Plan("p", base, [0, 3], {"finetune": [1e-4]}, 1e-4, data_seed=True)
    specs = {s: plan.config(s, "finetune", 1e-4).data for s in plan.seeds}
    assert specs[3] == base["data"] + ",seed=3"
    prints = {s: open_data(spec).fingerprint() for s, spec in specs.items()}
    assert prints[0] != prints[3]
    fixed = Plan("p", base, [0, 3], {"finetune": [1e-4]}, 1e-4)
    assert {fixed.config(s, "finetune", 1e-4).data for s in (0, 3)} == {base["data"]}
    assert Plan("p", {}, [1], {"finetune": []}, data_seed=True).config(
        1, "finetune", None).data == "synthetic:seed=1"
    with pytest.raises(ConfigError, match="only synthetic data can"):
        Plan("p", {"data": "csv:x.csv"}, [0], {"finetune": []}, data_seed=True)
    with pytest.raises(ConfigError, match="fixes the data's seed"):
        Plan("p", {"data": "synthetic:seed=2"}, [0], {"finetune": []}, data_seed=True)
    # a plan file says it; a study folder made without it refuses to be reused with it
    toml = tmp_path / "plan.toml"
    toml.write_text("seeds = [0]\ndata_seed = true\n[grid]\nfinetune = []\n")
    assert load_plan(toml).data_seed is True
    write_plan(fixed, tmp_path / "study")
    with pytest.raises(ConfigError, match="data_seed"):
        _same_training(plan, tmp_path / "study")
