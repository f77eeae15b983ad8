"""Mean ± std over several seeds of the demo: the README's results table.

    for s in 0 1 2; do modx demo --out runs/demo-seed$s --seed $s; done
    python -m benchmarks.demo_seeds runs/demo-seed0 runs/demo-seed1 runs/demo-seed2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from sdtools.report import summary_rows

COLUMNS = [
    ("avg_r1", "final avg R@1", 1),
    ("bwt", "BWT", 1),
    ("domain0_r1_last", "domain-0 R@1 after last phase", 1),
    ("domain0_change", "domain-0 change since phase 0", 1),
    ("rad_mean_image", "RAD mean image (deg)", 1),
    ("rad_mean_text", "RAD mean text (deg)", 1),
    ("sam_drift_image", "SAM drift image (deg)", 2),
    ("sam_drift_text", "SAM drift text (deg)", 2),
    ("explained_image", "rotation explains (image)", 2),
    ("unsync_abs_mean", "unsync mean abs (deg)", 1),
    ("relative_rotation_geodesic", "R_V^T R_T geodesic (deg)", 0),
    ("selected_share_mean", "Mod-X rows kept", 2),
]


def table(run_dirs) -> str:
    per_method: dict[str, list[dict]] = {}
    phase0 = []
    for d in run_dirs:
        rep = json.loads((Path(d) / "report.json").read_text())
        for row in summary_rows(rep):
            row["domain0_change"] = row["domain0_r1_last"] - row["domain0_r1_phase0"]
            row["selected_share_mean"] = row["extras_mean"].get("selected_share")
            per_method.setdefault(row["method"], []).append(row)
        phase0.append(next(iter(rep["methods"].values()))["r1"][0][0])
    head = "| method | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 1)]
    for m, rows in per_method.items():
        cells = []
        for key, _, nd in COLUMNS:
            vals = [r[key] for r in rows if r[key] is not None]
            if not vals:
                cells.append("–")
                continue
            cells.append(f"{np.mean(vals):.{nd}f} ± {np.std(vals, ddof=1):.{nd}f}"
                         if len(vals) > 1 else f"{vals[0]:.{nd}f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Seeds: {len(run_dirs)}; domain-0 R@1 after phase 0: "
                 f"{np.mean(phase0):.1f} ± {np.std(phase0, ddof=1) if len(phase0) > 1 else 0:.1f}"
                 ". Geometry columns: last phase against phase 0 on the probe set (all test "
                 "domains); ± is the standard deviation over seeds.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1:]))
