"""Study grids through submitit: the local executor gives the same study.json as one process;
Slurm jobs are described as far as sbatch."""

import json
import re

import pytest

from modx.errors import ConfigError, TrainingError
from modx.launch import check_options, launch, slurm_parameters
from modx.study import Plan, run_study

BASE = dict(data="synthetic:protocol=shift,train_per_domain=48,test_per_domain=12",
            phases="base+contiguous:2", phase0_steps=3, steps=2, batch_size=8, log_every=0,
            model=None)


def _plan(grid=None, seeds=(0, 1)):
    base = {k: v for k, v in BASE.items() if v is not None}
    return Plan("tiny", base, list(seeds), grid or {"finetune": [1e-4, 5e-4], "modx": [3.0]})


def _without_times(d):
    d = dict(d)
    d.pop("cell_seconds", None)  # wall and process time differ between any two runs
    d.pop("cell_cpu_seconds", None)
    return d


@pytest.mark.slow
def test_local_launcher_names_a_failure_resumes_and_matches_one_process(tmp_path,
                                                                        monkeypatch):
    plan = _plan({"finetune": [5e-4], "modx": [3.0]}, seeds=[0])
    said = []
    monkeypatch.setenv("MODX_FAIL_AT", "modx:1:0:exit")  # the modx cell's job dies
    with pytest.raises(TrainingError, match=r"cell 1 \(seed0/modx-alpha3\).*log .*launch again"):
        launch(plan, tmp_path / "jobs", "local", {"parallel": 2}, say=said.append)
    assert any("1 phase-0 models submitted" in s for s in said)
    assert (tmp_path / "jobs" / "seed0" / "finetune-lr0.0005" / "report.json").is_file()
    assert list((tmp_path / "jobs" / "submitit").iterdir())  # the jobs' logs
    monkeypatch.delenv("MODX_FAIL_AT")
    said.clear()
    via = launch(plan, tmp_path / "jobs", "local", {"parallel": 2}, say=said.append)
    assert said == [s for s in said if "1 cells submitted (1 of 1)" in s] and said  # resumed
    times = json.loads((tmp_path / "jobs" / "times.json").read_text())["seconds"]
    assert {"seed0/phase0", "seed0/finetune-lr0.0005", "seed0/modx-alpha3"} <= set(times)
    one = run_study(plan, tmp_path / "one", progress=False)
    a = json.loads((tmp_path / "one" / "study.json").read_text())
    b = json.loads((tmp_path / "jobs" / "study.json").read_text())
    assert _without_times(a) == _without_times(b) and _without_times(one) == _without_times(via)


def test_launcher_settings_and_slurm_script(tmp_path):
    with pytest.raises(ConfigError, match="unknown launcher setting 'gpus'"):
        check_options({"gpus": 1})
    with pytest.raises(ConfigError, match="time_min .* non-negative integer"):
        check_options({"time_min": "2h"})
    with pytest.raises(ConfigError, match="unknown launcher 'pbs'"):
        launch(_plan(), tmp_path / "x", "pbs", {})
    from submitit.slurm.slurm import _make_sbatch_string

    p = slurm_parameters("shift", {"partition": "gpu", "time_min": 90, "gpus_per_cell": 1,
                                    "cpus_per_cell": 8, "mem_gb": 32, "parallel": 10})
    import shutil

    if shutil.which("srun") is None:  # no cluster here: said in one line, before any job
        with pytest.raises(ConfigError, match="no Slurm here"):
            launch(_plan(), tmp_path / "y", "slurm", {})
    script = _make_sbatch_string(command="python -m x", folder=tmp_path / "logs",
                                 map_count=20, **p)
    for line in ("--partition=gpu", "--time=90", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--mem=32G", "--array=0-19%10", "--job-name=modx-shift"):
        assert f"#SBATCH {line}" in script


def test_cli_launcher_flags(tmp_path, capsys):
    from modx.cli import main

    body = ('[base]\ndata = "synthetic:protocol=shift,train_per_domain=48,'
            'test_per_domain=12"\nphases = "base+contiguous:2"\nbatch_size = 8\n')
    plan, bad = tmp_path / "plan.toml", tmp_path / "bad.toml"
    plan.write_text('seeds = [0]\n[grid]\nfinetune = []\n' + body)
    bad.write_text('seeds = [0]\n[grid]\nfinetune = []\n[launcher]\nparallel = "two"\n' + body)
    for argv, msg in (
            ([str(plan), "--out", str(tmp_path / "o"), "--parallel", "2"], "--parallel is a "
             "launcher setting"),
            ([str(bad), "--out", str(tmp_path / "o")], r"parallel in \[launcher\] of .*bad.toml "
             "must be a non-negative integer")):
        with pytest.raises(SystemExit) as e:
            main(["study", *argv])
        assert e.value.code == 2
        assert re.search(msg, capsys.readouterr().err)
