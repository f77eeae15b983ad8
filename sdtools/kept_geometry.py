"""The report geometry a run keeps beside each phase (``RunDir.geometry_path``), so that a
rebuilt report (a resumed run's) reuses it instead of computing it again.

A phase's ``geometry.json`` holds ``written_by``, ``kind`` (``geometry``), the ``key`` it was
computed from (the SHA-256 digests of phase 0's probe, the previous phase's and the phase's
own, the version, a digest of the measuring code and ``max_pairs``) and the phase's
``vs_phase0`` and ``vs_prev`` as ``report.json`` holds them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from . import __version__
from .io import tag, write_json
from .log import get_logger
from .run_report import PhaseGeometry, ReportShapeError
from .runs import RunDir

log = get_logger(__name__)


@functools.cache
def code_digest() -> str:
    """SHA-256 of the source the geometry is computed by (``sdtools/measures/*.py`` and
    ``sdtools/pairwise.py``): a kept record made by other measuring code is computed again,
    whatever the version string says."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted((root / "measures").glob("*.py")) + [root / "pairwise.py"]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


class KeptGeometry:
    """The geometry a run's phase folders keep (``geometry.json``, written by
    :func:`sdtools.build_report` with ``keep_geometry``): a phase's record is reused while phase 0's
    probe, the previous phase's and its own have the digests it was computed from, under the
    same version and ``max_pairs``; a changed probe, a new version or a damaged file means
    computing it again."""

    KIND = "geometry"

    def __init__(self, run: RunDir, max_pairs: int | None):
        self.run, self.max_pairs = run, max_pairs
        self._digests: dict = {}

    def _digest(self, path) -> str | None:
        if path not in self._digests:
            try:
                self._digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:  # a missing probe: loading it says so
                self._digests[path] = None
        return self._digests[path]

    def key(self, method: str, t: int) -> dict | None:
        """What the phase's geometry was computed from (None where a probe cannot be read)."""
        probes = {"phase0": self._digest(self.run.probe_path(method, 0)),
                  "previous": self._digest(self.run.probe_path(method, t - 1)),
                  "probe": self._digest(self.run.probe_path(method, t))}
        if None in probes.values():
            return None
        return {"sdtools": __version__, "code": code_digest(), "max_pairs": self.max_pairs,
                **probes}

    def read(self, method: str, t: int) -> dict | None:
        """The phase's kept geometry as the report holds it, or None (none kept, computed from
        other probes, or damaged: a warning says so)."""
        path = self.run.geometry_path(method, t)
        key = self.key(method, t)
        if key is None or not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
            if not isinstance(d, dict) or d.get("kind") != self.KIND:
                raise ValueError("not kept geometry")
            if d.get("key") != key:
                return None  # computed from other probes or by another version
            g = {"phase": t, "vs_phase0": d["vs_phase0"], "vs_prev": d["vs_prev"]}
            PhaseGeometry.from_dict(g, str(path))
            return g
        except (OSError, ValueError, UnicodeDecodeError, KeyError, ReportShapeError):
            log.warning("kept geometry %s is damaged; computing it again", path)
            return None

    def write(self, method: str, t: int, g: dict) -> None:
        key = self.key(method, t)
        if key is None:
            return
        path = self.run.geometry_path(method, t)
        try:
            write_json(path, {"written_by": tag(), "kind": self.KIND, "key": key,
                              "vs_phase0": g["vs_phase0"], "vs_prev": g["vs_prev"]})
        except OSError as exc:  # a convenience: the report goes on without it
            log.warning("cannot keep the geometry in %s (%s); a rebuilt report computes it "
                        "again", path, exc.strerror or exc)
