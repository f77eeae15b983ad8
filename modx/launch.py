"""Study grids on a job engine: each seed's phase 0, then the cells, submitted through
submitit (Slurm job arrays on a cluster, its local executor on one machine).

The launching process checks and records the plan, submits the seeds' phase-0 models first
(the cells copy them), then the unfinished cells, waits, and aggregates the same
``study.json`` one process would write. Finished cells are skipped, so launching again
resumes a study. Job logs go to ``DIR/submitit``.

Settings, from the plan file's ``[launcher]`` table or from flags: ``partition``,
``time_min`` (per job), ``gpus_per_cell``, ``cpus_per_cell`` (also the threads each job
computes with; by default the local launcher shares the machine's cores among the jobs at
once, Slurm jobs take 4), ``mem_gb``, ``account``, ``parallel`` (jobs at once: Slurm's array
parallelism; the local launcher keeps that many running, starting the next as one ends).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from modx.errors import ConfigError, TrainingError
from sdtools.errors import Interrupted
from sdtools.log import get_logger
from sdtools.runs import RunDir

from .launch_options import LAUNCHERS, OPTIONS, check_options  # noqa: F401 (re-exported)
from .study import Plan, finish, prepare, run_timed, seed_phase0

log = get_logger(__name__)


def slurm_parameters(name: str, opts: dict) -> dict:
    """submitit's SlurmExecutor parameters for one cell per job."""
    p = {"job_name": f"modx-{name}", "time": opts.get("time_min", 240), "nodes": 1,
         "ntasks_per_node": 1, "cpus_per_task": opts.get("cpus_per_cell", 4),
         "array_parallelism": opts.get("parallel", 64)}
    if opts.get("gpus_per_cell"):
        p["gpus_per_node"] = opts["gpus_per_cell"]
    if opts.get("mem_gb"):
        p["mem"] = f"{opts['mem_gb']}G"
    for k in ("partition", "account"):
        if opts.get(k):
            p[k] = opts[k]
    return p


def executor(launcher: str, folder: Path, name: str, opts: dict):
    try:
        import submitit
    except ImportError:
        raise ConfigError("--launcher needs submitit: pip install 'sdtools-modx[slurm]'") \
            from None
    if launcher == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=opts.get("time_min", 24 * 60),
                             gpus_per_node=opts.get("gpus_per_cell", 0))
        return ex
    if launcher == "slurm":
        import shutil

        if shutil.which("srun") is None:
            raise ConfigError("--launcher slurm: no Slurm here (srun is not on PATH); launch "
                              "from the cluster's login node, or use --launcher local")
        ex = submitit.SlurmExecutor(folder)
        ex.update_parameters(**slurm_parameters(name, opts))
        return ex
    raise ConfigError(f"unknown launcher {launcher!r}; use {' or '.join(LAUNCHERS)}")


