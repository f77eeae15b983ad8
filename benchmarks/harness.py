"""Benchmark helpers: best-of-n timing and peak extra memory (Linux VmHWM, reset per measure)."""

from __future__ import annotations

import datetime
import gc
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def measure(fn, repeat: int = 3, warmup: int = 1) -> dict:
    """Best wall time of ``repeat`` calls (after ``warmup``) and peak RSS above the start (MB)."""
    for _ in range(warmup):
        fn()
    gc.collect()
    times = []
    peak_extra = 0.0
    for _ in range(repeat):
        gc.collect()
        base = _status_kb("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to now
            fh.write("5")
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        peak_extra = max(peak_extra, (_status_kb("VmHWM") - base) / 1024.0)
    return {"seconds": min(times), "peak_extra_mb": round(peak_extra, 1)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    threads = torch.get_num_threads()
    gpu = f"; GPU {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}" \
        if torch.cuda.is_available() else ""
    return f"{cpu}; {os.cpu_count()} cores{gpu}; torch {torch.__version__}, {threads} threads"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def today() -> str:
    return datetime.date.today().isoformat()


def device() -> str:
    """The device benchmarks run on: $BENCH_DEVICE (make bench DEVICE=cuda), else cuda when
    there is one, else cpu."""
    import torch

    return os.environ.get("BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
