"""Atomic file writing: write to a temporary file in the target folder, then rename into place.

A crash or a full disk mid-write never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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
# the exact provenance tag: "sdtools" and a version, nothing else (a file that merely mentions
# the tool is not its output)
_TAG = re.compile(r"sdtools(?: [0-9][0-9A-Za-z.+_-]*)?")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def tag() -> str:
    """The provenance tag this version writes into its outputs."""
    from . import __version__

    return f"{MARK} {__version__}"


def md_tag(kind: str = "report") -> str:
    """The line that marks a Markdown output of ``kind`` (a run's report, a study's)."""
    return "<!-- written by sdtools -->" if kind == "report" else \
        f"<!-- written by sdtools: {kind} -->"


def not_regular(path) -> str | None:
    """What a path that exists but is not a regular file is ("a named pipe", "a directory",
    ...), without opening it; None for a regular file or nothing there. Reading a named pipe
    would wait forever for a writer."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular_input(path, what: str, error=None) -> Path:
    """An input file that exists must be a regular file: a pipe, a device or a folder is
    refused in one line before anything reads it (a pipe would hang the read)."""
    from .errors import UserError

    path = Path(path)
    kind = not_regular(path)
    if kind is not None:
        hint = "pass the file inside it" if kind == "a directory" else "give a regular file"
        raise (error or UserError)(f"{what} {path} is {kind}, not a file; {hint}")
    return path


EMBEDDINGS_FORMAT = 1  # the version of the embeddings .npz layout (sdtools.models.embeddings)


def file_kind(path) -> str | None:
    """The kind of sdtools output a regular file is, from its exact provenance tag, or None
    (another file, unreadable, not a regular file). JSON: ``written_by`` and its ``kind``
    (a run's report: ``report``); embeddings ``.npz``: their format version (``embeddings``);
    a figure (``figure``): its PNG ``Software`` or PDF/SVG ``Creator`` metadata; Markdown: its
    marker line (``report`` or ``study``)."""
    path = Path(path)
    if not_regular(path) is not None or not path.is_file():
        return None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            obj = json.loads(path.read_text())
            if not isinstance(obj, dict) or not isinstance(obj.get("written_by"), str) \
                    or not _TAG.fullmatch(obj["written_by"]):
                return None
            kind = obj.get("kind")
            if kind is None and "schema" in obj and "methods" in obj:
                kind = "report"  # a run's report.json (its schema names it)
            return kind if isinstance(kind, str) else None
        if suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as z:
                ok = ("image_of_text" in z.files and "format_version" in z.files
                      and z["format_version"].shape == ()
                      and int(z["format_version"]) == EMBEDDINGS_FORMAT)
            return "embeddings" if ok else None
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                sw = im.info.get("Software")
            return "figure" if isinstance(sw, str) and _TAG.fullmatch(sw) else None
        if suffix == ".pdf":
            mb = re.search(rb"/Creator \(([^)]*)\)", path.read_bytes())
            found = mb.group(1).decode("latin-1") if mb else ""
        elif suffix == ".svg":
            m = re.search(r"<dc:creator>\s*<cc:Agent>\s*<dc:title>([^<]*)</dc:title>",
                          path.read_text(errors="replace"))
            found = m.group(1) if m else ""
        elif suffix == ".md":
            lines = path.read_text(errors="replace").splitlines()
            return next((k for k in ("report", "study") if md_tag(k) in lines), None)
        else:
            return None
        return "figure" if _TAG.fullmatch(found) else None
    except Exception:  # unreadable or another format: not ours
        return None


def written_by_us(path: Path, kind: str | None = None) -> bool:
    """Whether an existing file is an output of this tool (of ``kind``, when given): see
    :func:`file_kind` for the exact tag each format carries."""
    found = file_kind(path)
    return found is not None and (kind is None or found == kind)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs, inputs=(), force: bool = False) -> None:
    """Output files of one command, checked before any work: ``outputs`` is a list of
    ``(path, what, kind)``. No two share a path, none is one of the command's ``inputs``
    (paths that exist), and each passes :func:`check_writable_file`."""
    from .errors import UserError

    outs = [(Path(p), what, kind) for p, what, kind in outputs if p is not None]
    for i, (p, what, _) in enumerate(outs):
        for q, other, _ in outs[:i]:
            if _same_file(p, q):
                raise UserError(f"{other} and {what} both name {p}; give each output its own "
                                "file")
        for x in inputs:
            if x is not None and Path(str(x)).exists() and _same_file(p, Path(str(x))):
                raise UserError(f"{what} {p} is an input of this command; write the output "
                                "to another file (--force does not change this)")
    for p, what, kind in outs:
        check_writable_file(p, what, force, kind)