def job_threads(launcher: str, opts: dict) -> int:
    """Threads each job computes with: ``cpus_per_cell``, else for the local launcher this
    machine's cores shared among the jobs at once (``parallel``), for Slurm its default of 4
    CPUs per job. PyTorch would otherwise take every core of the machine in every job, and
    jobs running side by side then fight over the cores."""
    if opts.get("cpus_per_cell"):
        return int(opts["cpus_per_cell"])
    if launcher == "local":
        return max(1, (os.cpu_count() or 1) // int(opts.get("parallel", os.cpu_count() or 1)))
    return 4


def _use_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def phase0_job(plan: Plan, seed: int, out: str, threads: int | None = None) -> int:
    """A job: the seed's phase-0 model, on ``threads`` threads."""
    _use_threads(threads)
    seed_phase0(plan, seed, Path(out), progress=False)
    return seed


def cell_job(plan: Plan, index: int, out: str, threads: int | None = None) -> int:
    """A job: one cell, timed like ``--cell``, on ``threads`` threads."""
    _use_threads(threads)
    run_timed(plan, plan.cells()[index], Path(out))
    return index


def _pool(ex, calls: list[tuple], names: list[str], running: list, parallel: int,
          say: Callable[[str], None], needs: list[str | None] | None = None,
          poll: float = 0.5) -> None:
    """Keep ``parallel`` local jobs running, starting the next ready one as one ends (waves
    would leave cores idle while a wave's longest job runs on). ``needs[i]``: the name of the
    job that job ``i`` waits for (a cell, its seed's phase-0 model), None for none; a job
    whose need is still queued or running waits, and the next ready one starts instead.
    ``running`` is kept current for the caller to stop on an interrupt; a failure stops
    further starts, the jobs running are waited for, and the first failure is raised
    (:func:`_wait`)."""
    import time

    queue = list(zip(calls, names, needs or [None] * len(calls), strict=True))
    held: list = []  # (job, name) pairs running
    failure: TrainingError | None = None
    started = 0
    while held or (queue and failure is None):
        busy = {n for _, n in held} | {n for _, n, _ in queue}
        ready = [q for q in queue if q[2] is None or q[2] not in busy]
        while ready and failure is None and len(held) < parallel:
            item = ready.pop(0)
            queue.remove(item)
            (fn, *args), name, _ = item
            with _ctrl_c_held("local"):
                job = ex.submit(fn, *args)
            held.append((job, name))
            running[:] = [j for j, _ in held]
            started += 1
            say(f"local: {name} started ({started} of {len(calls)} jobs); logs in "
                f"{job.paths.stderr.parent}")
        time.sleep(poll)
        for pair in [p for p in held if p[0].done()]:
            held.remove(pair)
            running[:] = [j for j, _ in held]
            try:
                _wait([pair[0]], [pair[1]])
            except TrainingError as exc:
                failure = failure or exc
    if failure is not None:
        raise failure


def _wait(jobs, names: list[str]) -> None:
    """Wait for every job; the first failure is a one-line error naming its cell and log."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    failed = []
    for job, name in zip(jobs, names, strict=True):
        try:
            job.result()
        except (FailedJobError, UncompletedJobError) as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            why = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines
                       else "no message")
            failed.append(f"{name} (job {job.job_id}): {why.strip()}; log {job.paths.stderr}")
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise TrainingError(f"{failed[0]}{more}; launch again to rerun what did not finish")


def work_left(plan: Plan, out: Path) -> tuple[list[int], list]:
    """The seeds whose phase-0 model is still to train (only seeds with cells left: an
    archive's finished seeds need none) and the unfinished cells."""
    todo = [c for c in plan.cells() if not c.done(out)]
    seeds = [s for s in plan.seeds if any(c.seed == s for c in todo)
             and not RunDir(out / f"seed{s}" / "phase0-run").is_done("phase0", 0)]
    return seeds, todo


def launch(plan: Plan, out, launcher: str, opts: dict | None = None, force: bool = False,
           say: Callable[[str], None] | None = None) -> dict | None:
    """Run the study's unfinished work as jobs; returns the aggregate (None if cells are
    left, which cannot happen unless a job failed). ``say``: where the progress lines go
    (default: this module's logger, at INFO)."""
    say = say or log.info
    if launcher not in LAUNCHERS:
        raise ConfigError(f"unknown launcher {launcher!r}; use {' or '.join(LAUNCHERS)}")
    opts = check_options(dict(opts or {}))
    if launcher == "local" and opts.get("gpus_per_cell"):
        import torch

        if torch.cuda.device_count() < opts["gpus_per_cell"]:
            raise ConfigError(f"gpus_per_cell = {opts['gpus_per_cell']}, but this machine has "
                              f"{torch.cuda.device_count()} CUDA GPU(s); drop it for the local "
                              "launcher, or launch where the GPUs are")
    out = prepare(plan, out, force)
    ex = executor(launcher, out / "submitit", plan.name, opts)
    threads = job_threads(launcher, opts)
    seeds, todo = work_left(plan, out)
    jobs: list = []  # the jobs running now (stopped on an interrupt)
    phase0_names = {s: f"seed{s} phase 0" for s in seeds}
    cell_names = [f"cell {c.index} ({c.run_dir(out).relative_to(out)})" for c in todo]
    try:
        if launcher == "local":  # one pool: a seed's cells start once its phase 0 is done
            _pool(ex, [(phase0_job, plan, s, str(out), threads) for s in seeds]
                  + [(cell_job, plan, c.index, str(out), threads) for c in todo],
                  list(phase0_names.values()) + cell_names, jobs,
                  int(opts.get("parallel", os.cpu_count() or 1)), say,
                  needs=[None] * len(seeds) + [phase0_names.get(c.seed) for c in todo])
        for what, items, fn, names in (() if launcher == "local" else (
                ("phase-0 models", seeds, phase0_job, list(phase0_names.values())),
                ("cells", [c.index for c in todo], cell_job, cell_names))):
            if not items:
                continue
            with _ctrl_c_held(launcher):
                jobs[:] = ex.map_array(fn, [plan] * len(items), items, [str(out)] * len(items),
                                       [threads] * len(items))
            say(f"{launcher}: {len(items)} {what} submitted; logs in {out / 'submitit'}")
            _wait(list(jobs), names)
    except (KeyboardInterrupt, Interrupted):
        n = _stop(jobs, launcher)
        log.warning("%s: stopped %d running job(s) of this study; launch again to resume it "
                    "(finished cells are kept)", launcher, n)
        raise
    return finish(plan, out)


@contextlib.contextmanager
def _ctrl_c_held(launcher: str):
    """While the local executor starts its jobs, Ctrl-C is blocked in this thread (the mask is
    inherited: submitit's controller and the jobs start with it blocked, so a Ctrl-C to the
    process group reaches this process alone, with no traceback from each of them) and caught
    by a handler that only notes it (for threads that do not block it). A Ctrl-C held or noted
    is raised as ``KeyboardInterrupt`` once the jobs have started, so they are stopped.
    Ignoring it there lost one that came while they started, and the study waited on jobs
    that never end."""
    if (launcher != "local" or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):  # (already ignored: kept)
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a held one is noted now
        signal.signal(signal.SIGINT, old)
    if got:
        raise KeyboardInterrupt


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux ``/proc``; none elsewhere)."""
    out = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(p.name))
    return out


def _stop(jobs, launcher: str) -> int:
    """Stop the jobs still running: a local job's tasks are killed (a job ignores SIGTERM and
    resumes from its last checkpoint when launched again), a Slurm job cancelled. Returns
    how many were running."""
    n = 0
    for job in jobs:
        if launcher == "local":
            proc = getattr(job, "_process", None)
            if proc is None or proc.poll() is not None:
                continue
            n += 1
            for pid in _children(proc.pid) or [proc.pid]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        else:
            with contextlib.suppress(Exception):
                if not job.done():
                    n += 1
                    job.cancel(check=False)
    for job in jobs:
        proc = getattr(job, "_process", None)
        if launcher == "local" and proc is not None:
            with contextlib.suppress(Exception):
                proc.wait(timeout=15)
    return n
