"""Run configuration: a dataclass read from TOML, with flags overriding the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydantic import ValidationError

try:  # Python 3.11+ reads TOML itself; 3.10 uses tomli, the same parser
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from modx.errors import ConfigError
from sdtools.dist import check_device

from .config_schema import RENAMED, SCHEMA, SECTIONS, options_model, refusal

__all__ = ["ConfigError", "TrainConfig", "flatten", "from_dict", "load", "to_toml",
           "TRAINING_KEYS", "SECTIONS", "SCHEMA", "check_schema"]


@dataclasses.dataclass
class TrainConfig:
    # data: the training stream and how it splits into phases
    data: str = "synthetic"  # a data SPEC; synthetic -> its domains' train splits
    phases: str = "domain"  # domain | contiguous:N | random:N | base+contiguous:N | shards:N
    eval_data: list[str] = dataclasses.field(default_factory=list)  # default: synthetic tests
    eval_n: int | None = None  # images per synthetic test split (default: the config's)
    linear_probe: bool = True  # also a 2-fold linear probe on labelled sets after each phase
    # model: architecture for phase 0 from scratch, or a checkpoint to start from
    model: str | None = None  # open_clip name / config JSON; default: the tiny synthetic CLIP
    init: str | None = None  # checkpoint (file or ARCH:TAG): phase 0 = this model, no training
    base_data: str | None = None  # with init: the data phase 0 was trained on (joint uses it)
    # methods: each runs phases 1..T from the same phase-0 model
    methods: list[str] = dataclasses.field(default_factory=lambda: ["finetune", "modx"])
    # optimisation (AdamW, cosine schedule with warmup)
    phase0_steps: int = 500
    phase0_lr: float = 1e-3
    steps: int = 150  # per phase 1..T (epochs, when set, decides instead; not both as flags)
    epochs: float | None = None  # per phase, over that phase's images
    lr: float = 5e-4
    batch_size: int = 128
    weight_decay: float = 0.1
    eps: float = 1e-8
    warmup: float = 0.2  # share of the phase's steps
    grad_accum: int = 1
    optimizer: str = "openclip"  # openclip | official (see README: paper fidelity)
    clip_grad: float | None = 1.0
    precision: str = "fp32"  # fp32 | amp_bf16 (GPU)
    seed: int = 0
    device: str | None = None
    # the data path: DataLoader workers decoding images (default: none for data held in
    # memory, else a share of the cores); phases whose preprocessed images fit in preload_gb
    # are prepared once and kept in memory (0: always decode per batch); augment: open_clip's
    # training augmentation (a random resized crop; the teacher is then computed live)
    workers: int | None = None
    preload_gb: float = 2.0
    augment: bool = False
    dist_timeout_min: float = 60.0  # torchrun: how long ranks wait while rank 0 evaluates
    # method knobs
    alpha: float = 20.0  # Mod-X weight (official: 20 at batch 280)
    temperature: float = 1.0  # Mod-X's ([modx] temperature)
    reduction: str = "sum"
    exclude_diagonal: bool = False
    lwf_weight: float = 1.0
    lwf_temperature: float = 1.0  # LwF's distillation temperature ([lwf] temperature)
    rkd_weight: float = 1.0
    ewc_lambda: float = 100.0
    ewc_batches: int = 8
    replay_size: int = 1000
    replay_fraction: float = 0.25
    teacher_cache: bool = True
    # the own settings of methods that declare them ({method: {key: value}}; [NAME] in TOML)
    method_options: dict = dataclasses.field(default_factory=dict)
    # run directory and logging
    out: str = "runs/modx"
    checkpoint_every: int = 0  # also save every K steps inside a phase (0: only at phase end)
    log_every: int = 10
    tensorboard: bool = False
    quiet: bool = False

    def validate(self) -> TrainConfig:
        from .methods import METHODS

        check_schema(self)
        check_device(self.device)
        import torch

        on_cuda = str(self.device or ("cuda" if torch.cuda.is_available() else "cpu")
                      ).startswith("cuda")
        if self.precision == "amp_bf16" and not on_cuda:
            raise ConfigError("precision amp_bf16 needs a CUDA device; use precision = \"fp32\" "
                              "on the CPU")
        if self.tensorboard:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                raise ConfigError("tensorboard = true needs the tensorboard package: pip install "
                                  "'sdtools-modx[tensorboard]' (or set tensorboard = false)")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ConfigError(f"unknown strategy {bad[0]!r}; valid: {', '.join(METHODS)}")
        check_method_options(self.method_options)
        if not self.methods:
            raise ConfigError("no methods to run; name at least one (e.g. finetune)")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"batch_size must be a multiple of grad_accum, got {self.batch_size}"
                              f" and {self.grad_accum}")
        if self.steps < 1 and self.epochs is None and any(m != "joint" for m in self.methods):
            raise ConfigError("steps must be >= 1 (or set epochs)")
        check_phase_count(self.phases, self.init)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_phase_count(phases: str, init) -> None:
    """A split into N phases must give phase 0 and at least one phase after it: ``N >= 2``
    when phase 0 trains on the first part (with ``init`` or a ``base+`` split the given model
    or the base domain is phase 0, and one part is enough)."""
    kind, colon, arg = phases.partition(":")
    if not colon or kind.startswith("base+") or init is not None:
        return
    if kind in ("contiguous", "random", "shards") and arg.strip().isdigit() and int(arg) < 2:
        raise ConfigError(f"phases = {phases!r} makes phase 0 alone, with nothing to train "
                          f"after it; give at least {kind}:2 (or set init, and every part "
                          "trains after the given model)")


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# keys that change what a run trains: --resume refuses a config that differs in any of them
TRAINING_KEYS = tuple(k for k in FIELDS if k not in ("out", "quiet", "log_every", "tensorboard",
                                                       "device", "checkpoint_every", "workers",
                                                       "preload_gb", "dist_timeout_min"))


def check_schema(cfg: TrainConfig) -> None:
    """Every field against its table of the schema: types and ranges, one line naming the key."""
    for model in SCHEMA:
        values = {n: getattr(cfg, n) for n in model.model_fields}
        try:
            model.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(refusal(model, values, exc)) from None


def method_sections() -> dict[str, tuple[str, ...]]:
    """The methods that declare settings of their own, with those settings' names."""
    from .methods import METHODS

    return {n: tuple(c.options) for n, c in METHODS.items() if c.options}


