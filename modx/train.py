"""The phase loop: AdamW + cosine schedule, precision, DDP, atomic checkpoints, resume.

A run trains phase 0 once (or starts from ``init``), then every method runs phases 1..T from
that same phase-0 model. After each phase it evaluates every evaluation set, saves the probe
embeddings, and writes the run directory laid out as :mod:`sdtools.report` describes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from sdtools.checkpoints import (
    Loaded,
    build_model,
    load_checkpoint,
    load_state_dict_checked,
    make_preprocess,
    make_tokenizer,
    read_checkpoint_file,
)
from sdtools.data import open_data
from sdtools.extract import rank_world
from sdtools.io import atomic_path, write_json
from sdtools.models import tiny_clip_cfg

from .config import TrainConfig
from .evaluate import evaluate_phase
from .losses import clip_loss
from .strategies import Strategy, make
from .stream import PhaseTensors, batches, split_phases

LOGIT_MAX = math.log(100.0)


class TrainingError(ValueError):
    """A run that cannot go on; the message says why and what was kept."""


def init_distributed(device: torch.device) -> None:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")


def _set_name(spec: str) -> str:
    kind, _, rest = spec.partition(":")
    if kind in ("csv", "karpathy"):
        parts = rest.split(":")
        return Path(parts[0]).stem + (f":{parts[2]}" if len(parts) > 2 else "")
    return spec


def cosine_lr(step: int, total: int, warmup: float) -> float:
    """Multiplier of the base lr: linear warmup over ``warmup * total`` steps, then cosine."""
    w = int(round(warmup * total))
    if step < w:
        return (step + 1) / w
    span = max(total - w, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - w, span) / span))


def param_groups(model: torch.nn.Module, weight_decay: float):
    """open_clip's convention: no weight decay on gains, biases, embeddings' scales, logit_scale."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
        (no_decay if exclude else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay}]


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool | None = None):
        self.cfg = cfg.validate()
        self.resume = resume
        self.progress = (not cfg.quiet) if progress is None else progress
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        init_distributed(self.device)
        self.rank, self.world = rank_world()
        if cfg.batch_size % (self.world * cfg.grad_accum):
            raise TrainingError(
                f"batch_size {cfg.batch_size} must split evenly over {self.world} process(es) "
                f"x {cfg.grad_accum} accumulation step(s)"
            )
        self.out = Path(cfg.out)
        self.resumed_mid_phase = False
        self._tensors: dict = {}
        self._setup_data()
        self._setup_model_cfg()
        self._log = None

    # ------------------------------------------------------------------ set-up
    def _setup_data(self) -> None:
        cfg = self.cfg
        evals = []
        if cfg.data.split(":")[0] == "synthetic":
            from sdtools.synthetic import SyntheticData, SyntheticStream, parse_synthetic_spec

            scfg, _, _, n = parse_synthetic_spec(cfg.data.partition(":")[2])
            stream = SyntheticStream(scfg)
            if cfg.phases == "domain":
                self.phases = [stream.domain(k, "train", n=n) for k in range(scfg.n_domains)]
            else:
                everything = SyntheticData(scfg, tuple(range(scfg.n_domains)), "train", n)
                self.phases = split_phases(everything, cfg.phases, seed=cfg.seed)
            evals = [(f"domain{k}", stream.domain(k, "test", n=cfg.eval_n))
                     for k in range(scfg.n_domains)]
        else:
            self.phases = split_phases(open_data(cfg.data), cfg.phases, seed=cfg.seed)
        if cfg.eval_data:
            evals = [(_set_name(s), open_data(s)) for s in cfg.eval_data]
        if not evals:
            raise TrainingError("no evaluation data: set eval_data (a list of data SPECs)")
        self.evals = evals
        if cfg.init is not None:
            self.phases = [None, *self.phases]  # phase 0 is the given model

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
            from sdtools.checkpoints import resolve_model_cfg

            self.arch, self.model_cfg = resolve_model_cfg(cfg.model)
        self.preprocess = make_preprocess(self.model_cfg)
        self.tokenizer = make_tokenizer(self.model_cfg)

    def tensors(self, p: int, data=None) -> PhaseTensors:
        key = p if data is None else ("custom", p, data.spec)
        if key not in self._tensors:
            self._tensors[key] = PhaseTensors(data if data is not None else self.phases[p],
                                              self.preprocess, self.tokenizer,
                                              progress=self.progress and self.rank == 0)
        return self._tensors[key]

    def named_params(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    # ------------------------------------------------------------------ logging
    def log(self, **event) -> None:
        if self.rank:
            return
        if self._log is None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._log = open(self.out / "metrics.jsonl", "a")  # noqa: SIM115
            if self.cfg.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    raise TrainingError("tensorboard logging needs `pip install tensorboard`") \
                        from None
                self._tb = SummaryWriter(str(self.out / "tb"))
        event["time"] = time.time()
        self._log.write(json.dumps(event) + "\n")
        self._log.flush()
        if self.cfg.tensorboard and "loss" in event:
            tag = f"{event.get('method', 'phase0')}/phase{event.get('phase')}"
            for k in ("loss", "clip", "lr"):
                if k in event:
                    self._tb.add_scalar(f"{tag}/{k}", event[k], event.get("step", 0))

    def say(self, msg: str) -> None:
        if self.progress and self.rank == 0:
            print(msg, flush=True)

    # ------------------------------------------------------------------ checkpoints
    def _ckpt(self, model, opt, sched_step, t, step, method, strategy, done: bool) -> dict:
        return {
            "format": "modx",
            "arch": self.arch,
            "model_cfg": self.model_cfg,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict() if opt is not None else {},
            "phase": t,
            "step": step,
            "sched_step": sched_step,
            "method": method,
            "done": done,
            "strategy": strategy.state_dict() if strategy is not None else {},
            "config": self.cfg.to_dict(),
        }

    def save(self, obj: dict, path: Path) -> None:
        if self.rank:
            return
        try:
            with atomic_path(path, suffix=".pt") as tmp:
                torch.save(obj, tmp)
        except OSError as exc:
            raise TrainingError(f"could not write checkpoint {path} ({exc}); the previous "
                                "checkpoint is untouched") from None

    def load_into(self, model, path: Path) -> dict:
        obj, _ = read_checkpoint_file(path)
        if obj.get("model_cfg") != self.model_cfg:
            raise TrainingError(
                f"{path} holds another architecture ({obj.get('arch')}) than this run "
                f"({self.arch}); resume with the run's own config"
            )
        load_state_dict_checked(model, obj["state_dict"], self.arch)
        return obj

    def new_model(self) -> torch.nn.Module:
        torch.manual_seed(self.cfg.seed)
        return build_model(self.model_cfg).to(self.device)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        cfg = self.cfg
        if self.rank == 0:
            if (self.out / "phase0").exists() and not self.resume:
                raise TrainingError(
                    f"{self.out} already holds a run; pass --resume to continue it or choose "
                    "another --out"
                )
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / "config.json", cfg.to_dict())
        self.print_plan()
        self.phase0()
        for method in cfg.methods:
            self.run_method(method)
        if self.rank == 0:
            from sdtools.io import write_text
            from sdtools.report import build_report, markdown

            report = build_report(self.out)
            write_json(self.out / "report.json", report)
            write_text(self.out / "report.md", markdown(report))
            return report
        return {}

    def print_plan(self) -> None:
        cfg = self.cfg
        T = len(self.phases) - 1
        p0 = f"from {cfg.init}" if cfg.init else f"{cfg.phase0_steps} steps from scratch"
        steps = f"{cfg.epochs} epochs" if cfg.epochs else f"{cfg.steps} steps"
        sizes = ", ".join(str(p.n_images) if p is not None else "-" for p in self.phases)
        self.say(
            f"modx: {T + 1} phases (images per phase: {sizes}); phase 0 {p0}; phases 1..{T}: "
            f"{steps} each; methods: {', '.join(cfg.methods)}; batch {cfg.batch_size}; device "
            f"{self.device}{f' x {self.world} processes' if self.world > 1 else ''}; "
            f"evaluation on {', '.join(n for n, _ in self.evals)}; run dir {self.out}"
        )

    def phase0(self) -> None:
        d = self.out / "phase0"
        final = d / "model.pt"
        self.model = self.new_model()
        if final.is_file() and (d / "eval.json").is_file():
            self.load_into(self.model, final)
            return
        if self.init_loaded is not None:
            load_state_dict_checked(self.model, self.init_loaded.model.state_dict(), self.arch)
            self.save(self._ckpt(self.model, None, 0, 0, 0, "phase0", None, True), final)
        else:
            self.train_phase(0, "phase0", Strategy(self.cfg), None, self.phases[0],
                             self.cfg.phase0_steps, self.cfg.phase0_lr, d)
        self.finish_phase(d, {})

    def run_method(self, method: str) -> None:
        strategy = make(method, self.cfg)
        self.model = self.new_model()
        self.load_into(self.model, self.out / "phase0" / "model.pt")
        for t in range(1, len(self.phases)):
            d = self.out / method / f"phase{t}"
            if (d / "model.pt").is_file() and (d / "eval.json").is_file():
                obj = self.load_into(self.model, d / "model.pt")
                strategy.load_state_dict(obj.get("strategy", {}))
                continue
            teacher = None
            if strategy.needs_teacher:
                teacher = self.new_model()
                teacher.load_state_dict(self.model.state_dict())
                teacher.eval().requires_grad_(False)
            data = strategy.phase_data(t, self.phases)
            steps = self.cfg.steps
            if self.cfg.epochs:
                steps = max(1, int(self.cfg.epochs * data.n_images // self.cfg.batch_size))
            stats = self.train_phase(t, method, strategy, teacher, data, steps, self.cfg.lr, d)
            self.finish_phase(d, stats, strategy)

    def finish_phase(self, d: Path, stats: dict, strategy=None) -> None:
        if self.rank:
            return
        sets, results, probe = evaluate_phase(
            Loaded(self.model, self.preprocess, self.tokenizer), self.evals, self.device)
        probe.save(d / "probe.npz")
        write_json(d / "eval.json", {"sets": sets, "retrieval": results, "train": stats})
        r1 = [round((r["i2t"]["1"] + r["t2i"]["1"]) / 2, 1) for r in results]
        self.log(event="eval", dir=str(d), r1=r1)
        self.say(f"  {d.relative_to(self.out)}: R@1 per evaluation set {r1}")

    # ------------------------------------------------------------------ one phase
    def train_phase(self, t, method, strategy, teacher, data, steps, lr, d: Path) -> dict:
        cfg = self.cfg
        model = self.model
        pt = self.tensors(t) if data is self.phases[t] else self.tensors(t, data)
        opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=lr,
                                betas=(0.9, 0.98), eps=cfg.eps)
        start = 0
        last = d / "last.pt"
        self.resumed_mid_phase = False
        if self.resume and last.is_file():
            obj = self.load_into(model, last)
            opt.load_state_dict(obj["optimizer"])
            strategy.load_state_dict(obj.get("strategy", {}))
            start = int(obj["step"])
            self.resumed_mid_phase = True
            self.say(f"  resuming {method} phase {t} at step {start}")
        strategy.begin_phase(self, t)
        cache = self._teacher_cache(teacher, pt) if teacher is not None and cfg.teacher_cache \
            else None
        ddp = model
        if self.world > 1:
            ddp = torch.nn.parallel.DistributedDataParallel(model)
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, initial=start, desc=f"{method} phase {t}", unit="step",
                       leave=False)
        shares, losses = [], []
        stream = batches(pt, cfg.batch_size, cfg.seed, t, start)
        for step in range(start, steps):
            bi, bc = next(stream)
            for g in opt.param_groups:
                g["lr"] = lr * cosine_lr(step, steps, cfg.warmup)
            logs = self.step(ddp, model, opt, strategy, teacher, cache, pt, bi, bc, t, step)
            losses.append(logs["loss"])
            if "selected_share" in logs:
                shares.append(logs["selected_share"])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.3f}")
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                self.log(event="train", method=method, phase=t, step=step + 1,
                         lr=opt.param_groups[0]["lr"], **logs)
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
                self.save(self._ckpt(model, opt, step + 1, t, step + 1, method, strategy, False),
                          last)
        if bar is not None:
            bar.close()
        strategy.end_phase(self, t)
        self.save(self._ckpt(model, opt, steps, t, steps, method, strategy, True),
                  d / "model.pt")
        if last.is_file() and self.rank == 0:
            last.unlink()
        return {"steps": steps, "final_loss": float(np.mean(losses[-10:])) if losses else None,
                "selected_share": float(np.mean(shares)) if shares else None}

    def _teacher_cache(self, teacher, pt: PhaseTensors) -> dict:
        """The old model's features for every image and caption of the phase, computed once."""
        img, txt = [], []
        bs = 512
        with torch.inference_mode(), self._autocast():
            for s in range(0, pt.data.n_images, bs):
                x = pt.image_batch(range(s, min(s + bs, pt.data.n_images))).to(self.device)
                img.append(teacher.encode_image(x).float())
            for s in range(0, len(pt.data.captions), bs):
                tok = pt.tokens[s:s + bs].to(self.device)
                txt.append(teacher.encode_text(tok).float())
        return {"img": torch.cat(img), "txt": torch.cat(txt)}

    def _autocast(self):
        if self.cfg.precision == "amp_bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, ddp, model, opt, strategy, teacher, cache, pt, bi, bc, t, step) -> dict:
        cfg = self.cfg
        x = pt.image_batch(bi)
        tok = pt.token_batch(bc)
        extra = strategy.extra_batch(self, t, step)
        if extra is not None and len(extra):
            xs, ts = [x], [tok]
            for p in np.unique(extra[:, 0]):
                rows = extra[extra[:, 0] == p]
                ept = self.tensors(int(p))
                xs.append(ept.image_batch(rows[:, 1]))
                ts.append(ept.token_batch(rows[:, 2]))
            x, tok = torch.cat(xs), torch.cat(ts)
        n = x.shape[0]
        per_rank = n // self.world
        lo = self.rank * per_rank
        x, tok = x[lo:lo + per_rank].to(self.device), tok[lo:lo + per_rank].to(self.device)
        if cache is not None:
            old_i = cache["img"][torch.as_tensor(bi[lo:lo + per_rank])]
            old_t = cache["txt"][torch.as_tensor(bc[lo:lo + per_rank])]
        model.train()
        opt.zero_grad(set_to_none=True)
        micro = per_rank // cfg.grad_accum
        logs: dict = {}
        total = 0.0
        for m in range(cfg.grad_accum):
            sl = slice(m * micro, (m + 1) * micro)
            with self._autocast():
                img, txt, scale = ddp(x[sl], tok[sl])
                loss = clip_loss(img, txt, scale)
                logs["clip"] = logs.get("clip", 0.0) + float(loss.detach()) / cfg.grad_accum
                feats = {"img": img, "txt": txt}
                if teacher is not None:
                    if cache is not None:
                        feats["img_old"], feats["txt_old"] = old_i[sl], old_t[sl]
                    else:
                        with torch.no_grad():
                            feats["img_old"] = teacher.encode_image(x[sl])
                            feats["txt_old"] = teacher.encode_text(tok[sl])
                term, extra_logs = strategy.loss(self, feats)
                if term is not None:
                    loss = loss + term
                for k, v in extra_logs.items():
                    logs[k] = logs.get(k, 0.0) + v / cfg.grad_accum
            if not torch.isfinite(loss.detach()):
                raise TrainingError(
                    f"the loss became {float(loss.detach())} at phase {t}, step {step}; stopped. "
                    "The last good checkpoint is kept; lower the learning rate or alpha"
                )
            (loss / cfg.grad_accum).backward()
            total += float(loss.detach()) / cfg.grad_accum
        if cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, LOGIT_MAX)
        logs["loss"] = total
        return logs

    def fisher_diagonal(self, p: int, n_batches: int) -> dict[str, torch.Tensor]:
        """Diagonal empirical Fisher of the CLIP loss on phase ``p``'s data (EWC)."""
        pt = self.tensors(p)
        model = self.model
        fisher = {n: torch.zeros_like(q) for n, q in self.named_params()}
        bs = min(self.cfg.batch_size, pt.data.n_images)
        stream = batches(pt, bs, self.cfg.seed + 7, p)
        for _ in range(n_batches):
            bi, bc = next(stream)
            model.zero_grad(set_to_none=True)
            img, txt, scale = model(pt.image_batch(bi).to(self.device),
                                    pt.token_batch(bc).to(self.device))
            clip_loss(img, txt, scale).backward()
            for n, q in self.named_params():
                if q.grad is not None:
                    fisher[n] += q.grad.detach() ** 2 / n_batches
        model.zero_grad(set_to_none=True)
        return fisher
