"""Run benchmarks, each in its own process, and append the results to benchmarks/RESULTS.md.

    python -m benchmarks.run              # all
    python -m benchmarks.run retrieval    # by name (see --list)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from .harness import ROOT, commit, machine, today


def _registry() -> dict:
    from . import geometry

    benches = dict(geometry.BENCHES)
    from . import classify, jpeg, pipeline, training

    benches.update(pipeline.BENCHES)
    benches.update(classify.BENCHES)
    benches.update(jpeg.BENCHES)
    benches.update(training.BENCHES)
    return benches


def _one(name: str) -> None:
    result = _registry()[name]()
    print("RESULT " + json.dumps(result))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)
    if args.one:
        _one(args.one)
        return 0
    names = args.names or list(_registry())
    if args.list:
        print("\n".join(_registry()))
        return 0
    unknown = [n for n in names if n not in _registry()]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(_registry())}", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        print(f"== {name}", flush=True)
        proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--one", name], cwd=ROOT,
                              capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            rows.append({"name": name, "error": (proc.stderr.strip().splitlines() or ["?"])[-1],
                         "pass": False})
        else:
            rows.append(json.loads(line[0][len("RESULT "):]))
        for k, v in rows[-1].items():
            print(f"   {k}: {_fmt(v)}")
    if not args.no_record:
        lines = [f"\n## {today()} · commit {commit()} · {machine()}\n"]
        for r in rows:
            status = "PASS" if r.get("pass") else "MISS"
            detail = "; ".join(f"{k}={_fmt(v)}" for k, v in r.items() if k not in ("name", "pass"))
            lines.append(f"- **{r['name']}** — {status} — {detail}")
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write("\n".join(lines) + "\n")
        print("appended to benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
