"""What a run may do with its ``--out`` folder: never overwrite a user's files, never resume
with other training settings than the run was trained with."""

from __future__ import annotations

import json

from modx.errors import TrainingError
from sdtools.io import check_access
from sdtools.runs import RunDir

from ..config import TRAINING_KEYS


def check_out_dir(rd: RunDir, cfg, resume: bool, force: bool = False) -> None:
    out = rd.path
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} is a file; give a directory for the run")
    check_access(rd.config_path, "--out")  # a read-only place fails now, not after phase 0
    signs = rd.path / "phase0", rd.metrics_path, rd.environment_path  # what only a run writes
    if rd.config_path.exists() and not rd.exists() and any(p.exists() for p in signs):
        raise TrainingError(f"{rd.config_path} is damaged (empty, not JSON or not a run's "
                            "config); the run cannot be checked or resumed without it: restore "
                            "it, or start over in another --out")
    if resume:
        if not rd.exists():
            raise TrainingError(f"--resume: {out} holds no modx run (no config.json); drop "
                                "--resume to start a new run there")
        try:
            old = rd.read_config()
        except Exception as exc:  # a damaged config.json cannot vouch for the run
            raise TrainingError(f"--resume: {rd.config_path} is unreadable ({exc})") from None
        new = json.loads(json.dumps(cfg.to_dict()))  # the same JSON round trip as the file
        changed = [k for k in TRAINING_KEYS if k in old and old[k] != new.get(k)]
        if str(new.get("phases", "")).startswith("shards:") and "workers" in old \
                and old["workers"] != new.get("workers"):  # the stream depends on the count
            changed.append("workers")
        if changed:
            diffs = ", ".join(f"{k} ({old[k]!r} -> {new.get(k)!r})" for k in changed[:4])
            raise TrainingError(f"--resume with other training settings than {out} was trained "
                                f"with: {diffs}; resume with the run's own config "
                                f"({rd.config_path}) or start a new run in another --out")
        return
    if rd.exists() or rd.phase_dir("phase0", 0).exists():
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or choose "
                            "another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise TrainingError(f"{out} exists and holds files that are not a modx run; choose "
                            "another --out (or pass --force to write the run beside them: "
                            "they are kept)")
    if out.is_dir() and force:  # beside a user's files, never over them
        own = ["config.json", "environment.json", "metrics.jsonl", "report.json", "report.md",
               "figures", "tb", "phase0", *cfg.methods]
        taken = [n for n in own if (out / n).exists()]
        if taken:
            raise TrainingError(f"{out} holds {taken[0]}, a name the run writes; --force writes "
                                "the run beside a folder's files, never over them: move it or "
                                "choose another --out")
