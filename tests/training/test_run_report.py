"""The typed run report: a real run's report.json reads back whole; a changed shape is
refused in one line naming the key; figures, report.md and studies read it; sdtools names no
modx method."""

import copy
import json
import re
from pathlib import Path

import pytest
from helpers import tiny_cfg

from modx.methods import METHODS
from modx.train import Trainer
from sdtools.report import build_report, markdown, summary_rows
from sdtools.run_report import SCHEMA, ReportShapeError, RunReport, as_report

DATA = "synthetic:n_domains=3,train_per_domain=48,test_per_domain=12"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from modx.config import TrainConfig

    tmp = tmp_path_factory.mktemp("rr")
    (tmp / "tiny.json").write_text(json.dumps(tiny_cfg()))
    cfg = TrainConfig(data=DATA, model=str(tmp / "tiny.json"), phase0_steps=4, steps=2,
                      batch_size=16, methods=["finetune", "joint"], out=str(tmp / "run"),
                      quiet=True, log_every=0)
    report = Trainer(cfg, progress=False).run()
    return Path(cfg.out), report


def test_the_report_written_reads_back_whole(run):
    path, report = run
    d = json.loads((path / "report.json").read_text())
    assert d["schema"] == SCHEMA
    back = RunReport.read(path / "report.json")
    assert back.to_dict() == d == report.to_dict()
    # key for key and in the file's order: what a rewrite writes is the file as it is
    assert json.dumps(back.to_dict(), indent=2) + "\n" == (path / "report.json").read_text()
    ft = back.methods["finetune"]
    assert ft.n_phases == 3 and len(ft.geometry) == 2 and ft.geometry[1].phase == 2
    assert ft.sets == ["domain0", "domain1", "domain2"]
    # the trainer recorded how each method is drawn, from the method's own declaration
    assert ft.style == {"colour": METHODS["finetune"].colour, "dashed": False}
    assert back.methods["joint"].style["dashed"] is True
    # a report rebuilt by sdtools from the run directory keeps the recorded styles
    again = build_report(path)
    assert again.methods["joint"].style == back.methods["joint"].style
    assert again.to_dict()["methods"]["finetune"]["r1"] == d["methods"]["finetune"]["r1"]


def test_a_schema_1_report_reads_with_its_method_lists_as_extras(run):
    """Reports before per-method extras kept Mod-X's share of rows at the top level (None
    for every other method); read, it lands in that method's extras, and nowhere else."""
    d = json.loads((run[0] / "report.json").read_text())
    del d["schema"]
    n = len(d["methods"]["finetune"]["r1"])
    d["methods"]["finetune"]["selected_share"] = [None, 0.25, 0.5][:n]
    d["methods"]["joint"]["selected_share"] = [None] * n
    rep = as_report(d)
    assert rep.schema == SCHEMA == 2
    assert rep.methods["finetune"].extras == {"selected_share": [None, 0.25, 0.5][:n]}
    assert rep.methods["joint"].extras == {}
    assert "selected_share" not in rep.to_dict()["methods"]["finetune"]
    d["schema"] = 2  # in the current schema such a key is an unknown key
    with pytest.raises(ReportShapeError, match="unknown key"):
        as_report(d)


