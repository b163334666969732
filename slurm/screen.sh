#!/bin/bash
#SBATCH --job-name=dosmatgen-screen
#SBATCH -C gpu
#SBATCH -q regular
#SBATCH -A m0000_g
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-task=4
#SBATCH --cpus-per-task=128
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#
# The HPC entry point of a screening run (NERSC Perlmutter conventions):
#
#     sbatch -A <project>_g slurm/screen.sh configs/screen/nersc.yaml [dosmatgen screen options]
#
# One Ray node per task (one task per node): the Ray head on the first node, workers on the others, all
# started with srun; a Dask scheduler and one Dask worker per node for the relax stage (srun --overlap, since
# the Ray steps already hold the nodes' CPUs); then the driver (`dosmatgen screen CONFIG [options]`) on the first node.
# Every `dosmatgen screen` option is forwarded; `dosmatgen screen --check` validates them and the config first,
# so a wrong flag or key fails before any Ray or Dask start-up.
# The driver samples on the GPUs, relaxes, ranks, SUBMITS the DFT job array and exits, so the GPU allocation is
# never held while DFT jobs queue. Collect the DFT results later with slurm/dft_collect.sh, e.g. as a
# dependent job:   sbatch --dependency=afterany:<dft array job id> slurm/dft_collect.sh CONFIG
#
# Ray dashboard: bound to 127.0.0.1 on the head node only (an exposed Ray dashboard/jobs API lets anyone run
# code). Reach it through an SSH tunnel from your laptop; the head node is printed at the top of the log:
#     ssh -J <user>@perlmutter.nersc.gov -L 8265:127.0.0.1:8265 <user>@<head node>
#     then open http://localhost:8265
# The dashboard needs ray[default]; set DOSMATGEN_RAY_DASHBOARD=0 to start no dashboard at all.
#
# Variants: the module variant (default; DOSMATGEN_VENV=/path/to/venv) or the shifter variant
# (DOSMATGEN_SHIFTER_IMAGE=nersc/pytorch:26.01.01, with #SBATCH --image=... for faster start-up).
# Outputs: the run directory of the config (on $SCRATCH) and $SCRATCH/dosmatgen/slurm-<jobid>/ (Ray/Dask logs).
set -euo pipefail

# the driver command: `dosmatgen screen` (default) or `dosmatgen loop` (slurm/loop.sh sets DOSMATGEN_DRIVER=loop:
# the discovery loop runs its screens on the same Ray and Dask services)
DRIVER="${DOSMATGEN_DRIVER:-screen}"
case "$DRIVER" in
    screen|loop) ;;
    *) echo "DOSMATGEN_DRIVER must be screen or loop, not '$DRIVER'" >&2; exit 2 ;;
esac
CONFIG="${1:?usage: sbatch slurm/${DRIVER}.sh CONFIG.yaml [dosmatgen ${DRIVER} options]}"
shift
SCRIPT_DIR="${DOSMATGEN_SLURM_DIR:-${SLURM_SUBMIT_DIR:-$(pwd)}/slurm}"
# shellcheck source=slurm/common.sh
source "${SCRIPT_DIR}/common.sh"
dmg_setup_env
# a wrong flag, config key, loader or missing backend fails here, before the allocation starts any service
"${DMG_RUN[@]}" dosmatgen "$DRIVER" "$CONFIG" "$@" --check

