"""The run's metrics: one JSON object a line in ``metrics.jsonl``, and TensorBoard on request."""

from __future__ import annotations

import json
import time
from pathlib import Path

BASE_KEYS = ("loss", "clip", "lr")


def tb_keys() -> tuple[str, ...]:
    """What TensorBoard plots: the trainer's own keys and every method's log keys."""
    from ..methods import METHODS

    keys = list(BASE_KEYS)
    for c in METHODS.values():
        keys += [k for k in c.log_keys if k not in keys]
    return tuple(keys)


class MetricsLogger:
    """Appends events to ``path`` (rank 0 only); closes its files with :meth:`close`."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None, enabled: bool = True):
        self.path = Path(path)
        self.tb_dir = tensorboard_dir
        self.enabled = enabled
        self._fh = None
        self._tb = None

    def log(self, **event) -> None:
        if not self.enabled:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            if self.tb_dir is not None:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.tb_dir))
        event["time"] = time.time()
        self._fh.write(json.dumps(event) + "\n")
        self._fh.flush()
        if self._tb is not None:
            self._to_tensorboard(event)

    def _to_tensorboard(self, event: dict) -> None:
        tag = f"{event.get('method', 'phase0')}/phase{event.get('phase')}"
        step = event.get("step", 0)
        for k in tb_keys():
            if isinstance(event.get(k), (int, float)):
                self._tb.add_scalar(f"{tag}/{k}", event[k], step)
        if event.get("event") == "eval":
            for name, r1 in zip(event.get("sets", []), event.get("r1", []), strict=False):
                self._tb.add_scalar(f"{event.get('method')}/R@1/{name}", r1, event.get("phase"))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
