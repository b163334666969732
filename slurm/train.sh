#!/bin/bash
#SBATCH --job-name=dosmatgen-train
#SBATCH -C gpu
#SBATCH -q regular
#SBATCH -A m0000_g
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-task=4
#SBATCH --cpus-per-task=128
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#
# Distributed training with Ray Train (TorchTrainer, DDP over NCCL, one worker per GPU):
#
#     sbatch -A <project>_g slurm/train.sh configs/model/<config>.yaml [--epochs E] [--resume] [--data STORE.zarr]
#
# Runs `dosmatgen train --distributed`. Output (last.pt, best.pt, train_state.pt, config.yaml, metrics.jsonl) goes to
# $DOSMATGEN_TRAIN_OUT (default $SCRATCH/dosmatgen/train/<config name>); Ray Train's own results and checkpoints
# to $SCRATCH/dosmatgen/train/ray (shared storage). Resubmit with --resume to continue from OUT/train_state.pt.
# Dashboard: 127.0.0.1 on the head node only; tunnel as described in slurm/screen.sh.
# Walltime: 10 min before the limit the trainer is stopped and the job requeued; the requeued job adds --resume.
set -euo pipefail
CONFIG="${1:?usage: sbatch slurm/train.sh CONFIG.yaml [options]}"
shift
SCRIPT_DIR="${DOSMATGEN_SLURM_DIR:-${SLURM_SUBMIT_DIR:-$(pwd)}/slurm}"
# shellcheck source=slurm/common.sh
source "${SCRIPT_DIR}/common.sh"
dmg_setup_env

NUM_GPUS=$(dmg_gpus_per_task)
NUM_CPUS=$(dmg_cpus_per_task)
mapfile -t NODES < <(scontrol show hostnames "${SLURM_JOB_NODELIST}")
HEAD_NODE="${NODES[0]}"
HEAD_IP=$(srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" hostname --ip-address | awk '{print $1}')
export RAY_ADDRESS="${HEAD_IP}:${DOSMATGEN_RAY_PORT:-6379}"
STORAGE="${SCRATCH}/dosmatgen/train/ray"
OUT="${DOSMATGEN_TRAIN_OUT:-${SCRATCH}/dosmatgen/train/$(basename "$CONFIG" .yaml)}"
mkdir -p "$STORAGE" "$OUT"
dmg_job_secrets "${SCRATCH}/dosmatgen/slurm-${SLURM_JOB_ID:-local}"   # per-job Ray token (mode 0600)
echo "head node: ${HEAD_NODE}; dashboard: ssh -J ${USER:-you}@perlmutter.nersc.gov -L 8265:127.0.0.1:8265 ${USER:-you}@${HEAD_NODE}"

srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" --export=ALL "${DMG_RUN[@]}" ray start --head \
    --node-ip-address="$HEAD_IP" --port="${DOSMATGEN_RAY_PORT:-6379}" --num-cpus="$NUM_CPUS" --num-gpus="$NUM_GPUS" \
    --dashboard-host=127.0.0.1 --block &
dmg_wait_until "${DOSMATGEN_RAY_START_TIMEOUT:-300}" "Ray head ${RAY_ADDRESS}" "${DMG_RUN[@]}" ray status --address "$RAY_ADDRESS"
if [ "${#NODES[@]}" -gt 1 ]; then
    srun --nodes=$(( ${#NODES[@]} - 1 )) --ntasks=$(( ${#NODES[@]} - 1 )) --exclude="$HEAD_NODE" --export=ALL \
        "${DMG_RUN[@]}" ray start --address="$RAY_ADDRESS" --num-cpus="$NUM_CPUS" --num-gpus="$NUM_GPUS" --block &
fi
# every node and GPU must have joined before the trainer sizes its workers (clear error after the timeout)
"${DMG_RUN[@]}" python -m dosmatgen_cluster.readiness --nodes "${#NODES[@]}" --gpus $(( ${#NODES[@]} * NUM_GPUS )) \
    --timeout "${DOSMATGEN_RAY_READY_TIMEOUT:-600}"
WORKERS=$(( ${#NODES[@]} * (NUM_GPUS > 0 ? NUM_GPUS : 1) ))
GPU_FLAG=()
if [ "$NUM_GPUS" -gt 0 ]; then GPU_FLAG=(--gpu); fi
status=0
dmg_run_driver "${DMG_RUN[@]}" dosmatgen train --config "$CONFIG" --distributed --out "$OUT" --storage "$STORAGE" \
    --workers "$WORKERS" "${GPU_FLAG[@]}" $(dmg_resume_args "$@") "$@" || status=$?
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true
exit "$status"