JOB_DIR="${SCRATCH}/dosmatgen/slurm-${SLURM_JOB_ID:-local}"
mkdir -p "$JOB_DIR"
dmg_job_secrets "$JOB_DIR"   # per-job Ray token and Dask TLS credentials, mode 0600
NUM_GPUS=$(dmg_gpus_per_task)
NUM_CPUS=$(dmg_cpus_per_task)
mapfile -t NODES < <(scontrol show hostnames "${SLURM_JOB_NODELIST}")
HEAD_NODE="${NODES[0]}"
HEAD_IP=$(srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" hostname --ip-address | awk '{print $1}')
RAY_PORT="${DOSMATGEN_RAY_PORT:-6379}"
export RAY_ADDRESS="${HEAD_IP}:${RAY_PORT}"
# what the driver waits for before it sizes its pools (sample.ray.expected_*, relax.dask.min_workers in the config)
export DOSMATGEN_EXPECTED_NODES="${#NODES[@]}"
export DOSMATGEN_EXPECTED_GPUS=$(( ${#NODES[@]} * NUM_GPUS ))
export DOSMATGEN_DASK_EXPECTED_WORKERS=$(dmg_expected_dask_workers "${#NODES[@]}")
echo "head node: ${HEAD_NODE} (${HEAD_IP}); nodes: ${#NODES[@]}; GPUs/node: ${NUM_GPUS}; CPUs/node: ${NUM_CPUS}; restart: ${SLURM_RESTART_COUNT:-0}"
echo "dashboard: ssh -J ${USER:-you}@perlmutter.nersc.gov -L 8265:127.0.0.1:8265 ${USER:-you}@${HEAD_NODE}"

DASHBOARD_ARGS=(--include-dashboard=false)
if [ "${DOSMATGEN_RAY_DASHBOARD:-1}" = "1" ]; then
    DASHBOARD_ARGS=(--dashboard-host=127.0.0.1 --dashboard-port=8265)
fi

# --- Ray: head on the first node, one worker per other node (one task per node) --------------------------
srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" --export=ALL \
    "${DMG_RUN[@]}" ray start --head --node-ip-address="$HEAD_IP" --port="$RAY_PORT" \
    --num-cpus="$NUM_CPUS" --num-gpus="$NUM_GPUS" "${DASHBOARD_ARGS[@]}" \
    --temp-dir="${DOSMATGEN_RAY_TMP:-/tmp/ray-${SLURM_JOB_ID:-local}}" --block \
    > "$JOB_DIR/ray-head.log" 2>&1 &
dmg_wait_until "${DOSMATGEN_RAY_START_TIMEOUT:-300}" "Ray head ${RAY_ADDRESS} (see $JOB_DIR/ray-head.log)" \
    "${DMG_RUN[@]}" ray status --address "$RAY_ADDRESS"
if [ "${#NODES[@]}" -gt 1 ]; then
    # no sleep: the driver waits until DOSMATGEN_EXPECTED_NODES/GPUS have joined (clear error after a timeout)
    srun --nodes=$(( ${#NODES[@]} - 1 )) --ntasks=$(( ${#NODES[@]} - 1 )) --exclude="$HEAD_NODE" --export=ALL \
        "${DMG_RUN[@]}" ray start --address="$RAY_ADDRESS" --num-cpus="$NUM_CPUS" --num-gpus="$NUM_GPUS" --block \
        > "$JOB_DIR/ray-workers.log" 2>&1 &
fi

# --- Dask (TLS): scheduler on the head node, one worker per GPU of every node, inside this allocation ----------
export DOSMATGEN_DASK_SCHEDULER_FILE="$JOB_DIR/dask-scheduler.json"
rm -f "$DOSMATGEN_DASK_SCHEDULER_FILE"   # a requeued job must not read the previous run's address
srun --overlap --nodes=1 --ntasks=1 -w "$HEAD_NODE" --export=ALL \
    "${DMG_RUN[@]}" dask scheduler --scheduler-file "$DOSMATGEN_DASK_SCHEDULER_FILE" --host "$HEAD_IP" \
    --protocol tls --tls-ca-file "$DOSMATGEN_DASK_TLS_DIR/ca.pem" --tls-cert "$DOSMATGEN_DASK_TLS_DIR/cert.pem" \
    --tls-key "$DOSMATGEN_DASK_TLS_DIR/key.pem" \
    --dashboard-address 127.0.0.1:8787 > "$JOB_DIR/dask-scheduler.log" 2>&1 &
dmg_wait_until "${DOSMATGEN_DASK_START_TIMEOUT:-120}" "Dask scheduler file $DOSMATGEN_DASK_SCHEDULER_FILE" \
    test -s "$DOSMATGEN_DASK_SCHEDULER_FILE"
srun --overlap --nodes="${#NODES[@]}" --ntasks="${#NODES[@]}" --ntasks-per-node=1 --export=ALL \
    "${DMG_RUN[@]}" bash -c 'source "$0" && dmg_node_dask_workers' "${SCRIPT_DIR}/common.sh" \
    > "$JOB_DIR/dask-workers.log" 2>&1 &

# --- the driver (this batch step, first node) -------------------------------------------------------------
status=0
dmg_run_driver "${DMG_RUN[@]}" dosmatgen "$DRIVER" "$CONFIG" $(dmg_resume_args "$@") "$@" || status=$?

# stop the services started above (background srun steps of this script only)
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true
exit "$status"
