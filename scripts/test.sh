#!/usr/bin/env bash
# Run the whole test suite with the project's venv. Cluster tests (Ray/Dask) run inside a private network
# namespace so that all traffic stays on loopback. Exits non-zero on failure or when no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${DOSMATGEN_VENV:-.venv}
. "$VENV/bin/activate"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONHASHSEED=0

run_pytest() {  # pytest exit code 5 (no tests collected) is a failure here
  python -m pytest "$@"; rc=$?
  if [ $rc -eq 5 ]; then echo "[test] error: pytest collected no tests for: $*" >&2; return 1; fi
  return $rc
}

run_pytest -q -m "not cluster" "$@"; rc_main=$?

rc_cluster=0
if ls tests/test_cluster_*.py >/dev/null 2>&1; then
  if unshare -n true 2>/dev/null; then
    unshare -n bash -c "ip link set lo up && . '$VENV/bin/activate' && $(declare -f run_pytest); run_pytest -q -m cluster $*"
    rc_cluster=$?
  else
    echo "[test] error: cannot create a private network namespace (unshare -n needs root or user namespaces)" >&2
    rc_cluster=1
  fi
fi
rc_slurm=0
if [ "${DOSMATGEN_TEST_SLURM:-0}" = 1 ]; then
  # a real one-node Slurm (slurm-wlm + munge from Debian, root) in a private network namespace
  bash tests/run_slurm_tests.sh -q; rc_slurm=$?
  [ $rc_slurm -eq 5 ] && { echo "[test] error: no slurm tests collected" >&2; rc_slurm=1; }
fi
echo "[test] main suite exit $rc_main, cluster suite exit $rc_cluster, slurm suite exit $rc_slurm"
[ $rc_main -eq 0 ] && [ $rc_cluster -eq 0 ] && [ $rc_slurm -eq 0 ]
