"""The run directory of a continual run: its layout, written and read here only.

::

    RUN/config.json                 the run's configuration (TrainConfig.to_dict())
    RUN/metrics.jsonl               training and evaluation events, one JSON object a line
    RUN/phase0/                     the shared starting model
    RUN/METHOD/phase{t}/            t = 1..T, one folder per method
        model.pt                    the phase's model and its config
        last.pt                     mid-phase state for --resume (gone once the phase ends)
        eval.json                   {"sets": [names], "specs": [data SPECs],
                                     "retrieval": [RetrievalResult.to_dict()], "train": {...}}
        probe.npz                   the probe embeddings (sdtools Embeddings)
        geometry.json               the phase's report geometry, kept by the trainer so that
                                    a rebuilt report reuses it (keyed by the probes' digests)
    RUN/report.json, report.md, figures/

A trainer (modx is one) writes a run through :class:`RunDir`; the report and the figures read
it through it. The format is neutral: methods, phases, evaluation sets, checkpoints and
metrics; what one method adds to its phase record lives in that record's ``extras``. This
module imports nothing above :mod:`sdtools.io` (probes are read with
:meth:`sdtools.Embeddings.load` on :meth:`RunDir.probe_path`).
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import RunError
from .io import write_json

PHASE0 = "phase0"


LAST = "last.pt"  # the mid-phase checkpoint in a phase folder


def environment() -> dict:
    """What a result was computed with: versions, threads, processor and accelerator (numbers
    differ across machines and thread counts; a record says which)."""
    import os
    import platform

    import torch

    from . import __version__

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"sdtools": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cores": os.cpu_count(), "cpu": cpu, "gpu": gpu, "platform": platform.platform()}


class RunDir:
    """Paths and files of one run directory.

    Parameters
    ----------
    path : str or Path
        The run's folder (see the module docstring for its layout).

    See Also
    --------
    build_report : The report of a run directory.
    draw_all : Its figures.

    Examples
    --------
    >>> from sdtools import RunDir
    >>> rd = RunDir("runs/demo")
    >>> rd.model_path("sgd", 2).as_posix(), rd.probe_path("sgd", 0).as_posix()
    ('runs/demo/sgd/phase2/model.pt', 'runs/demo/phase0/probe.npz')
    """

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---------------------------------------------------------------- paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def report_path(self) -> Path:
        return self.path / "report.json"

    @property
    def report_md_path(self) -> Path:
        return self.path / "report.md"

    def phase_dir(self, method: str, t: int) -> Path:
        return self.path / PHASE0 if t == 0 else self.path / method / f"phase{t}"

    def model_path(self, method: str, t: int) -> Path:
        return self.phase_dir(method, t) / "model.pt"

    def eval_path(self, method: str, t: int) -> Path:
        return self.phase_dir(method, t) / "eval.json"

    def probe_path(self, method: str, t: int) -> Path:
        return self.phase_dir(method, t) / "probe.npz"

    def geometry_path(self, method: str, t: int) -> Path:
        """The phase's report geometry (against phase 0 and the previous phase), kept for a
        rebuilt report; valid while the probes it was computed from are unchanged."""
        return self.phase_dir(method, t) / "geometry.json"

    def phase_files(self, method: str, t: int) -> tuple[Path, Path, Path]:
        """A finished phase's model, evaluation and probe (what a copy of the phase needs)."""
        return self.model_path(method, t), self.eval_path(method, t), self.probe_path(method, t)

    def strategy_path(self, method: str, t: int) -> Path:
        """What a method's later phases need (EWC's Fisher, a replay buffer), beside phase t."""
        return self.phase_dir(method, t) / "strategy.pt"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tb"

    def last_path(self, method: str, t: int) -> Path:
        """The mid-phase checkpoint (with optimizer state) a run resumes from."""
        return self.phase_dir(method, t) / LAST

    # ---------------------------------------------------------------- state
    def exists(self) -> bool:
        """True when the folder holds a run: a ``config.json`` object that names its
        ``methods`` (the one key the run format asks of a trainer's configuration)."""
        try:
            cfg = json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(cfg, dict) and "methods" in cfg

    def is_done(self, method: str, t: int) -> bool:
        return self.model_path(method, t).is_file() and self.eval_path(method, t).is_file()

    def read_config(self) -> dict:
        return _read_json(self.config_path)

    @property
    def environment_path(self) -> Path:
        return self.path / "environment.json"

    def write_config(self, cfg: dict) -> None:
        """The run's config, and beside it the environment it runs in."""
        write_json(self.config_path, cfg)
        write_json(self.environment_path, environment())

    def methods(self) -> list[str]:
        """Methods with at least one finished phase, in the config's order."""
        cfg = self.read_config()
        names = cfg.get("methods") or sorted(p.name for p in self.path.iterdir() if p.is_dir())
        return [m for m in names if self.eval_path(m, 1).is_file()]

    def phases(self, method: str) -> list[int]:
        """Finished phases of a method: 0, 1, ..., up to the first one not evaluated."""
        t = 1
        while self.eval_path(method, t).is_file():
            t += 1
        return list(range(t))

    def read_eval(self, method: str, t: int) -> dict:
        return _read_json(self.eval_path(method, t))

    def write_eval(self, method: str, t: int, sets, retrieval, train: dict,
                   specs=None) -> None:
        """``specs``: the data SPEC of each evaluation set (``run:RUN_DIR`` reopens them)."""
        write_json(self.eval_path(method, t),
                   {"sets": list(sets), "specs": list(specs or []), "retrieval": list(retrieval),
                    "train": train})

    def has_probe(self, method: str, t: int) -> bool:
        return self.probe_path(method, t).is_file()

    def write_probe(self, method: str, t: int, emb) -> None:
        emb.save(self.probe_path(method, t))


def _read_json(path: Path):
    if not path.is_file():
        raise RunError(f"{path} not found: is {path.parent} a run directory?")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is not valid JSON ({exc}); the run directory is damaged") \
            from None
