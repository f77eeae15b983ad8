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


MARK = "sdtools"  # what this tool writes into its outputs, so that it knows them again


def written_by_us(path: Path) -> bool:
    """Whether an existing file is an output of this tool (a JSON report with its ``written_by``
    key, embeddings ``.npz`` with their format version, a figure with its ``Software`` tag)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            obj = json.loads(path.read_text())
            return isinstance(obj, dict) and str(obj.get("written_by", "")).startswith(MARK)
        if suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as z:
                return "format_version" in z.files and "image_of_text" in z.files
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                return str(im.info.get("Software", "")).startswith(MARK)
        if suffix in (".pdf", ".svg", ".md"):
            return MARK.encode() in path.read_bytes()
    except Exception:  # unreadable or another format: not ours
        return False
    return False


def check_writable_file(path, what: str, force: bool = False) -> Path:
    """An output file path, checked before any work: not a directory, not under a file, in a
    folder this process may write, and not a file this tool did not write (unless
    ``force``): an output never eats a user's file."""
    from .errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; give a file name")
    _check_parents(path, what)
    check_access(path, what)
    if path.exists() and not force and not written_by_us(path):
        raise UserError(f"{what} {path} exists and was not written by sdtools; choose another "
                        "name or pass --force to replace it")
    return path


def check_access(path: Path, what: str) -> None:
    """The nearest existing folder (or the file itself) must be writable."""
    from .errors import UserError

    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{what} {path} is read-only; choose another place")
    for parent in path.parents:
        if parent.exists():
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"cannot write {what} {path}: {parent} is not writable; choose "
                                "another place")
            return


def check_output_dir(path, what: str, ours, force: bool = False, verify: bool = True) -> Path:
    """An output folder this tool fills with entries named by the patterns ``ours`` (``None``:
    only files this tool wrote): refused, unless ``force``, when it holds anything else, so
    that writing its outputs never replaces or deletes a user's file. With ``verify`` the
    files among them (and the files of a folder among them) must carry this tool's mark."""
    import fnmatch

    from .errors import UserError

    path = check_writable_dir(path, what)
    check_access(path / "x", what)
    if force or not path.is_dir():
        return path
    for entry in path.iterdir():
        if ours is None:
            own = entry.is_file() and written_by_us(entry)
        else:
            own = any(fnmatch.fnmatch(entry.name, pat) for pat in ours)
            if own and verify and entry.is_dir():
                own = all(f.is_file() and written_by_us(f) for f in entry.iterdir())
            elif own and verify:
                own = written_by_us(entry)
        if not own:
            raise UserError(f"{what} {path} holds {entry.name}, which sdtools did not write; "
                            "choose another folder or pass --force to write there anyway")
    return path


def check_writable_dir(path, what: str) -> Path:
    """An output folder path: not a file, not under a file. Checked before any work."""
    from .errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file; give a directory")
    _check_parents(path, what)
    return path
