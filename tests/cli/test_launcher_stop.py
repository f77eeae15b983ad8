"""SIGTERM or Ctrl-C to `modx study --launcher local` stops its jobs (they would otherwise go
on and write their cells), says so in a line, and prints no traceback."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tiny_cfg

pytest.importorskip("submitit")

ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")


def _job_processes(folder: Path) -> list[int]:
    """Processes whose command line names the study's submitit folder (its jobs)."""
    out = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(folder) in cmd and int(p.name) != os.getpid():
            out.append(int(p.name))
    return out


def _ctrl_c_by_default() -> None:
    """In the study's process before it starts: Ctrl-C's default action, whatever the test
    runner's (a runner started in the background of a shell without job control ignores
    Ctrl-C, and its children inherit that: the study then never sees the test's Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c to the group"])
def test_an_interrupted_local_launch_stops_its_jobs(tmp_path, how):
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_cfg()))
    plan = tmp_path / "plan.toml"
    plan.write_text(  # long enough to be interrupted while a job trains
        "seeds = [0]\n[base]\n"
        'data = "synthetic:n_domains=2,train_per_domain=40,test_per_domain=8"\n'
        f'model = "{tmp_path / "tiny.json"}"\nphase0_steps = 100000\nsteps = 2\n'
        "batch_size = 8\nworkers = 0\n[grid]\nfinetune = [5e-4]\n")
    out = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, "-m", "modx.cli", "study", str(plan), "--out",
                             str(out), "--launcher", "local", "--parallel", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True, preexec_fn=_ctrl_c_by_default)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((out / "seed0").glob("phase0-run/config.json")):
            time.sleep(0.5)  # the phase-0 job is training
        assert list((out / "seed0").glob("phase0-run/config.json")), proc.stderr.read()
        assert _job_processes(out / "submitit")
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == (143 if how == "sigterm" else 130), err
    assert "Traceback" not in err, err
    assert "stopped 1 running job(s)" in err and err.strip().endswith("interrupted"), err
    deadline = time.time() + 20
    while time.time() < deadline and _job_processes(out / "submitit"):
        time.sleep(0.5)
    assert _job_processes(out / "submitit") == []


def test_a_ctrl_c_while_local_jobs_start_is_held_not_lost():
    """Ignoring Ctrl-C while submitit started the jobs lost one that came then (the study
    waited on a job that never ends; seen once in CI). It is held and raised once they have
    started, so the study stops them; a process started meanwhile has it blocked, so a
    Ctrl-C to the process group does not reach it."""
    from modx.launch import _ctrl_c_held

    probe = ("import signal, sys; "
             "sys.stdout.write(str(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])))")
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # a worker may ignore it
    try:
        with pytest.raises(KeyboardInterrupt):
            with _ctrl_c_held("local"):
                child = subprocess.Popen([sys.executable, "-c", probe],
                                         stdout=subprocess.PIPE, text=True)
                os.kill(os.getpid(), signal.SIGINT)
                held = True  # held: nothing is raised inside (the next bytecode would)
        assert held
        assert child.communicate(timeout=60)[0] == "True"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
