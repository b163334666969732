#!/usr/bin/env bash
# Run the whole test suite with the project's venv. Cluster tests (Ray/Dask) run inside a private network
# namespace so that all traffic stays on loopback. Exits non-zero on failure or when no test ran.
#   scripts/test.sh [--fast] [PYTEST ARGS...]
# --fast: only the fast tier (`-m "not slow"` in the main and the cluster suite; the real-Slurm suite, all slow,
# is skipped). Without it: the whole suite, as .ci/run uses it.
set -uo pipefail
cd "$(dirname "$0")/.."
FAST=0
ARGS=()
for a in "$@"; do
  if [ "$a" = --fast ]; then FAST=1; else ARGS+=("$a"); fi
done
set -- "${ARGS[@]+"${ARGS[@]}"}"
MAIN_MARKS="not cluster"
CLUSTER_MARKS="cluster"
if [ $FAST -eq 1 ]; then
  MAIN_MARKS="not cluster and not slow"
  CLUSTER_MARKS="cluster and not slow"
fi
VENV=${DOSMATGEN_VENV:-.venv}
. "$VENV/bin/activate"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONHASHSEED=0

run_pytest() {  # pytest exit code 5 (no tests collected) is a failure here
  python -m pytest "$@"; rc=$?
  if [ $rc -eq 5 ]; then echo "[test] error: pytest collected no tests for: $*" >&2; return 1; fi
  return $rc
}

run_pytest -q -m "$MAIN_MARKS" "$@"; rc_main=$?

rc_cluster=0
if ls tests/test_cluster_*.py >/dev/null 2>&1; then
  if unshare -n true 2>/dev/null; then
    unshare -n bash -c "ip link set lo up && . '$VENV/bin/activate' && $(declare -f run_pytest); run_pytest -q -m '$CLUSTER_MARKS' $*"
    rc_cluster=$?
  else
    echo "[test] error: cannot create a private network namespace (unshare -n needs root or user namespaces)" >&2
    rc_cluster=1
  fi
fi
rc_slurm=0
if [ "${DOSMATGEN_TEST_SLURM:-0}" = 1 ] && [ $FAST -eq 1 ]; then
  echo "[test] --fast: the real Slurm suite (all slow) is skipped"
elif [ "${DOSMATGEN_TEST_SLURM:-0}" = 1 ]; then
  # a real one-node Slurm (slurm-wlm + munge from Debian, root) in a private network namespace
  bash tests/run_slurm_tests.sh -q; rc_slurm=$?
  [ $rc_slurm -eq 5 ] && { echo "[test] error: no slurm tests collected" >&2; rc_slurm=1; }
fi
echo "[test] main suite exit $rc_main, cluster suite exit $rc_cluster, slurm suite exit $rc_slurm"
[ $rc_main -eq 0 ] && [ $rc_cluster -eq 0 ] && [ $rc_slurm -eq 0 ]
