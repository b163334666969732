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

CONFIG="${1:?usage: sbatch slurm/screen.sh CONFIG.yaml [dosmatgen screen options]}"
shift
SCRIPT_DIR="${DOSMATGEN_SLURM_DIR:-${SLURM_SUBMIT_DIR:-$(pwd)}/slurm}"
# shellcheck source=slurm/common.sh
source "${SCRIPT_DIR}/common.sh"
dmg_setup_env
# a wrong flag, config key, loader or missing backend fails here, before the allocation starts any service
"${DMG_RUN[@]}" dosmatgen screen "$CONFIG" "$@" --check

JOB_DIR="${SCRATCH}/dosmatgen/slurm-${SLURM_JOB_ID:-local}"
mkdir -p "$JOB_DIR"
NUM_GPUS=$(dmg_gpus_per_task)
NUM_CPUS=$(dmg_cpus_per_task)
mapfile -t NODES < <(scontrol show hostnames "${SLURM_JOB_NODELIST}")
HEAD_NODE="${NODES[0]}"
HEAD_IP=$(srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" hostname --ip-address | awk '{print $1}')
RAY_PORT="${DOSMATGEN_RAY_PORT:-6379}"
export RAY_ADDRESS="${HEAD_IP}:${RAY_PORT}"
echo "head node: ${HEAD_NODE} (${HEAD_IP}); nodes: ${#NODES[@]}; GPUs/node: ${NUM_GPUS}; CPUs/node: ${NUM_CPUS}"
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
sleep "${DOSMATGEN_RAY_HEAD_WAIT:-20}"
if [ "${#NODES[@]}" -gt 1 ]; then
    srun --nodes=$(( ${#NODES[@]} - 1 )) --ntasks=$(( ${#NODES[@]} - 1 )) --exclude="$HEAD_NODE" --export=ALL \
        "${DMG_RUN[@]}" ray start --address="$RAY_ADDRESS" --num-cpus="$NUM_CPUS" --num-gpus="$NUM_GPUS" --block \
        > "$JOB_DIR/ray-workers.log" 2>&1 &
    sleep "${DOSMATGEN_RAY_WORKER_WAIT:-10}"
fi

# --- Dask: scheduler on the head node, one worker per node, inside this allocation ----------------------
export DOSMATGEN_DASK_SCHEDULER_FILE="$JOB_DIR/dask-scheduler.json"
DASK_WORKER_THREADS="${DOSMATGEN_DASK_THREADS:-1}"
DASK_WORKER_PROCS="${DOSMATGEN_DASK_WORKERS_PER_NODE:-$(( NUM_CPUS > 8 ? NUM_CPUS / 8 : 1 ))}"
srun --overlap --nodes=1 --ntasks=1 -w "$HEAD_NODE" --export=ALL \
    "${DMG_RUN[@]}" dask scheduler --scheduler-file "$DOSMATGEN_DASK_SCHEDULER_FILE" --host "$HEAD_IP" \
    --dashboard-address 127.0.0.1:8787 > "$JOB_DIR/dask-scheduler.log" 2>&1 &
for _ in $(seq 60); do [ -s "$DOSMATGEN_DASK_SCHEDULER_FILE" ] && break; sleep 2; done
srun --overlap --nodes="${#NODES[@]}" --ntasks="${#NODES[@]}" --export=ALL \
    "${DMG_RUN[@]}" dask worker --scheduler-file "$DOSMATGEN_DASK_SCHEDULER_FILE" \
    --nworkers "$DASK_WORKER_PROCS" --nthreads "$DASK_WORKER_THREADS" --local-directory "${TMPDIR:-/tmp}" \
    > "$JOB_DIR/dask-workers.log" 2>&1 &

# --- the driver (this batch step, first node) -------------------------------------------------------------
status=0
"${DMG_RUN[@]}" dosmatgen screen "$CONFIG" "$@" || status=$?

# stop the services started above (background srun steps of this script only)
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true
exit "$status"
