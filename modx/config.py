"""Run configuration: a dataclass read from TOML, with flags overriding the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tomllib


class ConfigError(ValueError):
    pass


@dataclasses.dataclass
class TrainConfig:
    # data: the training stream and how it splits into phases
    data: str = "synthetic"  # a data SPEC; synthetic -> its domains' train splits
    phases: str = "domain"  # domain | contiguous:N | random:N
    eval_data: list[str] = dataclasses.field(default_factory=list)  # default: synthetic tests
    eval_n: int | None = None  # images per synthetic test split (default: the config's)
    # model: architecture for phase 0 from scratch, or a checkpoint to start from
    model: str | None = None  # open_clip name / config JSON; default: the tiny synthetic CLIP
    init: str | None = None  # checkpoint (file or ARCH:TAG): phase 0 = this model, no training
    # methods: each runs phases 1..T from the same phase-0 model
    methods: list[str] = dataclasses.field(default_factory=lambda: ["finetune", "modx"])
    # optimisation (AdamW, cosine schedule with warmup)
    phase0_steps: int = 500
    phase0_lr: float = 1e-3
    steps: int = 150  # per phase 1..T (ignored when epochs is set)
    epochs: float | None = None  # per phase, over that phase's images
    lr: float = 5e-4
    batch_size: int = 128
    weight_decay: float = 0.1
    eps: float = 1e-8
    warmup: float = 0.2  # share of the phase's steps
    grad_accum: int = 1
    clip_grad: float | None = 1.0
    precision: str = "fp32"  # fp32 | amp_bf16 (GPU)
    seed: int = 0
    device: str | None = None
    # method knobs
    alpha: float = 20.0  # Mod-X weight (official: 20 at batch 280)
    temperature: float = 1.0
    reduction: str = "sum"
    exclude_diagonal: bool = False
    lwf_weight: float = 1.0
    rkd_weight: float = 1.0
    ewc_lambda: float = 100.0
    ewc_batches: int = 8
    replay_size: int = 1000
    replay_fraction: float = 0.25
    teacher_cache: bool = True
    # run directory and logging
    out: str = "runs/modx"
    checkpoint_every: int = 0  # also save every K steps inside a phase (0: only at phase end)
    log_every: int = 10
    tensorboard: bool = False
    quiet: bool = False

    def validate(self) -> TrainConfig:
        from .strategies import STRATEGIES

        bad = [m for m in self.methods if m not in STRATEGIES]
        if bad:
            raise ConfigError(f"unknown strategy {bad[0]!r}; valid: {', '.join(STRATEGIES)}")
        if not self.methods:
            raise ConfigError("no methods to run; name at least one (e.g. finetune)")
        if self.precision not in ("fp32", "amp_bf16"):
            raise ConfigError(f"precision must be fp32 or amp_bf16, got {self.precision!r}")
        if self.reduction not in ("sum", "mean"):
            raise ConfigError(f"reduction must be sum or mean, got {self.reduction!r}")
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.batch_size % self.grad_accum:
            raise ConfigError("batch_size must be a multiple of grad_accum")
        if not 0 <= self.warmup < 1:
            raise ConfigError("warmup is a share of the steps, in [0, 1)")
        if self.steps < 1 and self.epochs is None:
            raise ConfigError("steps must be >= 1 (or set epochs)")
        if not 0 <= self.replay_fraction < 1:
            raise ConfigError("replay_fraction must be in [0, 1)")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def from_dict(d: dict, source: str = "config") -> TrainConfig:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):  # allow [sections] in TOML: their keys are flattened
            flat.update(v)
        else:
            flat[k] = v
    unknown = sorted(set(flat) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {source}; valid keys: {', '.join(sorted(FIELDS))}"
        )
    return TrainConfig(**flat).validate()


def load(path, overrides: dict | None = None) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc})") from None
    d.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(d, str(path))


def to_toml(cfg: TrainConfig) -> str:
    lines = []
    for k, v in cfg.to_dict().items():
        if v is None:
            continue
        if isinstance(v, bool):
            s = "true" if v else "false"
        elif isinstance(v, (int, float)):
            s = repr(v)
        elif isinstance(v, list):
            s = "[" + ", ".join(f'"{x}"' for x in v) + "]"
        else:
            s = '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{k} = {s}")
    return "\n".join(lines) + "\n"
