"""Orchestration of a continual run: set-up, phase 0, every method's phases, resume, report.

A run trains phase 0 once (or starts from ``init``), then every method runs phases 1..T from
that same phase-0 model. After each phase rank 0 evaluates every evaluation set (no
collective: the other ranks wait at a barrier), saves the probe embeddings and writes the run
directory through :class:`sdtools.runs.RunDir`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import torch

from modx.errors import TrainingError
from sdtools.classify import class_groups
from sdtools.data.base import loader_workers
from sdtools.dist import barrier, rank_world
from sdtools.io import write_text
from sdtools.log import get_logger
from sdtools.models.build import (
    Loaded,
    build_model,
    load_state_dict_checked,
    make_preprocess,
    make_tokenizer,
    resolve_model_cfg,
)
from sdtools.models.checkpoints import load_checkpoint
from sdtools.models.configs import tiny_clip_cfg
from sdtools.progress import bar
from sdtools.runs import RunDir

from ..config import TrainConfig
from ..data import PhaseTensors
from ..evaluate import evaluate_phase
from ..methods import Strategy, make
from . import checkpoint
from .datasets import open_run_data
from .fisher import fisher_diagonal
from .guard import check_out_dir
from .metrics import MetricsLogger
from .phase import train_phase

log = get_logger(__name__)

FAIL_ENV = "MODX_FAIL_AT"  # tests: "METHOD:PHASE:STEP[:exit|int|term]" fails there


def init_distributed(device: torch.device, timeout_min: float = 60.0) -> None:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU).

    ``timeout_min``: how long a collective may wait. The other ranks wait at a barrier while
    rank 0 evaluates a phase, which can take longer than NCCL's default of 10 minutes on a
    large probe."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        import datetime

        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                             timeout=datetime.timedelta(minutes=timeout_min))
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


class Trainer:
    """One continual run. ``progress``: progress lines and bars (default: unless
    ``cfg.quiet``); ``notices``: the one line before the report is built, shown by the command
    line also under ``-q`` (a study turns it off for its cells)."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool | None = None,
                 force: bool = False, notices: bool = True):
        self.cfg = cfg.validate()
        self.resume, self.force, self.notices = resume, force, notices
        self.progress = (not cfg.quiet) if progress is None else progress
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        init_distributed(self.device, cfg.dist_timeout_min)
        self.rank, self.world = rank_world()
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if cfg.batch_size % self.world:
            raise TrainingError(f"batch_size {cfg.batch_size} must split evenly over "
                                f"{self.world} processes")
        self.run_dir = RunDir(cfg.out)
        self.out = self.run_dir.path
        self.resumed_mid_phase = False
        self._tensors: dict = {}
        self._setup_data()
        self._setup_model_cfg()
        self.metrics = MetricsLogger(self.run_dir.metrics_path,
                                     self.run_dir.tensorboard_dir if cfg.tensorboard else None,
                                     enabled=self.rank == 0)

    # ------------------------------------------------------------------ set-up
    def _setup_data(self) -> None:
        self.phases, self.evals, self.base_data = open_run_data(self.cfg)

    def _setup_model_cfg(self) -> None:
        cfg = self.cfg
        self.init_loaded = None
        if cfg.init is not None:
            self.init_loaded = load_checkpoint(cfg.init, model=cfg.model)
            self.model_cfg = self.init_loaded.model.sdtools_info["model_cfg"]
            self.arch = self.init_loaded.model.sdtools_info["arch"]
        elif cfg.model is None:
            size = getattr(getattr(self.phases[0], "config", None), "image_size", 32)
            self.model_cfg, self.arch = tiny_clip_cfg(image_size=size), "tiny-synthetic"
        else:
            self.arch, self.model_cfg = resolve_model_cfg(cfg.model)
        self.preprocess = make_preprocess(self.model_cfg)
        self.train_transform = make_preprocess(self.model_cfg, train=True) if cfg.augment \
            else None
        self.tokenizer = make_tokenizer(self.model_cfg)

    def tensors(self, p: int, data=None) -> PhaseTensors:
        key = p if data is None else ("custom", p, data.spec)
        phase = data if data is not None else self.phases[p]
        if getattr(phase, "streamed", False):
            from ..stream import StreamTensors

            return StreamTensors(phase, self.preprocess, self.tokenizer, self.train_transform)
        if key not in self._tensors:
            self._tensors[key] = PhaseTensors(
                data if data is not None else self.phases[p], self.preprocess, self.tokenizer,
                max_bytes=int(self.cfg.preload_gb * 2**30),
                progress=self.progress and self.rank == 0, train_transform=self.train_transform)
        return self._tensors[key]

    def workers_for(self, data) -> int:
        """DataLoader workers for ``data`` (``workers``, or the default for its kind)."""
        return loader_workers(self.cfg.workers, data, self.world)

    def release(self, p: int, data) -> None:
        """Forget the tensors of a dataset made for one phase (cumulative unions), so memory
        does not grow with the number of phases."""
        self._tensors.pop(("custom", p, data.spec), None)

    def named_params(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    # ------------------------------------------------------------------ helpers
    def say(self, msg: str) -> None:
        if self.progress and self.rank == 0:
            log.info(msg)

    def bar(self, total: int, initial: int, desc: str):
        return bar(self.progress and self.rank == 0, total, desc, unit="step", initial=initial)

    def autocast(self):
        if self.cfg.precision == "amp_bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def save(self, obj: dict, path: Path) -> None:
        if self.rank == 0:
            checkpoint.save(obj, path)

    def new_model(self) -> torch.nn.Module:
        """The run's initial weights (seeded); the global RNG is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            return build_model(self.model_cfg).to(self.device)

    def fail_point(self, method: str, t: int, step: int) -> None:
        """Deterministic failure injection for tests (``MODX_FAIL_AT``)."""
        spec = os.environ.get(FAIL_ENV)
        if not spec:
            return
        m, p, s, *how = spec.split(":")
        if (m, int(p), int(s)) != (method, t, step):
            return
        how = how[0] if how else "exit"
        if how == "exit":
            os._exit(3)  # a crash: nothing is cleaned up
        if how == "int":  # what Python's Ctrl-C handler does, also where SIGINT is ignored
            raise KeyboardInterrupt  # (a job started in the background ignores SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)

    def fisher_diagonal(self, p: int, n_batches: int) -> dict[str, torch.Tensor]:
        return fisher_diagonal(self, p, n_batches)

    def teacher_cache(self, teacher, pt: PhaseTensors) -> dict:
        """The old model's features for every image and caption of the phase, computed once
        (images through the evaluation transform, decoded by the loader's workers)."""
        from sdtools.data.base import ImageDataset, from_workers

        img, txt = [], []
        bs = 512
        n = pt.data.n_images
        pbar = bar(self.progress and self.rank == 0, n + len(pt.data.captions), "teacher cache",
                   unit="item")
        with torch.inference_mode(), self.autocast():
            if pt.images is not None:
                parts = (pt.images[s:s + bs] for s in range(0, n, bs))
            else:
                parts = (x for _, x in from_workers(torch.utils.data.DataLoader(
                    ImageDataset(pt.data, pt.preprocess), batch_size=bs,
                    num_workers=self.workers_for(pt.data),
                    pin_memory=self.device.type == "cuda")))
            for x in parts:
                img.append(teacher.encode_image(x.to(self.device)).float())
                pbar.update(len(x))
            for s in range(0, len(pt.data.captions), bs):
                txt.append(teacher.encode_text(pt.tokens[s:s + bs].to(self.device)).float())
                pbar.update(len(pt.tokens[s:s + bs]))
        pbar.close()
        return {"img": torch.cat(img), "txt": torch.cat(txt)}

    # ------------------------------------------------------------------ the run
    def run(self):
        """Train every method's phases and write the run report; returns the
        :class:`sdtools.run_report.RunReport` on rank 0, None on the others."""
        try:
            return self._run()
        finally:
            self.metrics.close()

    def _run(self):
        cfg = self.cfg
        check_out_dir(self.run_dir, cfg, self.resume, self.force)  # every rank, before writing
        self.preflight()
        barrier()
        if self.rank == 0 and not self.resume:
            self.out.mkdir(parents=True, exist_ok=True)
            self.run_dir.write_config(cfg.to_dict())
        barrier()
        self.print_plan()
        self.phase0()
        for method in cfg.methods:
            self.run_method(method)
        # the report is rank 0's alone, after the last collective: the other ranks finish now
        # instead of waiting at a barrier while it is built (minutes on a large probe)
        report = None
        if self.rank == 0:
            from sdtools.report import build_report, markdown

            from ..methods import styles

            # the phases' geometry is kept in their folders for a resumed run's report
            report = build_report(self.run_dir, progress=self.progress,
                                  styles=styles(cfg.methods), keep_geometry=True,
                                  notice=self.notices)
            report.write(self.run_dir.report_path)
            write_text(self.run_dir.report_md_path, markdown(report))
        return report

    def preflight(self) -> None:
        """What would fail a phase, checked before anything is written: every phase must hold
        a batch of images with distinct captions."""
        b = self.cfg.batch_size
        for t, data in enumerate(self.phases):
            if data is None or (t == 0 and self.cfg.init is not None) or \
                    getattr(data, "streamed", False):  # a stream's size is not known before
                continue
            if b > data.n_images:
                raise TrainingError(f"batch_size {b} is larger than phase {t} ({data.n_images} "
                                    "images); lower batch_size or give more data")
            if len(set(data.captions)) < b:
                raise TrainingError(f"phase {t} has only {len(set(data.captions))} distinct "
                                    f"captions, fewer than a batch of {b}; lower batch_size or "
                                    "check the captions")

    def print_plan(self) -> None:
        cfg = self.cfg
        T = len(self.phases) - 1
        p0 = f"from {cfg.init}" if cfg.init else f"{cfg.phase0_steps} steps from scratch"
        steps = f"{cfg.epochs} epochs" if cfg.epochs else f"{cfg.steps} steps"
        sizes = ", ".join("-" if p is None else f"{len(p.shards)} shard(s)" if
                          getattr(p, "streamed", False) else str(p.n_images) for p in self.phases)
        self.say(
            f"modx: {T + 1} phases (images per phase: {sizes}); phase 0 {p0}; phases 1..{T}: "
            f"{steps} each; methods: {', '.join(cfg.methods)}; batch {cfg.batch_size}; device "
            f"{self.device}{f' x {self.world} processes' if self.world > 1 else ''}; "
            f"evaluation on {', '.join(n for n, _ in self.evals)}; run dir {self.out}"
        )

    def _fresh_model(self) -> torch.nn.Module:
        model = self.new_model()
        if self.init_loaded is not None:
            load_state_dict_checked(model, self.init_loaded.model.state_dict(), self.arch)
        return model

    def phase0(self) -> None:
        rd = self.run_dir
        self.model = self._fresh_model()
        if rd.is_done("phase0", 0):
            checkpoint.load_into(self.model, rd.model_path("phase0", 0), self.model_cfg,
                                 self.arch)
            return
        if self.init_loaded is not None:
            self.save(checkpoint.model_payload(self.model, self.arch, self.model_cfg,
                                               self.cfg.to_dict(), 0, "phase0"),
                      rd.model_path("phase0", 0))
        else:
            train_phase(self, 0, "phase0", Strategy(self.cfg), None, self.phases[0],
                        self.cfg.phase0_steps, self.cfg.phase0_lr)
        self.finish_phase("phase0", 0, {}, None)

    def _steps(self, data) -> int:
        if self.cfg.epochs:
            return max(1, int(self.cfg.epochs * data.n_images // self.cfg.batch_size))
        return self.cfg.steps

    def run_method(self, method: str) -> None:
        rd = self.run_dir
        strategy = make(method, self.cfg)
        if strategy.single_run:  # joint: one model from the initialisation on all the data
            if not rd.is_done(method, 1):
                self.model = self._fresh_model()
                parts = self.phases if self.base_data is None else [self.base_data,
                                                                     *self.phases[1:]]
                data = strategy.phase_data(1, parts)
                steps = self._steps(data) if self.cfg.epochs else (
                    self.cfg.phase0_steps * (self.phases[0] is not None)
                    + self.cfg.steps * (len(self.phases) - 1))
                stats = train_phase(self, 1, method, strategy, None, data, steps,
                                    self.cfg.phase0_lr)
                self.finish_phase(method, 1, stats, strategy)
            return
        self.model = self.new_model()
        checkpoint.load_into(self.model, rd.model_path("phase0", 0), self.model_cfg, self.arch)
        for t in range(1, len(self.phases)):
            if rd.is_done(method, t):
                checkpoint.load_into(self.model, rd.model_path(method, t), self.model_cfg,
                                     self.arch)
                state = rd.strategy_path(method, t)
                if state.is_file():
                    strategy.load_state_dict(checkpoint.read_state(state))
                continue
            teacher = None
            if strategy.needs_teacher:  # the method's policy: the phase's start, or phase 0
                teacher = self.new_model()
                if strategy.teacher == "initial":
                    checkpoint.load_into(teacher, rd.model_path("phase0", 0), self.model_cfg,
                                         self.arch)
                else:
                    teacher.load_state_dict(self.model.state_dict())
                teacher.eval().requires_grad_(False)
            data = strategy.phase_data(t, self.phases)
            stats = train_phase(self, t, method, strategy, teacher, data, self._steps(data),
                                self.cfg.lr)
            self.finish_phase(method, t, stats, strategy)

    def finish_phase(self, method: str, t: int, stats: dict, strategy) -> None:
        rd = self.run_dir
        if self.rank == 0:
            state = strategy.state_dict() if strategy is not None else {}
            if state:  # what later phases of this method need (EWC, replay), before eval.json
                self.save(state, rd.strategy_path(method, t))
            sets, results, probe = evaluate_phase(
                Loaded(self.model, self.preprocess, self.tokenizer), self.evals, self.device,
                workers=self.workers_for, linear_probe=self.cfg.linear_probe)
            probe.meta.update(class_groups(self.evals))  # labelled sets' classes, as groups
            rd.write_probe(method, t, probe)
            rd.write_eval(method, t, sets, results, stats,
                          specs=[data.spec for _, data in self.evals])
            if t > 1:
                with contextlib.suppress(FileNotFoundError):
                    rd.strategy_path(method, t - 1).unlink()
            r1 = [round((r["i2t"]["1"] + r["t2i"]["1"]) / 2, 1) for r in results]
            self.metrics.log(event="eval", method=method, phase=t, sets=sets, r1=r1)
            self.say(f"  {rd.phase_dir(method, t).relative_to(self.out)}: R@1 per evaluation "
                     f"set {r1}")
        barrier()
