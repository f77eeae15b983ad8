"""Presets of ``modx demo``: the built-in synthetic continual benchmark."""

from __future__ import annotations

from modx.errors import ConfigError

from .config import TrainConfig

# 32x32 images, 4 style domains, a 3.4M-parameter CLIP (width 64, 2 layers, patch 4)
PRESETS = {
    # the stress test: 4 style domains with rotating vocabularies, where distilling on new data
    # cannot reach what the new data never shows (expected to fail for data-free methods)
    "default": dict(
        data="synthetic:n_domains=4,train_per_domain=3000,test_per_domain=500",
        phase0_steps=400, phase0_lr=1e-3, steps=100, lr=5e-4, batch_size=128, alpha=3.0,
    ),
    "quick": dict(
        data="synthetic:n_domains=3,train_per_domain=800,test_per_domain=200",
        phase0_steps=120, phase0_lr=1e-3, steps=30, lr=5e-4, batch_size=64, alpha=3.0,
    ),
    # the paper's situation: a base model trained to convergence on the whole vocabulary,
    # then 5 contiguous slices of a shifted set with the same vocabulary (style, palette,
    # composition, caption templates), on which the base model is competent
    "shift": dict(
        data="synthetic:protocol=shift,train_per_domain=3000,test_per_domain=500",
        phases="base+contiguous:5", phase0_steps=1500, phase0_lr=1e-3, steps=60, lr=5e-4,
        batch_size=128, alpha=3.0,
    ),
}
DEMO_METHODS = ["finetune", "modx", "lwf", "cumulative"]


def demo_config(preset: str = "default", out: str = "runs/demo", seed: int = 0,
                methods: list[str] | None = None, quiet: bool = False) -> TrainConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    return TrainConfig(**PRESETS[preset], methods=methods or list(DEMO_METHODS), out=out,
                       seed=seed, quiet=quiet, teacher_cache=True).validate()


# study presets: seeds x methods x knob grid (see modx.study); quick finishes in minutes.
# Fine-tuning is swept from rates where it learns less than any other method up to 1e-3, so
# that its frontier brackets every method's learning; LwF's weight is swept for its own.
FINETUNE_SWEEP = [1e-5, 2.5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3]
STUDY_PRESETS = {
    "quick": dict(
        base=dict(data="synthetic:protocol=shift,train_per_domain=300,test_per_domain=60",
                  phases="base+contiguous:3", phase0_steps=80, phase0_lr=2e-3, steps=12,
                  lr=5e-4, batch_size=32, alpha=3.0, log_every=0),
        seeds=[0, 1, 2], data_seed=True,
        grid={"finetune": [1e-4, 5e-4, 2e-3], "finetune_steps": [4, 36], "modx": [3.0],
              "lwf": [0.3, 1.0, 3.0],
              "joint": []},  # LwF at three weights: claim (e) needs LwF's curve
    ),
    # the README's shift study: 5 seeds, fine-tuning's frontier, Mod-X at two alphas, LwF at
    # three weights, replay and joint
    "shift": dict(
        base=dict(data="synthetic:protocol=shift,train_per_domain=2000,test_per_domain=400",
                  phases="base+contiguous:5", phase0_steps=1500, phase0_lr=1e-3, steps=40,
                  lr=5e-4, batch_size=128, log_every=0),
        seeds=[0, 1, 2, 3, 4], data_seed=True,
        # steps at the base rate: fine-tuning's learning saturates in the rate near +10 points,
        # more steps reach further
        grid={"finetune": FINETUNE_SWEEP, "finetune_steps": [10, 120, 240],
              "modx": [1.0, 3.0], "lwf": [0.3, 1.0, 3.0],
              "replay": [1000], "wiseft": [0.25, 0.5], "ema": [0.99], "zscl": [1.0],
              "joint": []},
    ),
    # the README's stress test: the demo's four domains, 5 seeds
    "domains": dict(
        base=dict(PRESETS["default"], log_every=0),
        seeds=[0, 1, 2, 3, 4], data_seed=True,
        # fewer steps at the base rate: slower rates do not give lower-learning, higher-
        # retention points on these domains, shorter phases do
        grid={"finetune": FINETUNE_SWEEP, "finetune_steps": [15, 40, 75], "modx": [3.0],
              "lwf": [0.3, 1.0, 3.0],
              "replay": [1000], "wiseft": [0.5], "ema": [0.99], "joint": []},
    ),
}


def study_plan(preset: str):
    from .study import Plan

    if preset not in STUDY_PRESETS:
        raise ConfigError(f"unknown study preset {preset!r}; valid: {', '.join(STUDY_PRESETS)}")
    p = STUDY_PRESETS[preset]
    return Plan(preset, dict(p["base"]), list(p["seeds"]), dict(p["grid"]),
                data_seed=bool(p.get("data_seed", False)))