def _broken(d):
    m = d["methods"]["finetune"]
    g = m["geometry"][0]
    yield "methods.finetune: missing r1", lambda: m.pop("r1")
    yield "unknown key(s) r5", lambda: m.__setitem__("r5", m["r1"])
    yield "methods.finetune.r1", lambda: m["r1"].pop()
    yield "methods.finetune.r1", lambda: m["r1"][0].append(1.0)
    yield "methods.finetune.i2t.5", lambda: m["i2t"]["5"][0].__setitem__(0, "x")
    yield "geometry[0].vs_phase0: missing deviation", lambda: g["vs_phase0"].pop("deviation")
    yield "geometry[0].vs_prev.image: missing rad", lambda: g["vs_prev"]["image"].pop("rad")
    yield "per_set.domain1.deviation: missing top1", lambda: g["vs_phase0"]["per_set"]["domain1"][
        "deviation"].pop("top1")
    pro = g["vs_phase0"]["image"]["procrustes"]
    yield "vs_phase0.image.procrustes: missing null_heldout", lambda: pro.pop("null_heldout")
    yield "vs_phase0.image.procrustes.rigidity: expected a number, got str", \
        lambda: pro.__setitem__("rigidity", "0.9")
    yield "vs_phase0.image.procrustes: missing rigidity_ci", lambda: pro.pop("rigidity_ci")
    yield "vs_phase0.image.procrustes: unknown key(s) rigidty", \
        lambda: pro.__setitem__("rigidty", 0.5)
    yield "vs_phase0.deviation.top1.t2i: missing lost", \
        lambda: g["vs_phase0"]["deviation"]["top1"]["t2i"].pop("lost")
    yield "vs_prev: unknown key(s) per_set", \
        lambda: g["vs_prev"].__setitem__("per_set", g["vs_phase0"]["per_set"])
    yield "vs_phase0.per_set_skipped: null; leave the key out", \
        lambda: g["vs_phase0"].__setitem__("per_set_skipped", None)
    yield "methods.finetune.geometry", lambda: m["geometry"].pop()
    yield "schema 3", lambda: d.__setitem__("schema", 3)
    yield "methods.finetune.extras.x", lambda: m.__setitem__("extras", {"x": [1.0]})
    yield "methods.finetune.style", lambda: m.__setitem__("style", {"color": "red"})


def test_geometry_reads_as_records_with_what_may_be_absent_as_none(run):
    """Attribute access down to the measures; the held-out gain is the held-out share over
    its null, None where withheld; a topology record written before its rank reading, or a
    cross null before its tolerance, reads (None) and is written back as it was."""
    from modx.study_stats import cell_metrics

    d = json.loads((run[0] / "report.json").read_text())
    rep = RunReport.from_dict(d)
    g = rep.methods["finetune"].geometry[-1].vs_phase0
    old = g.per_set["domain0"]
    raw = d["methods"]["finetune"]["geometry"][-1]["vs_phase0"]["per_set"]["domain0"]
    pro = raw["text"]["procrustes"]
    assert old.text.procrustes.rigidity == pro["rigidity"]
    assert old.image.rad.mean == raw["image"]["rad"]["mean"]
    assert g.of_set("domain0") is old and g.of_set("no such set") is g
    m = cell_metrics(rep, "finetune")
    gain = None if pro["explained_heldout"] is None else (pro["explained_heldout"]
                                                          - pro["null_heldout"])
    assert m.geometry.heldout_gain_text == gain
    assert m.geometry.relative_max_angle == raw["deviation"]["relative_rotation"]["max_angle"]
    older = copy.deepcopy(d)
    geo = older["methods"]["finetune"]["geometry"][0]["vs_phase0"]
    for k in ("metric_kept", "rank_corr", "rank_corr_null", "n_moved", "groups", "n_items",
              "warnings"):
        del geo["image"]["topology"][k]
    null = geo["deviation"]["cross_residual"]["null"]
    if null is not None:
        null.pop("tolerance")
    back = RunReport.from_dict(copy.deepcopy(older))
    top = back.methods["finetune"].geometry[0].vs_phase0.image.topology
    assert top.rank_reading is None and top.topology_kept == geo["image"]["topology"][
        "topology_kept"]
    assert back.to_dict() == older
    del geo["image"]["topology"]["n_pairs"]
    with pytest.raises(ReportShapeError, match="image.topology: missing n_pairs"):
        RunReport.from_dict(older)
    geo["image"]["topology"]["n_pairs"] = 1
    geo["image"]["topology"]["rank_corr"] = 0.5  # a rank reading must come whole
    with pytest.raises(ReportShapeError, match="image.topology: missing metric_kept, "
                                               "rank_corr_null, n_moved, groups"):
        RunReport.from_dict(older)


def test_a_changed_shape_is_refused_naming_the_key(run):
    original = json.loads((run[0] / "report.json").read_text())
    n = len(list(_broken(copy.deepcopy(original))))
    for i in range(n):
        d = copy.deepcopy(original)
        expect, damage = list(_broken(d))[i]
        damage()
        with pytest.raises(ReportShapeError) as exc:
            RunReport.from_dict(d)
        msg = str(exc.value)
        assert expect in msg and "\n" not in msg and "sdtools report" in msg, (i, msg)


