"""Presets of ``modx demo``: the built-in synthetic continual benchmark."""

from __future__ import annotations

from sdtools.errors import ConfigError

from .config import TrainConfig

# 32x32 images, 4 style domains, a 3.4M-parameter CLIP (width 64, 2 layers, patch 4)
PRESETS = {
    "default": dict(
        data="synthetic:n_domains=4,train_per_domain=3000,test_per_domain=500",
        phase0_steps=400, phase0_lr=1e-3, steps=100, lr=5e-4, batch_size=128, alpha=3.0,
    ),
    "quick": dict(
        data="synthetic:n_domains=3,train_per_domain=800,test_per_domain=200",
        phase0_steps=120, phase0_lr=1e-3, steps=30, lr=5e-4, batch_size=64, alpha=3.0,
    ),
}
DEMO_METHODS = ["finetune", "modx", "lwf", "cumulative"]


def demo_config(preset: str = "default", out: str = "runs/demo", seed: int = 0,
                methods: list[str] | None = None, quiet: bool = False) -> TrainConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    return TrainConfig(**PRESETS[preset], methods=methods or list(DEMO_METHODS), out=out,
                       seed=seed, quiet=quiet, teacher_cache=True).validate()
