#!/usr/bin/env bash
# Install dosmatgen and everything it needs into ./.venv (Debian/Ubuntu; apt-get as root for system libraries).
#   bash scripts/install.sh            # full install: library, cluster, MLFFs, GPAW (DFT), test tools
#   DOSMATGEN_NO_DFT=1 bash scripts/install.sh   # skip GPAW (GPL, compiled from source)
# Idempotent: rerunning only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${DOSMATGEN_VENV:-.venv}

# compilers and headers build GPAW and mpi4py from source; iproute2/util-linux give `ip` and `unshare` to the tests
apt_pkgs=(build-essential pkg-config python3-dev python3-venv libxc-dev libopenblas-dev openmpi-bin libopenmpi-dev
          iproute2 util-linux)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[install] apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[install] warning: missing system packages ${missing[*]} (need root + apt-get); GPAW/MPI may not build" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
# torch first, pinned: 2.13.0 is what this project tests on. DOSMATGEN_TORCH_INDEX=https://download.pytorch.org/whl/cpu
# takes the CPU-only build (PyPI's Linux wheel bundles CUDA, several GB).
python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || python -m pip install -q torch==2.13.0 ${DOSMATGEN_TORCH_INDEX:+--index-url "$DOSMATGEN_TORCH_INDEX"}
extras="cluster,mlff,sevenn,mp,test"
[ "${DOSMATGEN_NO_DFT:-0}" = 1 ] || extras="$extras,dft"
echo "[install] pip install -e .[$extras]"
# the constraint keeps every dependency on the torch installed above
python -m pip install -q -c scripts/constraints.txt -e ".[$extras]"
echo "[install] done: $(python -c 'import dosmatgen; print("dosmatgen", dosmatgen.__version__)') in $VENV"
