#!/bin/bash
#SBATCH --job-name=dosmatgen-dft-collect
#SBATCH -C cpu
#SBATCH -q regular
#SBATCH -A m0000
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=00:30:00
#SBATCH --output=%x-%j.out
#
# Collect the results of a screening run's DFT job array and write the summary (no GPUs needed):
#
#     sbatch --dependency=afterany:<DFT array job id> slurm/dft_collect.sh configs/screen/nersc.yaml [dosmatgen screen options]
#
# The job ids are in <run dir>/dft_submissions.json. `--resume` reruns every stage, which skips all completed
# shards; DFT slots that failed are resubmitted while they have attempts left (dft.max_attempts).
set -euo pipefail
CONFIG="${1:?usage: sbatch slurm/dft_collect.sh CONFIG.yaml}"
shift
SCRIPT_DIR="${DOSMATGEN_SLURM_DIR:-${SLURM_SUBMIT_DIR:-$(pwd)}/slurm}"
# shellcheck source=slurm/common.sh
source "${SCRIPT_DIR}/common.sh"
dmg_setup_env
"${DMG_RUN[@]}" dosmatgen screen "$CONFIG" --resume "$@"
