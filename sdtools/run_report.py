"""The run report (``report.json`` of a continual run) as typed records with a schema version.

:func:`sdtools.report.build_report` returns a :class:`RunReport`; the figures, ``report.md``,
the CLI and modx's studies read one. Reading checks the whole shape and refuses, in one line
naming the key, a report whose shape changed (a missing or unknown key, a matrix of the
wrong size, a schema this version does not read), instead of drawing or aggregating from
default values.

Schema 2 is the shape below. Schema 1 (and reports written before the ``schema`` field
existed) kept what a method added to its record as further top-level lists, one value per
phase; they are read with those lists moved into the method's ``extras``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import NoReturn

from .errors import RunError
from .geometry_record import DEVIATION_KEYS, Geometry, SetGeometry
from .records import RecordError

SCHEMA = 2
READABLE = (1, 2)


class ReportShapeError(RunError):
    """A report.json whose shape this version does not read."""


def _fail(where: str, what: str) -> NoReturn:
    raise ReportShapeError(f"{where}: {what}; rebuild the report with this version "
                           "(sdtools report RUN --out DIR --force)")


def check_geometry(g: dict, where: str, nested: bool = True) -> dict:
    """One geometry record (:func:`sdtools.report.geometry`) checked key for key: read as a
    :class:`~sdtools.geometry_record.Geometry` (``nested``: with ``per_set`` records) or a
    :class:`~sdtools.geometry_record.SetGeometry`; a :class:`ReportShapeError` names the key.
    Returns ``g``."""
    try:
        (Geometry if nested else SetGeometry).from_dict(g, where)
    except RecordError as exc:
        _fail(exc.where, exc.what)
    return g


def _keys(d, where: str, required, optional=()) -> dict:
    if not isinstance(d, dict):
        _fail(where, f"expected an object, got {type(d).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        _fail(where, f"missing {', '.join(missing)}")
    unknown = sorted(set(d) - set(required) - set(optional))
    if unknown:
        _fail(where, f"unknown key(s) {', '.join(unknown)}")
    return d


@dataclasses.dataclass(frozen=True)
class PhaseGeometry:
    """Geometry after phase ``phase``: against phase 0 (pooled probe and ``per_set``) and
    against the previous phase (pooled)."""

    phase: int
    vs_phase0: Geometry
    vs_prev: SetGeometry

    @classmethod
    def from_dict(cls, d, where: str) -> PhaseGeometry:
        _keys(d, where, ("phase", "vs_phase0", "vs_prev"))
        if not isinstance(d["phase"], int) or d["phase"] < 1:
            _fail(f"{where}.phase", f"expected a phase number >= 1, got {d['phase']!r}")
        try:
            return cls(d["phase"], Geometry.from_dict(d["vs_phase0"], f"{where}.vs_phase0"),
                       SetGeometry.from_dict(d["vs_prev"], f"{where}.vs_prev"))
        except RecordError as exc:
            _fail(exc.where, exc.what)

    def to_dict(self) -> dict:
        return {"phase": self.phase, "vs_phase0": self.vs_phase0.to_dict(),
                "vs_prev": self.vs_prev.to_dict()}


def _matrix(x, rows: int, cols: int, where: str, none_ok: bool = False) -> list:
    """A rows x cols list of numbers (None allowed with ``none_ok``)."""
    ok = isinstance(x, list) and len(x) == rows and all(
        isinstance(r, list) and len(r) == cols and all(
            (v is None and none_ok) or (isinstance(v, (int, float)) and not isinstance(v, bool))
            for v in r) for r in x)
    if not ok:
        _fail(where, f"expected {rows} x {cols} numbers (phase x evaluation set)")
    return x


def mtil(acc) -> dict:
    """ZSCL's MTIL metrics (Zheng et al. 2023) of a zero-shot accuracy matrix ``acc[t][k]``
    (percent; set ``k`` after phase ``t``; None where the set has no such task).

    With T phases (rows), evaluation set ``k`` is phase ``k``'s domain for ``k < T`` when
    the run has at least as many sets as phases (the convention BWT uses); the sets after
    them are never trained on. Then, over the sets with accuracies:

    - ``transfer``: per set, the mean over the phases before its own (every phase for a set
      never trained on), averaged over sets (sets with no earlier phase left out; None when
      there is none, or when sets and phases are not aligned);
    - ``avg``: per set, the mean over all phases, averaged over sets;
    - ``last``: the mean over sets after the last phase.

    Examples
    --------
    >>> m = mtil([[50, 10, 20, 30], [60, 40, 25, 32], [55, 45, 30, 34]])  # set 3: no phase
    >>> round(m["transfer"], 2), round(m["avg"], 2), m["last"]  # transfer: 10, 22.5 and 32
    (21.5, 35.92, 41.0)
    """
    import numpy as np

    T = len(acc)
    S = len(acc[0]) if T else 0
    aligned = S >= T
    transfer, avg, cols = [], [], []
    for k in range(S):
        col = [acc[t][k] for t in range(T)]
        if all(v is None for v in col):
            continue
        cols.append(k)
        avg.append(np.mean([v for v in col if v is not None]))
        own = min(k, T)
        before = [v for v in col[:own] if v is not None]
        if aligned and before:
            transfer.append(np.mean(before))
    last = [acc[T - 1][k] for k in cols if acc[T - 1][k] is not None]
    return {"transfer": float(np.mean(transfer)) if transfer else None,
            "avg": float(np.mean(avg)) if avg else None,
            "last": float(np.mean(last)) if last else None}


@dataclasses.dataclass
class MethodReport:
    """One method's phases. ``r1[t][k]``: R@1 (mean of both directions, percent) on
    evaluation set ``k`` after phase ``t``; ``r1_ci[t][k]``: its 95% bootstrap [low, high] or
    None; ``i2t`` / ``t2i``: {"1", "5", "10"} -> the same matrix per direction; ``avg``: the
    last phase's mean over sets; ``bwt``: backward transfer (None unless set k is phase k's
    domain); ``max_drop[k]``: set k's largest drop once learned; ``extras``: {key: one value
    per phase (None at phase 0 and where not logged)} for what the method itself adds to its
    training record (for example the share of rows a selecting method kept): readers pass it
    through, figures draw it where they know the key; ``zero_shot`` and
    ``linear_probe``: {task: accuracy matrix}; ``mtil``: {task: MTIL Transfer, Avg, Last of
    the zero-shot matrix} (:func:`mtil`; derived, not stored); ``geometry``: one record per
    phase t >= 1;
    ``style``: how figures draw the method ({"colour": "#rrggbb", "dashed": bool}, from the
    trainer that wrote the run; empty: a colour from the name)."""

    sets: list[str]
    r1: list[list[float]]
    r1_ci: list[list]
    i2t: dict
    t2i: dict
    avg: float
    bwt: float | None
    max_drop: list
    geometry: list[PhaseGeometry]
    extras: dict = dataclasses.field(default_factory=dict)
    zero_shot: dict = dataclasses.field(default_factory=dict)
    linear_probe: dict = dataclasses.field(default_factory=dict)
    style: dict = dataclasses.field(default_factory=dict)

    @property
    def n_phases(self) -> int:
        """Phases evaluated, phase 0 included."""
        return len(self.r1)

    @classmethod
    def from_dict(cls, d, where: str) -> MethodReport:
        required = ("sets", "r1", "r1_ci", "i2t", "t2i", "avg", "bwt", "max_drop", "geometry")
        _keys(d, where, required, ("extras", "zero_shot", "linear_probe", "style", "mtil"))
        d = {k: v for k, v in d.items() if k != "mtil"}  # mtil: derived, recomputed
        sets = d["sets"]
        if not (isinstance(sets, list) and sets and all(isinstance(s, str) for s in sets)):
            _fail(f"{where}.sets", "expected a non-empty list of set names")
        T = len(d["r1"]) if isinstance(d["r1"], list) else 0
        if T < 1:
            _fail(f"{where}.r1", "expected one row per phase")
        S = len(sets)
        _matrix(d["r1"], T, S, f"{where}.r1")
        if not (isinstance(d["r1_ci"], list) and len(d["r1_ci"]) == T):
            _fail(f"{where}.r1_ci", f"expected {T} rows")
        for direction in ("i2t", "t2i"):
            _keys(d[direction], f"{where}.{direction}", ("1", "5", "10"))
            for k, m in d[direction].items():
                _matrix(m, T, S, f"{where}.{direction}.{k}")
        if not (isinstance(d["max_drop"], list) and len(d["max_drop"]) == S):
            _fail(f"{where}.max_drop", f"expected {S} values (one per set)")
        extras = d.get("extras") or {}
        if not isinstance(extras, dict):
            _fail(f"{where}.extras", "expected {key: one value per phase}")
        for key, values in extras.items():
            if not (isinstance(values, list) and len(values) == T):
                _fail(f"{where}.extras.{key}", f"expected {T} values (one per phase)")
        for kind in ("zero_shot", "linear_probe"):
            for task, m in (d.get(kind) or {}).items():
                _matrix(m, T, S, f"{where}.{kind}.{task}", none_ok=True)
        geo = d["geometry"]
        if not isinstance(geo, list) or len(geo) != T - 1:
            _fail(f"{where}.geometry", f"expected {T - 1} records (phases 1..{T - 1})")
        style = _keys(d.get("style") or {}, f"{where}.style", (), ("colour", "dashed"))
        return cls(**{**d, "geometry": [PhaseGeometry.from_dict(g, f"{where}.geometry[{i}]")
                                        for i, g in enumerate(geo)],
                      "extras": dict(extras), "zero_shot": d.get("zero_shot") or {},
                      "linear_probe": d.get("linear_probe") or {}, "style": dict(style)})

    @property
    def mtil(self) -> dict:
        """{task: {"transfer", "avg", "last"}} of the zero-shot accuracy (:func:`mtil`)."""
        return {task: mtil(m) for task, m in self.zero_shot.items()}

    def to_dict(self) -> dict:
        d = {f.name: [g.to_dict() for g in self.geometry] if f.name == "geometry"
             else copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        for k in ("extras", "zero_shot", "linear_probe", "style"):
            if not d[k]:
                del d[k]
        if self.zero_shot:
            d["mtil"] = self.mtil
        return d


@dataclasses.dataclass
class RunReport:
    """A continual run's report: ``config`` (the run's configuration as written in
    ``config.json``) and one :class:`MethodReport` per method, in training order."""

    written_by: str
    config: dict
    methods: dict[str, MethodReport]
    schema: int = SCHEMA

    @classmethod
    def from_dict(cls, d, where: str = "report.json") -> RunReport:
        _keys(d, where, ("written_by", "config", "methods"), ("schema",))
        schema = d.get("schema", 1)
        if schema not in READABLE:
            _fail(where, f"schema {schema!r}, this version reads schemas "
                         f"{', '.join(map(str, READABLE))}")
        if not isinstance(d["methods"], dict) or not d["methods"]:
            _fail(f"{where}.methods", "expected at least one method")
        return cls(d["written_by"], d["config"], {
            m: MethodReport.from_dict(_legacy_extras(r) if schema == 1 else r,
                                      f"{where}.methods.{m}")
            for m, r in d["methods"].items()}, schema=SCHEMA)

    def to_dict(self) -> dict:
        return {"schema": self.schema, "written_by": self.written_by, "config": self.config,
                "methods": {m: r.to_dict() for m, r in self.methods.items()}}

    @classmethod
    def read(cls, path) -> RunReport:
        """Read and check ``report.json``."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunError(f"{path} not found: finish the run, or build the report with "
                           "sdtools report RUN") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise RunError(f"{path} is not a readable report ({type(exc).__name__}); rebuild "
                           "it with sdtools report RUN --force") from None
        return cls.from_dict(d, str(path))

    def write(self, path) -> None:
        """Write atomically (a temporary file renamed into place)."""
        from .io import write_json

        write_json(path, self.to_dict())


def _legacy_extras(d):
    """Reports written before per-method extras kept what a method added as further
    top-level lists of one value per phase: move any such key into ``extras`` (dropped when
    every value is None)."""
    if not isinstance(d, dict):
        return d
    known = {f.name for f in dataclasses.fields(MethodReport)}
    legacy = {k: v for k, v in d.items() if k not in known and isinstance(v, list)}
    if not legacy:
        return d
    d = {k: v for k, v in d.items() if k not in legacy}
    kept = {k: v for k, v in legacy.items() if any(x is not None for x in v)}
    if kept:
        d["extras"] = {**kept, **(d.get("extras") or {})}
    return d


def as_report(report) -> RunReport:
    """A :class:`RunReport` from one, or from its dict (checked)."""
    if isinstance(report, RunReport):
        return report
    return RunReport.from_dict(report, "report")


__all__ = ["DEVIATION_KEYS", "MethodReport", "PhaseGeometry", "ReportShapeError", "RunReport",
           "SCHEMA", "as_report", "check_geometry", "mtil"]