def check_writable_file(path, what: str, force: bool = False, kind: str | None = None) -> Path:
    """An output file path, checked before any work: a regular file or nothing, not under a
    file, in a folder this process may write, and (unless ``force``) nothing but an sdtools
    output of ``kind`` (any kind when None): an output never eats a user's file."""
    from .errors import UserError

    path = Path(path)
    other = not_regular(path)
    if other == "a directory":
        raise UserError(f"{what} {path} is a directory; give a file name")
    if other is not None:
        raise UserError(f"{what} {path} is {other}, not a file; give the name of a regular "
                        "file (--force does not change this)")
    _check_parents(path, what)
    check_access(path, what)
    if path.exists() and not force and not written_by_us(path, kind):
        found = file_kind(path)
        why = (f"holds sdtools {found} output, not {kind}" if found is not None
               else "exists and was not written by sdtools")
        raise UserError(f"{what} {path} {why}; choose another name, or pass --force to replace "
                        "that file")
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
            try:  # permissions can say yes where a file still cannot be made (root, /proc)
                with tempfile.NamedTemporaryFile(dir=parent, prefix=".sdtools-check-"):
                    pass
            except OSError as exc:
                raise UserError(f"cannot write {what} {path}: a file cannot be made in {parent} "
                                f"({exc.strerror or exc}); choose another place") from None
            return


FORCE_DIR = ("pass --force to write there anyway (files named as its outputs are replaced; "
             "every other file is kept)")


def _owned(entry: Path, kind) -> bool:
    if kind is None:
        return True
    if entry.is_dir() and not entry.is_symlink():
        return all(f.is_dir() or written_by_us(f, kind) for f in entry.rglob("*"))
    return written_by_us(entry, kind)


def check_output_dir(path, what: str, ours, force: bool = False) -> Path:
    """An output folder this tool fills, refused (unless ``force``) when it holds anything
    this tool did not write, so that writing its outputs never replaces a user's file.
    ``ours``: ``{pattern: kind}``, the entries this tool writes there: kind None, known by
    name (a lock file, a folder of runs); a kind, a file of that kind (see :func:`file_kind`)
    or a folder of such files. ``ours`` a kind alone: every entry must be a file of it."""
    import fnmatch

    from .errors import UserError

    path = check_writable_dir(path, what)
    check_access(path / "x", what)
    if force or not path.is_dir():
        return path
    for entry in sorted(path.iterdir()):
        if isinstance(ours, dict):
            pat = next((p for p in ours if fnmatch.fnmatch(entry.name, p)), None)
            own = pat is not None and _owned(entry, ours[pat])
        else:
            own = _owned(entry, ours)
        if not own:
            raise UserError(f"{what} {path} holds {entry.name}, which sdtools did not write; "
                            f"choose another folder or {FORCE_DIR}")
    return path


@contextlib.contextmanager
def refresh_dir(path, kind: str = "figure"):
    """Yield a temporary folder beside ``path``; on success its files move into ``path``
    (each one renamed into place), and the files of ``path`` that this tool wrote (of
    ``kind``) and the new set lacks are removed. Any other file in ``path`` is kept. An
    interrupted or failed writer leaves ``path`` as it was and no temporary folder behind."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        new = {f.relative_to(tmp) for f in tmp.rglob("*") if f.is_file()}
        path.mkdir(exist_ok=True)
        for old in sorted(path.rglob("*")):
            if old.relative_to(path) not in new and not old.is_symlink() \
                    and written_by_us(old, kind):
                old.unlink()  # a stale figure of an earlier report
        for rel in sorted(new):
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, path / rel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cannot_write_dir(path) -> str | None:
    """Why this process cannot create files in the folder ``path`` (made if missing), found
    by trying (permission bits say nothing for root, nor for a read-only mount); None when
    it can."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return f"{path} is not writable ({exc.strerror or type(exc).__name__})"
    return None


def check_writable_dir(path, what: str) -> Path:
    """An output folder path: not a file, not under a file. Checked before any work."""
    from .errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file; give a directory")
    _check_parents(path, what)
    return path
