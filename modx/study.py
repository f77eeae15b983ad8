"""Studies: seeds x methods x knob grid, one run directory per cell, paired statistics.

A plan (TOML, or a preset) names a base training config, the seeds, and for each method the
knob it sweeps (``alpha`` for modx, ``lwf_weight`` for lwf, ``lr`` for finetune, the
plasticity-matched baseline, ``replay_size`` for replay). Every seed trains its phase-0 model
once (``DIR/seed{S}/phase0``); each cell copies it and runs its method's phases, so all cells
of a seed start from the same model. Finished cells are skipped; ``--cell I`` runs one cell
alone (a cluster job array), ``--list`` prints them. :mod:`modx.study_stats` turns the cells'
reports into ``study.json``.

A cell is finished when its run report is there, or its compact record
(``DIR/seed{S}/CELL/cell.json``, :mod:`modx.study_archive`): a study kept without its runs
(plan, timings, one small record per finished cell) resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from modx.errors import ConfigError
from sdtools.errors import UserError
from sdtools.io import write_json
from sdtools.log import get_logger
from sdtools.runs import RunDir

from .config import FIELDS, TRAINING_KEYS, TrainConfig, flatten, from_dict, read_toml
from .methods import METHODS
from .study_records import CELL_RECORD

log = get_logger(__name__)


def knob(method: str) -> str | None:
    """What a study sweeps for a method (its declared knob), None for none."""
    c = METHODS.get(method)
    return c.knob if c is not None else None
REFERENCE = "finetune"


@dataclasses.dataclass
class Plan:
    """``base``: TrainConfig keys shared by every cell; ``grid``: method -> knob values (an
    empty list: the method at the base config); ``reference``: finetune's knob value the
    paired differences are taken against (default: the base config's); ``metric``: what
    learning and retention are read from, ``r1`` (mean R@1 of both directions) or
    ``zero_shot:TASK`` (zero-shot top-1 accuracy of a labelled task, e.g. ``zero_shot:class``
    for an ImageFolder evaluation set)."""

    name: str
    base: dict
    seeds: list[int]
    grid: dict[str, list]
    reference: float | None = None
    metric: str = "r1"
    data_seed: bool = False  # each seed also draws the synthetic data (its images and tests)

    def __post_init__(self):
        if not isinstance(self.data_seed, bool):
            raise ConfigError(f"data_seed must be true or false, got {self.data_seed!r}")
        if self.data_seed:
            data = str(self.base.get("data", "synthetic"))
            if data != "synthetic" and not data.startswith("synthetic:"):
                raise ConfigError(f"data_seed = true draws the data anew per seed, which only "
                                  f"synthetic data can; data = {data!r} is fixed (set "
                                  "data_seed = false)")
            if "seed=" in data.replace(";", ","):
                raise ConfigError(f"data = {data!r} fixes the data's seed, and data_seed = true "
                                  "would replace it per seed; keep one of them")
        if not (self.metric == "r1" or (isinstance(self.metric, str)
                                        and self.metric.startswith("zero_shot:")
                                        and self.metric.removeprefix("zero_shot:"))):
            raise ConfigError(f"metric = {self.metric!r}: use \"r1\" or \"zero_shot:TASK\" "
                              "(a labelled task of the evaluation sets, e.g. zero_shot:class)")
        if not isinstance(self.seeds, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in self.seeds):
            raise ConfigError(f"seeds must be a list of non-negative integers (seeds = [0, 1, "
                              f"2]), got {self.seeds!r}")
        if not self.seeds:
            raise ConfigError("a study needs at least one seed")
        if len(set(self.seeds)) < len(self.seeds):
            raise ConfigError(f"seeds {self.seeds} repeat a seed; give each once")
        unknown = [m for m in (self.grid if isinstance(self.grid, dict) else ())
                   if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown method {unknown[0]!r} in [grid]; methods: "
                              f"{', '.join(METHODS)}")
        if not isinstance(self.grid, dict) or REFERENCE not in self.grid:
            raise ConfigError("a study compares against finetune: put it in [grid]")
        for method, values in self.grid.items():
            if not isinstance(values, list):
                raise ConfigError(f"grid.{method} must be a list of knob values")
            if method not in METHODS:
                raise ConfigError(f"unknown method {method!r} in [grid]; methods: "
                                  f"{', '.join(METHODS)}")
            if values and knob(method) is None:
                raise ConfigError(f"{method} has no knob to sweep; give it an empty list")
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad:
                raise ConfigError(f"grid.{method} holds {bad[0]!r}; knob values are numbers")
            if len(set(values)) < len(values):
                raise ConfigError(f"grid.{method} repeats a value ({values}); give each once")
            for v in values or [None]:  # every cell's config is checked when the plan is read
                self.config(self.seeds[0], method, v)
        if self.reference is not None and (isinstance(self.reference, bool) or not isinstance(
                self.reference, (int, float)) or not self.reference > 0):
            raise ConfigError(f"reference is finetune's learning rate to compare against, a "
                              f"number > 0; got {self.reference!r}")
        if self.reference is None:
            self.reference = self.config(self.seeds[0], REFERENCE, None).lr
        if self.grid[REFERENCE] and self.reference not in self.grid[REFERENCE]:
            raise ConfigError(f"the reference learning rate {self.reference:g} is not in "
                              f"grid.finetune {self.grid[REFERENCE]}; add it, or set "
                              "reference to one of them")

    def config(self, seed: int, method: str, value, out: str = "runs/study") -> TrainConfig:
        over = dict(seed=int(seed), methods=[method], out=out, quiet=True)
        if self.data_seed:  # the seed also draws the data (synthetic: its seed option)
            data = str(self.base.get("data", "synthetic"))
            over["data"] = f"{data}{',' if ':' in data else ':'}seed={int(seed)}"
        if value is not None and knob(method) in METHODS[method].options:
            over["method_options"] = {method: {knob(method): value}}
        elif value is not None:
            over[knob(method)] = value
        return from_dict(self.base, f"study plan {self.name}", over)

    def cells(self) -> list[Cell]:
        out = []
        for seed in self.seeds:
            for method, values in self.grid.items():
                for v in (values or [None]):
                    out.append(Cell(len(out), int(seed), method, v))
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Cell:
    index: int
    seed: int
    method: str
    value: object  # the knob value, or None

    @property
    def name(self) -> str:
        if self.value is None:
            return self.method
        label = knob(self.method).removeprefix(self.method + "_")  # lwf-weight1, not lwf-lwf_
        value = repr(float(self.value)) if isinstance(self.value, float) else str(self.value)
        return f"{self.method}-{label}{value.removesuffix('.0')}"  # exact: no rounding

    def run_dir(self, out: Path) -> Path:
        return Path(out) / f"seed{self.seed}" / self.name

    def done(self, out: Path) -> bool:
        """Finished: its run report, or its compact record (:data:`CELL_RECORD`), is there."""
        d = self.run_dir(out)
        return RunDir(d).report_path.is_file() or (d / CELL_RECORD).is_file()


def load_plan(path) -> Plan:
    path = Path(path)
    d = read_toml(path, "study plan")
    unknown = sorted(set(d) - {"base", "seeds", "grid", "reference", "name", "launcher",
                               "metric", "data_seed"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {path}; a plan has name, base, seeds, "
                          "grid, reference, metric, data_seed and launcher")
    base = d.get("base", {})
    if not isinstance(base, dict):
        raise ConfigError(f"base in {path} must be a table ([base]) of training keys")
    flat = flatten(base, f"[base] of {path}")
    bad = sorted(set(flat) - set(FIELDS))
    if bad:
        raise ConfigError(f"unknown training key {bad[0]!r} in [base] of {path}")
    if "seed" in flat:
        raise ConfigError(f"seed in [base] of {path} is not used: each cell's seed comes from "
                          f"seeds; write seeds = [{flat['seed']!r}] instead")
    if "launcher" in d:
        from .launch_options import check_options

        if not isinstance(d["launcher"], dict):
            raise ConfigError(f"launcher in {path} must be a table ([launcher] with parallel, "
                              "time_min, ...); the launcher itself is chosen with --launcher, "
                              f"got {d['launcher']!r}")
        check_options(dict(d["launcher"]), f"[launcher] of {path}")
    return Plan(d.get("name", path.stem), base, d.get("seeds", [0]), d.get("grid", {}),
                d.get("reference"), d.get("metric", "r1"), d.get("data_seed", False))


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock (cells of one seed may run at once in a job array)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def seed_phase0(plan: Plan, seed: int, out: Path, progress: bool) -> RunDir:
    """The seed's phase-0 model, trained once (under a lock) and shared by its cells."""
    import time

    from .train import Trainer

    rd = RunDir(out / f"seed{seed}" / "phase0-run")
    with _lock(out / f"seed{seed}" / ".phase0.lock"):
        if not rd.is_done("phase0", 0):
            from .train.guard import check_out_dir

            t0, c0 = time.time(), time.process_time()
            cfg = plan.config(seed, REFERENCE, None, str(rd.path))
            check_out_dir(rd, cfg, rd.exists())  # before anything is built or written
            tr = Trainer(cfg, resume=rd.exists(), progress=progress)
            if not rd.exists():
                rd.path.mkdir(parents=True, exist_ok=True)
                rd.write_config(cfg.to_dict())
            tr.phase0()
            tr.metrics.close()
            _add_time(out, f"seed{seed}/phase0", time.time() - t0, time.process_time() - c0)
    return rd


def _check_shared_phase0(base: RunDir, seed: int) -> None:
    """The seed's shared phase 0 must be readable before a cell copies it: a damaged file is
    named where it is (not by the cell's copy), with the fix."""
    import json

    from modx.errors import TrainingError
    from sdtools.models.embeddings import Embeddings

    from .train.checkpoint import read_run_file

    fix = (f"delete {base.path} and run the study again to retrain seed {seed}'s phase 0 "
           "(cells that copied it already keep their copy)")
    try:
        read_run_file(base.model_path("phase0", 0))
        json.loads(base.eval_path("phase0", 0).read_text())
        Embeddings.load(base.probe_path("phase0", 0))
    except (UserError, ValueError, OSError) as exc:
        raise TrainingError(f"the shared phase-0 model of seed {seed} is damaged "
                            f"({str(exc).split(';')[0]}); {fix}") from None


def run_cell(plan: Plan, cell: Cell, out, progress: bool = False,
             phase0_progress: bool | None = None) -> Path:
    """Run one cell (skipped when its report exists); returns its run directory.
    ``phase0_progress``: a progress bar for the seed's phase 0 (default: ``progress``)."""
    from .train import Trainer

    out = Path(out)
    d = cell.run_dir(out)
    if cell.done(out):
        return d
    base = seed_phase0(plan, cell.seed, out,
                       progress if phase0_progress is None else phase0_progress)
    cfg = plan.config(cell.seed, cell.method, cell.value, str(d))
    rd = RunDir(d)
    if not rd.is_done("phase0", 0):
        _check_shared_phase0(base, cell.seed)
        rd.phase_dir("phase0", 0).mkdir(parents=True, exist_ok=True)
        for src, dst in zip(base.phase_files("phase0", 0), rd.phase_files("phase0", 0),
                            strict=True):
            shutil.copy2(src, dst)
    if not rd.exists():
        rd.write_config(cfg.to_dict())
    Trainer(cfg, resume=True, progress=progress, notices=False).run()
    return d


# what a study folder holds, with the kind of sdtools output each file must be (None: known
# by its name alone, such as the seeds' run folders, which runs check themselves)
STUDY_ENTRIES = {"plan.json": "plan", "study.json": "study", "report.md": "study",
                 "figures": "figure", "times.json": "times", ".times.lock": None,
                 "seed*": None, "submitit": None}


def prepare(plan: Plan, out, force: bool = False) -> Path:
    """Check the study folder (nothing foreign in it, the same training as its recorded
    plan) and record the plan."""
    from sdtools.io import check_output_dir

    out = Path(out)
    check_output_dir(out, "--out", STUDY_ENTRIES, force)
    _same_training(plan, out)
    write_plan(plan, out)
    return out


def write_plan(plan: Plan, out: Path) -> None:
    """``DIR/plan.json``: the plan, tagged as this tool's (a later study checks against it)."""
    from sdtools.io import tag

    Path(out).mkdir(parents=True, exist_ok=True)
    write_json(Path(out) / "plan.json", {"written_by": tag(), "kind": "plan", **plan.to_dict()})


def run_timed(plan: Plan, c: Cell, out: Path, progress: bool = False) -> float | None:
    """Run one cell, record its wall time; a failure names the cell. Returns the seconds it
    took, None when it was done before."""
    import time

    t0, c0 = time.time(), time.process_time()
    if c.done(out):
        return None
    try:
        run_cell(plan, c, out, progress=False, phase0_progress=progress)
    except UserError as exc:  # say which cell failed, keep the one-line message
        raise type(exc)(f"cell {c.index} ({c.run_dir(out).relative_to(out)}): {exc}") from None
    _add_time(out, str(c.run_dir(out).relative_to(out)), time.time() - t0,
              time.process_time() - c0)
    return time.time() - t0


def finish(plan: Plan, out: Path) -> dict | None:
    """Aggregate when every cell is done (else the finished ones, marked partial)."""
    from .study_stats import aggregate

    finished = [c.done(out) for c in plan.cells()]
    if all(finished):
        return aggregate(plan, out)
    if any(finished):  # the cells finished so far, marked partial, refreshed as more finish
        aggregate(plan, out, partial=True)
    return None


def run_study(plan: Plan, out, cell: int | None = None, progress: bool = True,
              say: Callable[[str], None] | None = None, force: bool = False) -> dict | None:
    """Run every cell (or one); when all are done, aggregate into ``DIR/study.json``. An
    ``out`` folder holding anything a study does not write is refused unless ``force``.
    ``say``: where the progress lines go (default: this module's logger, at INFO)."""
    say = say or log.info
    cells = plan.cells()
    if cell is not None and not 0 <= cell < len(cells):
        raise ConfigError(f"--cell {cell} is outside [0, {len(cells)}); see --list")
    out = prepare(plan, out, force)
    for c in (cells if cell is None else [cells[cell]]):
        took = run_timed(plan, c, out, progress)
        if progress:
            say(f"cell {c.index + 1}/{len(cells)} {c.run_dir(out).relative_to(out)}"
                + (" (done before)" if took is None else f" ({took:.0f} s)"))
    return finish(plan, out)


def _same_training(plan: Plan, out: Path) -> None:
    """A study folder's cells are reused only by a plan that trains them the same way: the
    base training keys and the reference must match the recorded plan (more seeds or knob
    values may be added)."""
    import json

    from sdtools.io import written_by_us

    path = out / "plan.json"
    if not written_by_us(path, "plan"):  # none yet, or a user's file that --force replaces
        return
    try:
        old = json.loads(path.read_text())
        old_base = flatten(old.get("base") or {}, str(path))
    except (ValueError, ConfigError, AttributeError):
        raise ConfigError(f"{path} is unreadable; use another --out for this study") from None
    new_base = flatten(plan.base, "the plan")
    keys = sorted(k for k in set(old_base) | set(new_base)
                  if k in TRAINING_KEYS and old_base.get(k) != new_base.get(k))
    if old.get("reference") not in (None, plan.reference):
        keys.append("reference")
    if old.get("metric", "r1") != plan.metric:  # the cells are the same; the reading is not
        keys.append("metric")
    if old.get("data_seed", False) != plan.data_seed:
        keys.append("data_seed")
    if keys:
        raise ConfigError(f"{out} holds a study trained with other settings ({', '.join(keys)} "
                          "differ from its plan.json); its cells would be reused as they are: "
                          "choose another --out or give the same settings")


def _add_time(out: Path, key: str, seconds: float, cpu: float | None = None) -> None:
    """Wall time of each cell and each seed's phase 0 (``DIR/times.json``), and its process
    time (CPU seconds of the process, all its threads) where measured."""
    from .study_stats import read_all_times, write_times

    with _lock(out / ".times.lock"):  # concurrent --cell workers must not lose each other's
        times, cpus = read_all_times(out)
        times[key] = seconds
        if cpu is not None:
            cpus[key] = cpu
        write_times(out, times, cpus)
