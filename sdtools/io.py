"""Atomic file writing: write to a temporary file in the target folder, then rename into place.

A crash or a full disk mid-write never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def _file_mode() -> int:
    """The mode a plain new file gets here (0o666 less the umask); mkstemp would give 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    An interrupted or failed writer leaves ``path`` as it was and no temporary folder behind.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_parents(path: Path, what: str) -> None:
    from .errors import UserError

    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} {path} lies under {parent}, which is a file")
            return


def check_writable_file(path, what: str) -> Path:
    """An output file path: not a directory, not under a file. Checked before any work."""
    from .errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; give a file name")
    _check_parents(path, what)
    return path


def check_writable_dir(path, what: str) -> Path:
    """An output folder path: not a file, not under a file. Checked before any work."""
    from .errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file; give a directory")
    _check_parents(path, what)
    return path
