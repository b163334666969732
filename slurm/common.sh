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

# ---- per-job secrets ------------------------------------------------------------------------------------------
# A fresh Ray auth token (RAY_AUTH_TOKEN_PATH, mode 0600) and fresh Dask TLS credentials (DOSMATGEN_DASK_TLS_DIR,
# files 0600) in the job folder; every srun step inherits the variables (--export=ALL). A requeued job gets new ones.
dmg_job_secrets() {
    local dir="${1:?dmg_job_secrets JOB_DIR}" exports
    mkdir -p "$dir" && chmod 700 "$dir"
    rm -f "$dir/ray_auth_token"
    exports=$("${DMG_RUN[@]}" python -m dosmatgen_cluster.ray_auth "$dir/ray_auth_token") || return 1
    eval "$exports"
    "${DMG_RUN[@]}" python -m dosmatgen_cluster.tls --force "$dir/tls" >/dev/null || return 1
    export DOSMATGEN_DASK_TLS_DIR="$dir/tls"
}

# ---- readiness: poll instead of sleeping a fixed time ------------------------------------------------------------
# dmg_wait_until TIMEOUT_S WHAT CMD...: run CMD every DMG_POLL_S (2) seconds until it succeeds; error after TIMEOUT_S.
dmg_wait_until() {
    local timeout="$1" what="$2" start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS - start >= timeout )); then
            echo "error: ${what} not ready after ${timeout} s" >&2
            return 1
        fi
        sleep "${DMG_POLL_S:-2}"
    done
}

# ---- Dask workers of one node: one per GPU, each pinned to its GPU ------------------------------------------------
# Run once per node (srun --ntasks-per-node=1). With G GPUs on the node it starts G `dask worker` processes, worker i
# with CUDA_VISIBLE_DEVICES set to the i-th GPU the task was given (Slurm's CUDA_VISIBLE_DEVICES list, else 0..G-1),
# a resource GPU=1 and OMP_NUM_THREADS = CPUs/G. Without GPUs: DOSMATGEN_DASK_WORKERS_PER_NODE CPU workers.
# Every worker speaks TLS with the job's credentials (DOSMATGEN_DASK_TLS_DIR).
dmg_node_dask_workers() {
    local sched="${DOSMATGEN_DASK_SCHEDULER_FILE:?}" tlsdir="${DOSMATGEN_DASK_TLS_DIR:?}" gpus cpus i host
    local -a devices tls common
    gpus=$(dmg_gpus_per_task)
    cpus=$(dmg_cpus_per_task)
    host=$(hostname)
    tls=(--tls-ca-file "$tlsdir/ca.pem" --tls-cert "$tlsdir/cert.pem" --tls-key "$tlsdir/key.pem")
    common=(--scheduler-file "$sched" --nthreads 1 --local-directory "${TMPDIR:-/tmp}/dask-${SLURM_JOB_ID:-local}")
    if [ "$gpus" -gt 0 ]; then
        if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
            IFS=, read -r -a devices <<< "$CUDA_VISIBLE_DEVICES"
        else
            mapfile -t devices < <(seq 0 $(( gpus - 1 )))
        fi
        for (( i = 0; i < gpus && i < ${#devices[@]}; i++ )); do
            CUDA_VISIBLE_DEVICES="${devices[$i]}" OMP_NUM_THREADS=$(( cpus / gpus > 0 ? cpus / gpus : 1 )) \
                dask worker "${common[@]}" --nworkers 1 --name "${host}-gpu${i}" --resources "GPU=1" "${tls[@]}" &
        done
    else
        dask worker "${common[@]}" --nworkers "${DOSMATGEN_DASK_WORKERS_PER_NODE:-$(( cpus > 8 ? cpus / 8 : 1 ))}" \
            --name "${host}" "${tls[@]}" &
    fi
    wait
}

# Dask workers the driver must wait for: one per GPU (or DOSMATGEN_DASK_WORKERS_PER_NODE per CPU node) per node.
dmg_expected_dask_workers() {
    local nodes="${1:?nodes}" gpus cpus
    gpus=$(dmg_gpus_per_task)
    cpus=$(dmg_cpus_per_task)
    if [ "$gpus" -gt 0 ]; then echo $(( nodes * gpus )); else echo $(( nodes * ${DOSMATGEN_DASK_WORKERS_PER_NODE:-$(( cpus > 8 ? cpus / 8 : 1 ))} )); fi
}

# ---- walltime: stop the driver and requeue ------------------------------------------------------------------------
# With `#SBATCH --signal=B:USR1@<seconds>` and `#SBATCH --requeue`, Slurm sends USR1 to this batch shell before the
# time limit. dmg_run_driver runs the driver in the background and waits; on USR1 it sends SIGTERM to the driver
# (the run store is crash-consistent: only whole units are ever marked done), waits up to DOSMATGEN_STOP_GRACE_S
# (60) seconds, and `scontrol requeue`s the job. The requeued job starts this script again with
# SLURM_RESTART_COUNT > 0, and dmg_resume_args adds --resume.
dmg_on_walltime() {
    local i
    DMG_REQUEUED=1
    echo "$(date -u +%FT%TZ) time limit near: stopping the driver (pid ${DMG_DRIVER_PID}) and requeueing job ${SLURM_JOB_ID:-?}" >&2
    kill -TERM "$DMG_DRIVER_PID" 2>/dev/null || true
    for (( i = 0; i < ${DOSMATGEN_STOP_GRACE_S:-60}; i++ )); do
        kill -0 "$DMG_DRIVER_PID" 2>/dev/null || break
        sleep 1
    done
    kill -KILL "$DMG_DRIVER_PID" 2>/dev/null || true
    scontrol requeue "${SLURM_JOB_ID:?}"
}

dmg_run_driver() {
    local status=0
    DMG_REQUEUED=""
    "$@" &
    DMG_DRIVER_PID=$!
    trap dmg_on_walltime USR1
    wait "$DMG_DRIVER_PID" || status=$?
    trap - USR1
    if [ -n "$DMG_REQUEUED" ]; then
        return 0
    fi
    return "$status"
}

# Prints --resume when this is a requeued run of the job (SLURM_RESTART_COUNT > 0) and the caller did not pass it.
dmg_resume_args() {
    local a
    for a in "$@"; do [ "$a" = "--resume" ] && return 0; done
    if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then echo "--resume"; fi
}
