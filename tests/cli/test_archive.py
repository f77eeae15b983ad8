"""A study kept without its runs (``modx study --archive``): the archive aggregates to the
same study as the runs it came from, a study run on it trains nothing it recorded, and what
it cannot trust (another cell's record, a foreign file, a seed whose cells started from
different phase-0 models) is refused naming it."""

import json
import shutil

import pytest
from helpers import fake_cell as _fake_cell

from modx.errors import ConfigError


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from modx.study import Plan, write_plan
    from modx.study_archive import write_archive

    out = tmp_path_factory.mktemp("study")
    plan = Plan("s", {"steps": 1}, [0, 1], {"finetune": [5e-4], "modx": [2.0, 3.0]})
    write_plan(plan, out)
    for c in plan.cells():
        _fake_cell(plan, c, out)
    dest = tmp_path_factory.mktemp("keep") / "archive"
    assert write_archive(plan, out, dest) == len(plan.cells())
    return plan, out, dest


def _copy(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def test_the_archive_holds_no_runs_and_aggregates_to_the_same_study(study, tmp_path):
    from modx.study_stats import _collect, aggregate

    plan, out, dest = study
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["plan.json"] + sorted(f"seed{c.seed}/{c.name}/cell.json"
                                           for c in plan.cells())
    assert [r.to_dict() for r in _collect(plan, dest)] == \
        [r.to_dict() for r in _collect(plan, out)]
    a = aggregate(plan, _copy(dest, tmp_path))
    b = aggregate(plan, out)
    for key in ("cells", "paired", "frontier", "claims"):
        assert a[key] == b[key]


def test_a_study_on_the_archive_trains_nothing_it_recorded(study, tmp_path, monkeypatch):
    import modx.train
    from modx.launch import work_left
    from modx.study import run_cell

    plan, _, dest = study
    run = _copy(dest, tmp_path)
    monkeypatch.setattr(modx.train, "Trainer", None)  # any training would fail
    for c in plan.cells():
        assert c.done(run)
        assert run_cell(plan, c, run) == c.run_dir(run)
    assert work_left(plan, run) == ([], [])
    shutil.rmtree(plan.cells()[-1].run_dir(run))  # seed 1's modx at alpha 3 left to run
    seeds, todo = work_left(plan, run)
    assert seeds == [1] and [c.index for c in todo] == [plan.cells()[-1].index]


def _edit(path, **change):
    rec = json.loads(path.read_text())
    rec.update(change)
    path.write_text(json.dumps(rec))


def test_another_cells_record_is_refused(study, tmp_path):
    from modx.study_stats import _collect

    plan, _, dest = study
    run = _copy(dest, tmp_path)
    a, b = plan.cells()[1], plan.cells()[2]  # seed 0: modx at alpha 2 and at alpha 3
    shutil.copy2(b.run_dir(run) / "cell.json", a.run_dir(run) / "cell.json")
    with pytest.raises(ConfigError, match=r"cell 1 .*cell\.json records another cell"):
        _collect(plan, run)


def test_a_record_sdtools_did_not_write_is_refused(study, tmp_path):
    from modx.study_stats import _collect

    plan, _, dest = study
    run = _copy(dest, tmp_path)
    _edit(plan.cells()[0].run_dir(run) / "cell.json", written_by="someone")
    with pytest.raises(ConfigError, match=r"cell 0 .*not a cell record sdtools wrote"):
        _collect(plan, run)
    _edit(plan.cells()[0].run_dir(run) / "cell.json", written_by=json.loads(
        (dest / "plan.json").read_text())["written_by"], retention="high")
    with pytest.raises(ConfigError, match=r"cell 0 .*retention"):
        _collect(plan, run)


def test_cells_of_a_seed_from_different_phase0_models_are_refused(study, tmp_path):
    from modx.study_stats import _collect

    plan, _, dest = study
    run = _copy(dest, tmp_path)
    cell = plan.cells()[4]  # seed 1, modx at alpha 2
    path = cell.run_dir(run) / "cell.json"
    rec = json.loads(path.read_text())
    _edit(path, phase0_r1=[x - 0.5 for x in rec["phase0_r1"]])
    with pytest.raises(ConfigError, match=rf"seed 1 started from different phase-0 models "
                                          rf".*{cell.name} against the rest"):
        _collect(plan, run)
    _edit(path, phase0_r1=[x + 1e-9 for x in rec["phase0_r1"]])  # rounding is not a model
    assert len(_collect(plan, run)) == len(plan.cells())


def test_an_archive_over_runs_or_over_the_study_is_refused(study, tmp_path):
    from modx.study_archive import write_archive

    plan, out, dest = study
    with pytest.raises(ConfigError, match=r"holds runs \(seed0/.*\), not an archive"):
        write_archive(plan, out, _copy(out, tmp_path))
    with pytest.raises(ConfigError, match="the study's own folder"):
        write_archive(plan, out, out)
    again = _copy(dest, tmp_path, "again")
    assert write_archive(plan, out, again) == len(plan.cells())  # an earlier archive: replaced


def test_the_cli_writes_an_archive_and_refuses_without_a_study(study, tmp_path):
    import subprocess
    import sys

    plan, out, _ = study
    toml = tmp_path / "plan.toml"
    toml.write_text('name = "s"\nseeds = [0, 1]\n[base]\nsteps = 1\n[grid]\n'
                    'finetune = [5e-4]\nmodx = [2.0, 3.0]\n')
    cmd = [sys.executable, "-m", "modx.cli", "study", str(toml)]
    ok = subprocess.run(cmd + ["--out", str(out), "--archive", str(tmp_path / "a")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"archive: {len(plan.cells())} of {len(plan.cells())} cells" in ok.stdout
    bad = subprocess.run(cmd + ["--out", str(tmp_path / "none"), "--archive",
                                str(tmp_path / "b")], capture_output=True, text=True)
    assert bad.returncode == 2 and "holds no study (no plan.json)" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "b").exists()


def test_an_archive_renders_its_page_partial_without_training(study, tmp_path, monkeypatch):
    import importlib.util

    import modx.train
    from modx.study_archive import aggregate_archive

    plan, _, dest = study
    monkeypatch.setattr(modx.train, "Trainer", None)  # any training would fail
    keep = _copy(dest, tmp_path, "keep")
    shutil.rmtree(plan.cells()[-1].run_dir(keep))
    s = aggregate_archive(keep, tmp_path / "agg")
    assert s["partial"] and s["cells_done"] == len(plan.cells()) - 1
    assert not (keep / "study.json").exists()  # the archive itself is left as it was
    spec = importlib.util.spec_from_file_location(
        "results_pages", __import__("pathlib").Path(__file__).parents[2] / "tools" /
        "results_pages.py")
    pages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pages)
    _, claims = pages.study_page("s", tmp_path / "agg", tmp_path / "pages", source=keep)
    verdicts = [c["verdict"].split(" (")[0] for c in s["claims"].values()]
    assert len(claims) == len(verdicts) and verdicts
    assert all(f"**{v}**" in line for line, v in zip(claims, verdicts, strict=True))
    # the index: the rendered study replaces its entry, another page's entry stays listed with
    # its claims, an entry whose page is gone is dropped, text around the markers is kept
    (tmp_path / "pages" / "old.md").write_text("# old\n")
    index = "\n".join(["intro", pages.BEGIN, "- [Study `old`](results/old.md)",
                       "  - (a) a claim: **holds**, 3 seeds", "- [Study `s`](results/s.md)",
                       "- [Study `gone`](results/gone.md)", "  - (a) x: **holds**",
                       pages.END, "outro"])
    new = pages.update_index(index, {"s": "- [Study `s` new](results/s.md)\n" +
                                     "\n".join(claims)}, tmp_path / "pages")
    assert new.split(pages.BEGIN)[1].split(pages.END)[0].strip().splitlines() == [
        "- [Study `old`](results/old.md)", "  - (a) a claim: **holds**, 3 seeds",
        "- [Study `s` new](results/s.md)", *claims]
    assert new.startswith("intro\n") and new.endswith("outro")
    text = (tmp_path / "pages" / "s.md").read_text()
    assert f"from the study's archive `{keep}`, aggregated from its cells' records" in text
    assert f"{len(plan.cells()) - 1} of {len(plan.cells())} cells finished" in text
    assert f"{len(plan.cells()) - 1} cells trained with sdtools" in text


@pytest.mark.slow
def test_a_study_resumed_from_its_archive_retrains_the_same_phase0(tmp_path):
    """Cell 0 runs; the study is archived and resumed in a new folder, which retrains the
    seed's phase-0 model for cell 1: the aggregate's same-phase-0 check passes (training is
    reproducible) and reads cell 0 from its record."""
    from modx.demo import study_plan
    from modx.study import Plan, run_study
    from modx.study_archive import write_archive

    base = dict(study_plan("quick").base, phases="base+contiguous:2")
    plan = Plan("q", base, [0], {"finetune": [1e-4, 5e-4]}, data_seed=True)
    first, keep, resumed = (tmp_path / n for n in ("first", "keep", "resumed"))
    assert run_study(plan, first, cell=0, progress=False) is None  # a cell left
    assert write_archive(plan, first, keep) == 1
    shutil.copytree(keep, resumed)
    study = run_study(plan, resumed, progress=False)
    assert not (resumed / "seed0" / plan.cells()[0].name / "report.json").exists()
    kept = json.loads((keep / "seed0" / plan.cells()[0].name / "cell.json").read_text())
    assert study["cells"][0]["retention"] == kept["retention"]
    assert study["cells"][1]["phase0_r1"] == kept["phase0_r1"]  # the same phase-0 model
