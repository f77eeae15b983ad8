"""Reading checkpoint files without unpickling arbitrary code (``weights_only=True``)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

from ..errors import CheckpointError

TORCHSCRIPT = "torchscript_state_dict"  # key of what a TorchScript archive yields


def _is_torchscript(path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def _torchscript_state_dict(path) -> dict:
    """The tensors of a TorchScript archive (OpenAI's released CLIP ``.pt`` files, which the
    official Mod-X code loads with ``torch.jit.load``). The archive's TorchScript is parsed,
    never run, and no Python object is unpickled; only its state dict is kept."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError and others on damaged archives
        raise CheckpointError(f"{path} is a damaged TorchScript archive "
                              f"({type(exc).__name__})") from None
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_checkpoint_file(path) -> tuple[dict, dict]:
    """Read a ``.pt``/``.pth``/``.bin`` (``weights_only=True``) or ``.safetensors`` file.

    Returns ``(obj, safetensors_metadata)``. Pickles that need arbitrary code are refused.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass the checkpoint file inside it")
    from ..io import check_regular_input

    check_regular_input(path, "checkpoint", CheckpointError)  # a named pipe would hang
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            return load_file(str(path)), meta
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"PK" and path.suffix.lower() == ".npz":
        raise CheckpointError(f"{path} is saved embeddings (.npz), not a checkpoint; this needs "
                              "the checkpoint the embeddings came from (it embeds the images "
                              "itself)")
    if head[:2] == b"PK" and _is_torchscript(path):
        return {TORCHSCRIPT: _torchscript_state_dict(path)}, {}
    if head[:2] != b"PK" and head[:1] != b"\x80":  # neither a zip archive nor a pickle
        raise CheckpointError(f"{path} is not a checkpoint (neither a torch file nor "
                              ".safetensors); pass a .pt/.pth/.bin/.safetensors file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text:
            what = text.split("Unsupported global:")[-1].split("\n")[0].strip()[:80]
            raise CheckpointError(
                f"refused to load {path}: it needs arbitrary code to unpickle ({what}); only "
                "tensor checkpoints are loaded (weights_only=True). Re-save it as a state dict "
                "or .safetensors"
            ) from None
        if "Unsupported operand" in text:  # a plain pickle in a protocol torch cannot read
            raise CheckpointError(
                f"refused to load {path}: a plain pickle (not a torch checkpoint) that the safe "
                "loader cannot read, possibly code; only tensor checkpoints are loaded "
                "(weights_only=True). Re-save it with torch.save as a state dict or "
                ".safetensors") from None
        raise CheckpointError(f"{path} is not a checkpoint (its pickle is damaged)") from None
    except Exception as exc:  # torch raises many types on garbage (KeyError, RuntimeError, ...)
        why = type(exc).__name__
        raise CheckpointError(f"{path} is not a checkpoint (unreadable: {why}); a torch file cut "
                              "short or damaged reads so: save or copy it again") from None
    return obj, {}


