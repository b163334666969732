#!/bin/bash
#SBATCH --job-name=dosmatgen-loop
#SBATCH -C gpu
#SBATCH -q regular
#SBATCH -A m0000_g
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-task=4
#SBATCH --cpus-per-task=128
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#
# The HPC entry point of the closed discovery loop (NERSC Perlmutter conventions):
#
#     sbatch -A <project>_g slurm/loop.sh configs/loop/nersc.yaml [dosmatgen loop options]
#
# The same services as slurm/screen.sh (Ray head and workers, a TLS Dask scheduler and one worker per GPU), then
# `dosmatgen loop CONFIG`: every round's screen samples on the Ray GPU actors and relaxes on the Dask workers,
# submits its DFT through submitit and waits for it, then fine-tunes with Ray Train on the same GPUs. At the
# time limit the job is requeued and continues with --resume (no finished step is repeated). If DFT jobs are
# still queued when the allocation must end, resubmit the same command with --resume.
# Every `dosmatgen loop` option is forwarded; `dosmatgen loop --check` validates them, the loop and round-0
# screen configs, the target and the DFT budget before any service starts.
set -euo pipefail
SCRIPT_DIR="${DOSMATGEN_SLURM_DIR:-${SLURM_SUBMIT_DIR:-$(pwd)}/slurm}"
export DOSMATGEN_DRIVER=loop
exec bash "${SCRIPT_DIR}/screen.sh" "$@"