def check_method_options(opts: dict) -> None:
    """Each method's own settings: known keys, their types, and what the method accepts."""
    from .methods import METHODS

    own = method_sections()
    for name, values in opts.items():
        if name not in own or not isinstance(values, dict):
            raise ConfigError(f"method_options names {name!r}, which has no settings of its own"
                              f" (methods with settings: {', '.join(own) or 'none'})")
        model = options_model(METHODS[name])
        try:
            model.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(refusal(model, values, exc, name)) from None
        METHODS[name].check_options(values)


def _merge_options(flat: dict, options: dict) -> None:
    """Merge ``{method: {key: value}}`` into ``flat["method_options"]``, key by key."""
    for m, opts in options.items():
        flat.setdefault("method_options", {}).setdefault(m, {}).update(opts)


def flatten(d: dict, source: str = "config") -> dict:
    """The schema's sections (``SECTIONS``) merged into one level; a section the schema does
    not have, a key in the wrong section, or one key given twice is a one-line error."""
    flat, where = {}, {}
    for k, v in d.items():
        if not isinstance(v, dict):
            if k in where:
                raise ConfigError(f"{k} is given twice in {source} (at the top level and in "
                                  f"[{where[k]}]); keep one")
            flat[k], where[k] = v, "top level"
            continue
        if k == "method_options":  # the settings as a run's config.json records them
            _merge_options(flat, v)
            continue
        own = method_sections()
        if k in own:  # a method's own settings, kept apart (checked by check_method_options)
            _merge_options(flat, {k: v})
            continue
        if k not in SECTIONS:
            names = [*SECTIONS, *own]
            raise ConfigError(f"unknown section [{k}] in {source}; sections: "
                              f"{', '.join(f'[{n}]' for n in names)} (their methods' settings); "
                              "other keys go at the top level")
        for key, value in v.items():
            if key not in SECTIONS[k]:
                raise ConfigError(f"{key!r} does not belong in [{k}] in {source}; [{k}] takes "
                                  f"{', '.join(SECTIONS[k])}")
            field = RENAMED.get((k, key), key)
            if field in where:
                raise ConfigError(f"{key} is given twice in {source} ({where[field]} and [{k}]); "
                                  "keep one")
            flat[field], where[field] = value, f"[{k}]"
    if where.get("temperature") == "top level" and "lwf_temperature" not in flat:
        # a top-level temperature (as configs before the two sections wrote it) set both
        flat["lwf_temperature"] = flat["temperature"]
    return flat


def from_dict(d: dict, source: str = "config", overrides: dict | None = None) -> TrainConfig:
    """A checked config from a (possibly sectioned) dict; ``overrides`` (command-line flags,
    None meaning not given) win over the file."""
    flat = flatten(d, source)
    unknown = sorted(set(flat) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {source}; valid keys: {', '.join(sorted(FIELDS))}"
        )
    unknown = sorted(set(overrides or {}) - set(FIELDS) - {"method_options"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} on the command line; valid keys: "
                          f"{', '.join(sorted(FIELDS))}")
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if k == "method_options":  # merged per method and key: a flag names one setting
            _merge_options(flat, v)
        else:
            flat[k] = v
    if (overrides or {}).get("steps") is not None and flat.get("epochs") is not None:
        raise ConfigError(f"steps = {flat['steps']} from the command line has no effect with "
                          f"epochs = {flat['epochs']} (a phase then runs that many passes over "
                          "its images); give one of them")
    return TrainConfig(**flat).validate()


def parse_sets(items) -> dict:
    """``--set KEY=VALUE`` items as a config dict: ``KEY`` a top-level key or ``SECTION.KEY``
    (a method's own setting, ``zscl.weight``, or a schema section's, ``lwf.temperature``),
    ``VALUE`` read as a TOML value (``0.5``, ``true``, ``"a b"``) or else as a string."""
    out: dict = {}
    for item in items or ():
        key, eq, text = str(item).partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set lr=1e-4 or "
                              "--set zscl.weight=0.5")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        section, dot, name = key.rpartition(".")
        target = out.setdefault(section, {}) if dot else out
        if name in target:
            raise ConfigError(f"--set {key} is given twice; keep one")
        target[name] = value
    return out


def read_toml(path, what: str = "config file") -> dict:
    """A TOML file as a dict; a missing or malformed file is a one-line ConfigError."""
    from sdtools.io import check_regular_input

    path = Path(path)
    check_regular_input(path, what, ConfigError)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file; give a TOML {what}") from None


def load(path, overrides: dict | None = None) -> TrainConfig:
    """The config file at ``path``, with ``overrides`` (flags) winning over it."""
    path = Path(path)
    return from_dict(read_toml(path), str(path), overrides)


def to_toml(cfg: TrainConfig) -> str:
    """The config as TOML (None values left out: they are the defaults)."""
    import tomli_w

    return tomli_w.dumps({k: v for k, v in cfg.to_dict().items() if v is not None})
