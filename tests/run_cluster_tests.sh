#!/bin/sh
# Run the tests marked `cluster` (Ray, Dask) inside a private network namespace, so that Ray and Dask
# only ever see the loopback interface (Ray rewrites 127.0.0.1 to the machine's routable address otherwise;
# FACTS §6). Needs root or unprivileged user namespaces (`unshare -n`; add -r when not root).
#
#   tests/run_cluster_tests.sh                 # all cluster tests
#   tests/run_cluster_tests.sh tests/test_cluster_dask_relax.py -x -q
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = "0" ]; then userns=""; else userns="-r"; fi
exec timeout "${CLUSTER_TESTS_TIMEOUT:-1200}" unshare $userns -n sh -c 'ip link set lo up && exec python -m pytest -m cluster "$@"' sh "$@"
