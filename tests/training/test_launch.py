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
    d.pop("environment", None)  # where the aggregate ran (its threads), not the cells
    return d


@pytest.mark.slow
def test_local_launcher_names_a_failure_resumes_and_matches_one_process(tmp_path,
                                                                        monkeypatch):
    plan = _plan({"finetune": [5e-4], "modx": [3.0]}, seeds=[0])
    said = []
    monkeypatch.setenv("MODX_FAIL_AT", "modx:1:0:exit")  # the modx cell's job dies
    with pytest.raises(TrainingError, match=r"cell 1 \(seed0/modx-alpha3\).*log .*launch again"):
        launch(plan, tmp_path / "jobs", "local", {"parallel": 2, "cpus_per_cell": 1},
               say=said.append)
    assert any("seed0 phase 0 started (1 of 3 jobs)" in s for s in said)
    assert (tmp_path / "jobs" / "seed0" / "finetune-lr0.0005" / "report.json").is_file()
    assert list((tmp_path / "jobs" / "submitit").iterdir())  # the jobs' logs
    monkeypatch.delenv("MODX_FAIL_AT")
    said.clear()
    via = launch(plan, tmp_path / "jobs", "local", {"parallel": 2, "cpus_per_cell": 1},
               say=said.append)
    assert said == [s for s in said if "cell 1 (seed0/modx-alpha3) started (1 of 1 jobs)" in s] \
        and said  # resumed: the failed cell alone
    times = json.loads((tmp_path / "jobs" / "times.json").read_text())["seconds"]
    assert {"seed0/phase0", "seed0/finetune-lr0.0005", "seed0/modx-alpha3"} <= set(times)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as each job computes (2 at once on 2 cores); results follow it
    try:
        one = run_study(plan, tmp_path / "one", progress=False)
    finally:
        torch.set_num_threads(before)
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


class _Job:
    """A stand-in for a submitit job: done after ``polls`` checks; ``fails`` raises on
    result() as a failed submitit job does."""

    def __init__(self, log, name, polls, fails):
        import pathlib

        self.log, self.name, self.left, self.fails = log, name, polls, fails
        self.job_id, self.paths = name, type("P", (), {"stderr": pathlib.Path("/x/log.err")})

    def done(self):
        self.left -= 1
        if self.left <= 0 and ("end", self.name) not in self.log:
            self.log.append(("end", self.name))
        return self.left <= 0

    def result(self):
        from submitit.core.utils import FailedJobError

        if self.fails:
            raise FailedJobError("Traceback\nRuntimeError: boom")


def test_the_local_pool_starts_the_next_job_as_one_ends_and_stops_on_a_failure():
    from modx.launch import _pool

    log, polls = [], {"a": 1, "b": 6, "c": 1, "d": 1, "e": 1}
    ex = type("Ex", (), {"submit": lambda self, fn, name: (
        log.append(("start", name)) or _Job(log, name, polls[name], name == "c"))})()
    running: list = []
    with pytest.raises(TrainingError, match=r"^c \(job c\): RuntimeError: boom; log"):
        _pool(ex, [(None, n) for n in "abcde"], list("abcde"), running, 2, lambda m: None,
              poll=0)
    starts = [n for k, n in log if k == "start"]
    assert starts == ["a", "b", "c"]  # d and e never start once c failed
    # c started when a ended, while b (the long job) still ran: no wave waited on b
    assert log.index(("start", "c")) < log.index(("end", "b"))
    assert ("end", "b") in log and running == []  # b, running at the failure, was awaited


def test_jobs_compute_on_their_share_of_the_cores(monkeypatch):
    import os

    import torch

    import modx.launch as L

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert L.job_threads("local", {"parallel": 4}) == 4
    assert L.job_threads("local", {"parallel": 32}) == 1
    assert L.job_threads("local", {}) == 1  # 16 jobs at once on 16 cores
    assert L.job_threads("local", {"parallel": 4, "cpus_per_cell": 2}) == 2
    assert L.job_threads("slurm", {}) == 4 and L.job_threads("slurm", {"cpus_per_cell": 8}) == 8
    seen = []
    monkeypatch.setattr(L, "seed_phase0", lambda *a, **k: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        L.phase0_job(None, 0, "x", threads=1)
    finally:
        torch.set_num_threads(before)
    assert seen == [1]


def test_the_local_pool_starts_a_cell_once_its_phase0_is_done_and_others_meanwhile():
    from modx.launch import _pool

    log, polls = [], {"p0": 1, "p1": 5, "c0": 1, "c1": 1, "c0b": 1}
    ex = type("Ex", (), {"submit": lambda self, fn, name: (
        log.append(("start", name)) or _Job(log, name, polls[name], False))})()
    _pool(ex, [(None, n) for n in ("p0", "p1", "c1", "c0", "c0b")],
          ["p0", "p1", "c1", "c0", "c0b"], [], 2, lambda m: None,
          needs=[None, None, "p1", "p0", "p0"], poll=0)
    starts = [n for k, n in log if k == "start"]
    # seed 1's cell waits for its phase 0 (the long job); seed 0's cells run meanwhile
    assert starts.index("c0") < starts.index("c1") and starts.index("c0b") < starts.index("c1")
    assert log.index(("end", "p1")) < log.index(("start", "c1"))
    assert log.index(("start", "c0")) < log.index(("end", "p1"))
