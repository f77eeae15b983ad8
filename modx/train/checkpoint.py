"""Checkpoint payloads: a phase's model (weights and config) and the state resume needs.

``model.pt`` of a finished phase holds the model and its config only (loadable by
``sdtools.load_checkpoint``); ``last.pt`` inside a phase being trained adds the optimizer,
the step and the strategy state, and is removed when the phase ends. The strategy state that
later phases need (EWC's Fisher, the replay buffer) is kept in ``strategy.pt`` beside the
method's phases.
"""

from __future__ import annotations

from pathlib import Path

import torch

from modx.errors import TrainingError
from sdtools.errors import CheckpointError
from sdtools.io import atomic_path
from sdtools.models.build import load_state_dict_checked
from sdtools.models.checkpoints import MODX_FORMAT
from sdtools.models.reading import read_checkpoint_file


def model_payload(model, arch: str, model_cfg: dict, config: dict, phase: int,
                  method: str) -> dict:
    return {"format": MODX_FORMAT, "arch": arch, "model_cfg": model_cfg,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "phase": phase, "method": method, "config": config}


def resume_payload(model, arch, model_cfg, config, phase, method, opt, step: int,
                   strategy) -> dict:
    obj = model_payload(model, arch, model_cfg, config, phase, method)
    obj.update(optimizer=opt.state_dict(), step=step,
               strategy=strategy.state_dict() if strategy is not None else {})
    return obj


def save(obj: dict, path: Path) -> None:
    """Write atomically: a failure leaves the previous file untouched."""
    try:
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(obj, tmp)
    except OSError as exc:
        raise TrainingError(f"could not write checkpoint {path} ({exc.strerror or exc}); the "
                            "previous checkpoint is untouched") from None


def damaged_fix(path: Path) -> str:
    """What to do about a damaged file of a run: the fix, named for the file it is."""
    path = Path(path)
    if path.name == "last.pt":
        return (f"delete {path} and --resume restarts phase {path.parent.name[5:]} from its "
                "beginning")
    if path.parent.name == "phase0":
        return (f"every method starts from phase 0's model: start the run again in a new --out "
                f"(or delete {path.parent} and the method folders beside it, then --resume)")
    return (f"delete {path.parent} and the later phase folders of {path.parent.parent.name}, "
            "then --resume retrains them")


def read_run_file(path: Path) -> dict:
    """A checkpoint of the run (model.pt, last.pt, strategy.pt); a damaged one is a one-line
    TrainingError that names the file and the fix (not "pass a .pt file": nobody passed it)."""
    path = Path(path)
    try:
        obj, _ = read_checkpoint_file(path)
    except CheckpointError as exc:
        why = "it is empty" if path.is_file() and path.stat().st_size == 0 else \
            str(exc).split("(", 1)[-1].split(")", 1)[0] if "(" in str(exc) else "unreadable"
        raise TrainingError(f"{path} of this run is damaged ({why}); {damaged_fix(path)}") \
            from None
    if not isinstance(obj, dict):
        raise TrainingError(f"{path} of this run is damaged (not a modx checkpoint); "
                            f"{damaged_fix(path)}")
    return obj


def load_into(model, path: Path, model_cfg: dict, arch: str) -> dict:
    """Load a run checkpoint's weights into ``model``; the architecture must be the run's."""
    obj = read_run_file(path)
    if "state_dict" not in obj:
        raise TrainingError(f"{path} of this run is damaged (no weights); {damaged_fix(path)}")
    if obj.get("model_cfg") != model_cfg:
        raise TrainingError(
            f"{path} holds another architecture ({obj.get('arch')}) than this run ({arch}); "
            "resume with the run's own config"
        )
    load_state_dict_checked(model, obj["state_dict"], arch)
    return obj


def read_state(path: Path) -> dict:
    return read_run_file(path)
