#!/bin/sh
# Run the real-Slurm tests (marked `slurm`) in a private network namespace with a one-node Slurm cluster
# (tests/slurm_local.sh; needs root and `apt-get install -y slurm-wlm munge`). The extra loopback address
# gives getaddrinfo(AI_ADDRCONFIG) an IPv4 address, without which slurmctld cannot open its port.
#   tests/run_slurm_tests.sh [-x -q ...]
set -eu
cd "$(dirname "$0")/.."
export DOSMATGEN_SLURM_REQUIRED=1
exec timeout "${SLURM_TESTS_TIMEOUT:-1800}" unshare -n sh -c \
  'ip link set lo up && ip addr add 10.254.0.1/32 dev lo && tests/slurm_local.sh start && trap "tests/slurm_local.sh stop" EXIT && python -m pytest -m slurm "$@"' sh "$@"
