"""A study kept without its runs: its plan, its timings and one compact record per finished
cell (``seed{S}/CELL/cell.json``, the cell's row of ``study.json``: a few kilobytes, where
the cell's run folder holds its checkpoints, embeddings and full report).

    modx study --preset shift --out runs/study-shift --archive keep/shift   # keep
    cp -r keep/shift runs/study-shift2                                       # elsewhere, later
    modx study --preset shift --out runs/study-shift2                        # resume

An archive is a study folder: a study run on it (or on a copy) counts its recorded cells as
finished, trains only the cells it lacks, and aggregates the recorded rows with the new ones
into ``study.json``, the report and the figures. A seed split across the two retrains its
phase-0 model, which training reproduces exactly on the same machine and versions; the
aggregate refuses cells of one seed whose phase-0 rows differ (:mod:`modx.study_cells`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from modx.errors import ConfigError
from sdtools.io import atomic_dir, check_output_dir, tag, write_json, written_by_us
from sdtools.runs import RunDir

from .study import STUDY_ENTRIES, Plan, _same_training, write_plan
from .study_cells import _collect
from .study_records import CELL_RECORD, cell_record
from .study_stats import read_all_times, write_times


def write_archive(plan: Plan, out, dest, force: bool = False) -> int:
    """Write the study in ``out``'s archive to ``dest`` (replaced whole: an archive of the
    same training, or a new folder); returns the number of cells it records. ``dest`` holding
    anything else, or an archive of other training, is refused unless ``force``."""
    out, dest = Path(out), Path(dest)
    if not (out / "plan.json").is_file():
        raise ConfigError(f"--out {out} holds no study (no plan.json); run the study first, "
                          "or give the folder it ran in")
    if dest.exists() and os.path.realpath(dest) == os.path.realpath(out):
        raise ConfigError("--archive is the study's own folder; give another folder")
    _same_training(plan, out)
    rows = _collect(plan, out, partial=True)
    check_output_dir(dest, "--archive", STUDY_ENTRIES, force)
    runs = sorted(p for p in dest.glob("seed*/**/*") if p.is_file() and p.name != CELL_RECORD)
    if runs:  # replacing the folder would delete them
        raise ConfigError(f"--archive {dest} holds runs ({runs[0].relative_to(dest)}), not an "
                          "archive; give a new folder or an earlier archive of this study")
    if not force:
        _same_training(plan, dest)
    times, cpus = read_all_times(out)
    with atomic_dir(dest) as tmp:
        write_plan(plan, tmp)
        if times:
            write_times(tmp, times, cpus)
        for r in rows:
            path = tmp / f"seed{r.seed}" / str(r.name) / CELL_RECORD
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, cell_record(r, tag(), cell_environment(out / path.parent.relative_to(
                tmp))))
    return len(rows)


def cell_environment(run: Path) -> dict | None:
    """Where a cell was trained (its run's ``environment.json``, or its record's)."""
    for path in (RunDir(run).environment_path, run / CELL_RECORD):
        try:
            env = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if path.name == CELL_RECORD:
            env = env.get("environment") if isinstance(env, dict) else None
        if isinstance(env, dict) and env:
            return env
    return None


def read_plan(out) -> Plan:
    """The plan a study folder (or an archive) recorded in its ``plan.json``."""
    path = Path(out) / "plan.json"
    if not written_by_us(path, "plan"):
        raise ConfigError(f"{out} holds no study plan sdtools wrote (plan.json); give a study "
                          "folder or an archive")
    d = json.loads(path.read_text())
    return Plan(**{f.name: d[f.name] for f in dataclasses.fields(Plan) if f.name in d})


def aggregate_archive(archive, into) -> dict:
    """``study.json`` (with its report and figure) of an archive as it stands, partial when
    cells are missing, written into ``into`` (a new folder: the archive is copied there)
    without training anything. Returns the study."""
    from .study_stats import aggregate

    plan = read_plan(archive)
    into = Path(into)
    shutil.copytree(archive, into)
    done = [c.done(into) for c in plan.cells()]
    if not any(done):
        raise ConfigError(f"{archive} records no finished cell")
    return aggregate(plan, into, partial=not all(done))
