# Shared helpers of the dosmatgen sbatch scripts (sourced, not submitted).
#
# Environment variant, chosen by DOSMATGEN_SHIFTER_IMAGE:
#   unset  -> module variant: `module load python` (if modules exist) and the venv in DOSMATGEN_VENV
#   set    -> shifter variant: every step runs inside the image, e.g.
#             DOSMATGEN_SHIFTER_IMAGE=nersc/pytorch:26.01.01 (GPU modules: gpu,nccl-cu13-plugin)

dmg_setup_env() {
    if [ -n "${DOSMATGEN_SHIFTER_IMAGE:-}" ]; then
        DMG_RUN=(shifter "--image=${DOSMATGEN_SHIFTER_IMAGE}" "--module=${DOSMATGEN_SHIFTER_MODULES:-gpu,nccl-cu13-plugin}")
    else
        if command -v module >/dev/null 2>&1; then module load python >/dev/null 2>&1 || true; fi
        if [ -n "${DOSMATGEN_VENV:-}" ]; then
            # shellcheck disable=SC1091
            source "${DOSMATGEN_VENV}/bin/activate"
        fi
        DMG_RUN=()
    fi
    # Ray 2.60 enables token auth; the head, the workers and the driver must agree (FACTS §6)
    export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
    # outputs never on $HOME: $SCRATCH on Perlmutter (a local folder elsewhere)
    export SCRATCH="${SCRATCH:-${TMPDIR:-/tmp}/dosmatgen-scratch-${USER:-$(id -un)}}"
    mkdir -p "$SCRATCH"
}

# GPUs per task. On Perlmutter SLURM_GPUS_PER_TASK is empty: parse SLURM_TRES_PER_TASK
# ("gres/gpu=4", "gres:gpu:4", "cpu=128,gres/gpu:a100=4", ...). Prints 0 when the job has no GPUs.
dmg_gpus_per_task() {
    if [ -n "${SLURM_GPUS_PER_TASK:-}" ]; then
        echo "${SLURM_GPUS_PER_TASK##*:}"
        return
    fi
    local tres="${SLURM_TRES_PER_TASK:-}" n
    n=$(printf '%s' "$tres" | tr ',' '\n' | grep -E 'gres[/:]gpu' | head -n1 | sed -E 's/.*[=:]([0-9]+)$/\1/')
    case "$n" in
        ''|*[!0-9]*) echo 0 ;;
        *) echo "$n" ;;
    esac
}

dmg_cpus_per_task() {
    echo "${SLURM_CPUS_PER_TASK:-$(nproc)}"
}
