#!/usr/bin/env bash
# One prepared command that proves lmscale's GPU path (see benchmarks/gpu_check.py for the sections):
#   bash benchmarks/gpu_check.sh                      # on a GPU machine: full check, ~8 min
#   bash benchmarks/gpu_check.sh --device cpu --tiny  # every section on tiny shapes (CI, ~1-2 min)
# Needs only the checkout: it uses the python3 on PATH (or $PYTHON) when it already has torch (the
# CUDA build on a GPU machine), else installs the pinned torch and lmscale's training extra into it.
# Writes summary.json and one log per section under --out, or $OUT, or ./gpu_check_out.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "[gpu_check] no torch in $PY: installing torch==2.13.0 and lmscale[train,report]"
  "$PY" -m pip install -q torch==2.13.0 && "$PY" -m pip install -q -e '.[train,report]' || {
    echo "[gpu_check] cannot install torch here (no package registry?): give PYTHON=/path/to/python with torch" >&2
    exit 2
  }
fi
# lmscale from this checkout, whether or not it is installed; its other needs must already be there
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
missing=$("$PY" - <<'PYEOF'
import importlib.util
need = ["numpy", "scipy", "pandas", "pyarrow", "click", "rich", "yaml", "threadpoolctl", "tokenizers", "matplotlib", "markdown"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PYEOF
)
if [ -n "$missing" ]; then
  echo "[gpu_check] missing Python packages: $missing (pip install -e '.[train,report]')" >&2
  exit 2
fi
exec "$PY" benchmarks/gpu_check.py "$@"