@pytest.mark.slow
def test_figures_markdown_and_rows_read_the_typed_report(run, tmp_path):
    from sdtools.viz.phases import draw_all

    path, report = run
    rows = summary_rows(report)
    assert [r["method"] for r in rows] == ["finetune", "joint"]
    assert rows[0]["domain0_r1_last"] == report.methods["finetune"].r1[-1][0]
    md = markdown(report)
    assert "## finetune: R@1" in md and "Mod-X" not in md
    d = report.to_dict()
    del d["methods"]["finetune"]["geometry"][0]["vs_phase0"]["image"]["procrustes"]
    with pytest.raises(ReportShapeError, match="procrustes"):
        draw_all(d, tmp_path / "figs")
    assert not (tmp_path / "figs").exists()
    files = draw_all(report, tmp_path / "figs", run_dir=path)
    assert len(files) == 16


def test_a_study_names_the_cell_whose_report_changed_shape(tmp_path):
    from modx.errors import ConfigError
    from modx.study import Plan, run_study

    (tmp_path / "tiny.json").write_text(json.dumps(tiny_cfg()))
    plan = Plan("t", {"data": DATA, "model": str(tmp_path / "tiny.json"), "phase0_steps": 3,
                      "steps": 1, "batch_size": 16, "phases": "contiguous:2", "log_every": 0},
                [0], {"finetune": [5e-4]})
    run_study(plan, tmp_path / "s", progress=False)
    # the study's cell rows read back as records and write back key for key
    from modx.study_records import CellResult, Claims
    from sdtools.records import RecordError

    study = json.loads((tmp_path / "s" / "study.json").read_text())
    cells = study["cells"]
    claims = Claims.from_dict(study["claims"], "study.json.claims")
    assert claims.d_modx_vs_finetune is None and claims.to_dict() == study["claims"]
    rows = [CellResult.from_dict(c, "study.json") for c in cells]
    assert [r.to_dict() for r in rows] == cells and rows[0].metrics.geometry is not None
    assert list(rows[0].to_dict()) == list(cells[0])
    del cells[0]["heldout_gain_text"]  # the geometry of a cell comes whole or not at all
    with pytest.raises(RecordError, match=r"^study.json.cells\[0\]: missing heldout_gain_text$"):
        CellResult.from_dict(cells[0], "study.json.cells[0]")
    rep = tmp_path / "s" / "seed0" / "finetune-lr0.0005" / "report.json"
    d = json.loads(rep.read_text())
    d["methods"]["finetune"].pop("r1")
    rep.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"cell 0 .*missing r1"):
        run_study(plan, tmp_path / "s", progress=False)


def test_sdtools_names_no_modx_method():
    """Method names, colours and line styles come from the run report, not from sdtools."""
    root = Path(__file__).resolve().parents[2] / "sdtools"
    names = sorted(METHODS)
    for f in root.rglob("*.py"):
        text = f.read_text()
        if f.name == "checkpoints.py":  # "modx" there is a checkpoint file format's name
            text = text.replace('"modx"', "")
        for name in names:
            assert not re.search(rf"[\"']{name}[\"']", text), (f, name)


def test_check_geometry_reads_a_record_key_for_key_and_names_a_missing_key():
    import numpy as np
    import pytest

    import sdtools
    from sdtools.pairwise import geometry
    from sdtools.run_report import ReportShapeError, check_geometry

    rng = np.random.default_rng(0)
    V = rng.standard_normal((60, 8)).astype(np.float32)
    iot = np.repeat(np.arange(60), 2)
    T = (V[iot] + 0.3 * rng.standard_normal((120, 8))).astype(np.float32)
    a = sdtools.Embeddings(V, T, iot)
    b = sdtools.Embeddings(V + 0.1 * rng.standard_normal(V.shape).astype(np.float32), T, iot)
    g = geometry(a, b, None, per_set=False)
    assert check_geometry(g, "g", nested=False) is g
    del g["image"]["procrustes"]["rigidity"]
    with pytest.raises(ReportShapeError, match="rigidity"):
        check_geometry(g, "g", nested=False)
