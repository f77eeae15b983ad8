"""The trainer in parts: orchestration (run), the run's data (datasets), the phase loop
(phase), one step (step), checkpoint payloads (checkpoint), EWC's Fisher (fisher), the
run-directory guard (guard) and the metrics logger (metrics)."""

from modx.errors import TrainingError

from .run import Trainer

__all__ = ["Trainer", "TrainingError"]
