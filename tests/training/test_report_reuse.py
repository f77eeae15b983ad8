"""A run keeps each phase's report geometry in the phase's folder: resuming a finished run
rebuilds report.json byte for byte without computing it again; a changed probe, a damaged
file or another version is computed again; the command line says in one line, also under
-q, that the report is being built."""

import json
import shutil

import numpy as np
import pytest
from helpers import run_cli, tiny_cfg

import sdtools.kept_geometry
import sdtools.report
from modx.config import TrainConfig
from modx.train import Trainer
from sdtools import Embeddings
from sdtools.report import build_report
from sdtools.runs import RunDir

DATA = "synthetic:n_domains=3,train_per_domain=48,test_per_domain=12"
KEPT = [("finetune", 1), ("finetune", 2), ("joint", 1)]


def _cfg(tmp, out):
    return TrainConfig(data=DATA, model=str(tmp / "tiny.json"), phase0_steps=4, steps=2,
                       batch_size=16, methods=["finetune", "joint"], out=str(out), quiet=True,
                       log_every=0)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reuse")
    (tmp / "tiny.json").write_text(json.dumps(tiny_cfg()))
    Trainer(_cfg(tmp, tmp / "run"), progress=False).run()
    return tmp


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run (the tests change it)."""
    shutil.copytree(finished / "run", tmp_path / "run")
    return RunDir(tmp_path / "run")


@pytest.fixture
def computed(monkeypatch):
    """The (method, phase) whose geometry a report computes, and every geometry call."""
    seen = {"kept": [], "calls": 0}
    geometry, write = sdtools.report.geometry, sdtools.kept_geometry.KeptGeometry.write

    def counting(*a, **k):
        seen["calls"] += 1
        return geometry(*a, **k)

    def recording(self, method, t, g):
        seen["kept"].append((method, t))
        return write(self, method, t, g)

    monkeypatch.setattr(sdtools.report, "geometry", counting)
    monkeypatch.setattr(sdtools.kept_geometry.KeptGeometry, "write", recording)
    return seen


def _resume(finished, run):
    Trainer(_cfg(finished, run.path), resume=True, progress=False).run()


def test_the_run_keeps_every_phases_geometry_as_its_report_holds_it(run):
    report = json.loads(run.report_path.read_text())
    for m, t in KEPT:
        kept = json.loads(run.geometry_path(m, t).read_text())
        assert kept["kind"] == "geometry" and kept["written_by"].startswith("sdtools ")
        assert kept["key"]["max_pairs"] == sdtools.report.SAMPLED_PAIRS
        (g,) = [g for g in report["methods"][m]["geometry"] if g["phase"] == t]
        assert (kept["vs_phase0"], kept["vs_prev"]) == (g["vs_phase0"], g["vs_prev"])
    assert not run.geometry_path("phase0", 0).exists()


def test_resuming_a_finished_run_computes_no_geometry_and_writes_the_same_report(
        finished, run, computed):
    before = run.report_path.read_bytes()
    kept = {p: run.geometry_path(*p).read_bytes() for p in KEPT}
    _resume(finished, run)
    assert computed == {"kept": [], "calls": 0}
    assert run.report_path.read_bytes() == before
    assert {p: run.geometry_path(*p).read_bytes() for p in KEPT} == kept
    # the same report as one computed from nothing (sdtools report keeps nothing)
    assert build_report(run).to_dict() == json.loads(before)


def test_a_changed_probe_is_computed_again_with_the_phases_after_it(finished, run, computed):
    e = Embeddings.load(run.probe_path("finetune", 1))
    rng = np.random.default_rng(0)
    moved = Embeddings(e.image + 0.3 * rng.standard_normal(e.image.shape).astype(np.float32),
                       e.text, e.image_of_text, meta=e.meta)
    run.write_probe("finetune", 1, moved)  # as a phase trained again would leave it
    before = json.loads(run.report_path.read_text())
    _resume(finished, run)
    # phase 1 against its new probe, phase 2 against its previous phase; joint untouched
    assert computed["kept"] == [("finetune", 1), ("finetune", 2)]
    after = json.loads(run.report_path.read_text())
    assert after["methods"]["joint"] == before["methods"]["joint"]
    g1 = after["methods"]["finetune"]["geometry"][0]["vs_phase0"]["image"]["rad"]["mean"]
    assert g1 != before["methods"]["finetune"]["geometry"][0]["vs_phase0"]["image"]["rad"]["mean"]
    computed["calls"] = 0
    assert build_report(run).to_dict() == after  # what the probes give now
    # phase 0's probe is every phase's reference: all are computed again
    computed["kept"].clear()
    shutil.copy2(run.probe_path("finetune", 1), run.probe_path("phase0", 0))
    _resume(finished, run)
    assert computed["kept"] == KEPT


def test_a_damaged_file_or_another_version_is_computed_again(finished, run, computed,
                                                             monkeypatch, caplog):
    before = run.report_path.read_bytes()
    path = run.geometry_path("finetune", 2)
    path.write_text("{not json")
    _resume(finished, run)
    assert computed["kept"] == [("finetune", 2)]
    assert f"kept geometry {path} is damaged; computing it again" in caplog.text
    assert run.report_path.read_bytes() == before
    computed["kept"].clear()
    monkeypatch.setattr(sdtools.kept_geometry, "__version__", "99.0")
    _resume(finished, run)
    assert computed["kept"] == KEPT


def test_the_cli_says_the_report_is_being_built_also_under_quiet(finished, run, capsys):
    import modx.cli

    flags = ["train", "--data", DATA, "--model", finished / "tiny.json", "--phase0-steps", 4,
             "--steps", 2, "--batch-size", 16, "--methods", "finetune,joint", "--out",
             run.path, "--resume"]
    line = (f"building the report of {run.path}: 3 phase(s) of 2 method(s) (geometry of 3 "
            "kept in the run, 0 to compute)\n")
    code, out, err = run_cli(modx.cli.main, [*flags, "-q"], capsys)
    assert code == 0 and err == line and out == "", err  # no other line under -q
    run.geometry_path("joint", 1).unlink()
    code, out, err = run_cli(modx.cli.main, flags, capsys)
    assert code == 0, err
    assert line.replace("3 kept in the run, 0", "2 kept in the run, 1") in err
    assert "modx: 3 phases" in err  # the progress lines, without -q


def test_the_notice_is_one_record_at_notice_level_and_a_studys_cells_give_none(
        finished, run, caplog, monkeypatch):
    from sdtools.log import NOTICE

    monkeypatch.delenv("RANK", raising=False)
    caplog.set_level(NOTICE, logger="sdtools")
    Trainer(_cfg(finished, run.path), resume=True, progress=False, notices=False).run()
    assert caplog.records == []  # as a study runs its cells
    _resume(finished, run)
    (rec,) = caplog.records
    assert (rec.name, rec.levelno) == ("sdtools.report", NOTICE)
    assert rec.getMessage().startswith(f"building the report of {run.path}: 3 phase(s)")


def test_other_measuring_code_under_the_same_version_is_computed_again(finished, run, computed,
                                                                      monkeypatch):
    """The key holds a digest of the measures' source: a changed measure recomputes even when
    the version string stayed the same."""
    kept = json.loads(run.geometry_path("finetune", 1).read_text())
    assert kept["key"]["code"] == sdtools.kept_geometry.code_digest()
    monkeypatch.setattr(sdtools.kept_geometry, "code_digest", lambda: "another")
    _resume(finished, run)
    assert computed["kept"] == KEPT
