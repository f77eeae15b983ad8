#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment and run it from there:
# `sdtools --version`, `modx --help` and an API example, from a folder outside the clone.
#
#   tools/wheel_check.sh [PYTHON]      (PYTHON: the project's .venv/bin/python by default)
#
# The fresh venv gets the wheel alone (--no-deps); its dependencies (torch, open_clip, ...)
# are read from PYTHON's site-packages through a .pth line appended after the venv's own,
# so nothing is downloaded and the wheel's copy of sdtools and modx is the one imported.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
OUT=build/wheel-check
rm -rf "$OUT" && mkdir -p "$OUT/dist"

"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT/dist" .
WHEEL=$(ls "$OUT"/dist/sdtools_modx-*.whl)
echo "built $WHEEL"

# the wheel holds both packages and their py.typed markers, and nothing else at the top
"$PY" - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
assert tops == {"sdtools", "modx"}, tops
for need in ("sdtools/py.typed", "modx/py.typed", "sdtools/__init__.py", "modx/methods/base.py"):
    assert need in names, need
print(f"wheel contents: {len(names)} files, packages {sorted(tops)}, py.typed in both")
PY

"$PY" -m venv "$OUT/venv"
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
VSITE=$("$OUT/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$SITE" > "$VSITE/zz_dependencies.pth"
"$OUT/venv/bin/python" -m pip install -q --no-deps --no-index "$WHEEL"

cd "$OUT"  # away from the clone: only the installed wheel can be imported
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg
venv/bin/sdtools --version
venv/bin/modx --version
venv/bin/modx --help > /dev/null && echo "modx --help: ok"
venv/bin/python - <<'PY'
import numpy as np

import modx
import sdtools

assert "wheel-check/venv" in sdtools.__file__ and "wheel-check/venv" in modx.__file__, (
    sdtools.__file__, modx.__file__)
assert modx.__version__ == sdtools.__version__
rng = np.random.default_rng(0)
A = rng.standard_normal((500, 16))
Q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
print("API example: RAD mean", round(float(sdtools.rad(A, A @ Q).mean), 1), "deg;",
      "retrieval keys", sorted(sdtools.retrieval(A, A @ Q, np.arange(500)).i2t))
PY
echo "wheel check: ok"
