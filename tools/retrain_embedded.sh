#!/bin/bash
# Maintainer tool (issue 7): build the grown GPAW store and retrain the three embedded models on it, then evaluate.
# Long (hours on 2 cores): run it in the background; every step resumes where it was interrupted or is skipped when done.
#
#   nohup nice -n 5 tools/retrain_embedded.sh V1_DIR GROWN_DIR OUT > OUT.log 2>&1 &
#
#   V1_DIR     the dos-gpaw-v1 dataset folder (dataset.npz; a maintainer copy of ../shared/data/dos-gpaw-v1)
#   GROWN_DIR  tools/grow_dataset.py's output folder (records/ and worker-*/records/), or data/gpaw-v2 with
#              its dataset-*.npz packs
#   OUT        where the store, the runs and the evaluation go
#
# WARM_START=1 fine-tunes the shipped models (--init-from bundled:...) instead of training from scratch; then
# DENOISER_EPOCHS, SURROGATE_MINUTES and REGRESSOR_EPOCHS can be smaller (UNCOND_EPOCHS: the unconditional model) (the splits are id hashes, so the shipped
# models never saw a test structure of the grown store).
#
# Then copy OUT/small/best.pt, OUT/small-uncond/best.pt (as dosmatgen-small-uncond.pt), OUT/surrogate/surrogate.pt
# and OUT/regressor/best.pt over the bundled checkpoints
# (dosmatgen/resources/checkpoints/), the store over dosmatgen/resources/data/, and update docs/embedded-models.md
# and the evaluation report from OUT/evaluate/ with the numbers as they come.
set -euo pipefail
V1="${1:?usage: tools/retrain_embedded.sh V1_DIR GROWN_DIR OUT}"
GROWN="${2:?GROWN_DIR}"
OUT="${3:?OUT}"
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STORE="$OUT/gpaw-v2.zarr"
step() { echo "[$(date '+%F %T')] $*"; }

inputs=("$V1" "$GROWN")
for w in "$GROWN"/worker-*; do [ -d "$w" ] && inputs+=("$w"); done
if [ ! -d "$STORE" ]; then
  step "build $STORE from ${inputs[*]}"
  dosmatgen data build --source gpaw "${inputs[@]}" --out "$STORE" --no-progress
fi
dosmatgen data info "$STORE" > "$OUT/store-info.txt" && head -20 "$OUT/store-info.txt"

resume=(); [ -f "$OUT/small/last.pt" ] && resume=(--resume)
warm() { [ "${WARM_START:-0}" = 1 ] && echo "--init-from bundled:$1"; true; }
[ ${#resume[@]} -eq 0 ] && [ "${WARM_START:-0}" = 1 ] && resume=(--init-from bundled:dosmatgen-small)
step "denoiser (configs/model/small.yaml)"
dosmatgen train --config configs/model/small.yaml --data "$STORE" --out "$OUT/small" --epochs "${DENOISER_EPOCHS:-1000}" \
  --no-progress "${resume[@]}" || [ -f "$OUT/small/best.pt" ]

# the unconditional denoiser of classifier guidance (issue 19): the same network without DOS input, warm-started
# from this round's denoiser (its condition projection is dropped; docs/embedded-models.md)
if [ ! -f "$OUT/small-uncond/.done" ]; then
  step "unconditional denoiser (configs/model/small-uncond.yaml)"
  if [ -f "$OUT/small-uncond/last.pt" ]; then start=(--resume); else start=(--init-from "$OUT/small/best.pt"); fi
  dosmatgen train --config configs/model/small-uncond.yaml --data "$STORE" --out "$OUT/small-uncond" \
    --epochs "${UNCOND_EPOCHS:-200}" --no-progress "${start[@]}"
  touch "$OUT/small-uncond/.done"
fi

# the surrogate and the regressor resume from OUT/*/train_state.pt when interrupted; OUT/*/.done marks a finished step
# (an OUT made by an older version of this script has no .done: touch OUT/surrogate/.done and OUT/regressor/.done
# there by hand if those models are finished, or they are trained again)
if [ ! -f "$OUT/surrogate/.done" ]; then
  step "surrogate (configs/surrogate/small-cpu.yaml)"
  if [ -f "$OUT/surrogate/train_state.pt" ]; then start=(--resume); else start=($(warm surrogate-small)); fi
  dosmatgen surrogate train --data "$STORE" --out "$OUT/surrogate" --config configs/surrogate/small-cpu.yaml \
    --max-minutes "${SURROGATE_MINUTES:-45}" "${start[@]}"
  touch "$OUT/surrogate/.done"
fi

if [ ! -f "$OUT/regressor/.done" ]; then
  step "regressor (configs/model/regressor_small.yaml)"
  if [ -f "$OUT/regressor/train_state.pt" ]; then start=(--resume); else start=($(warm regressor-small)); fi
  dosmatgen train-regressor --config configs/model/regressor_small.yaml --data "$STORE" --out "$OUT/regressor" \
    --epochs "${REGRESSOR_EPOCHS:-800}" "${start[@]}"
  touch "$OUT/regressor/.done"
fi

step "evaluate on the test split"
dosmatgen surrogate evaluate --checkpoint "$OUT/surrogate/surrogate.pt" --data "$STORE" --split test --out "$OUT/surrogate.test.json"
# --resume: settings an interrupted evaluation finished with the same inputs are reused (OUT/evaluate/settings/)
# EVAL_LIMIT=all evaluates the whole test split; EVAL_T_START and EVAL_GUIDANCE narrow the protocol (the acceptance
# checks need only cfg and uncond at 200 and 1000).
limit=(--limit "${EVAL_LIMIT:-64}"); [ "${EVAL_LIMIT:-64}" = all ] && limit=()
read -r -a tstart <<< "${EVAL_T_START:-200 500 1000}"
read -r -a guidance <<< "${EVAL_GUIDANCE:-cfg classifier none uncond}"
dosmatgen evaluate --checkpoint "$OUT/small/best.pt" --data "$STORE" --surrogate "$OUT/surrogate/surrogate.pt" \
  --regressor "$OUT/regressor/best.pt" --unconditional-checkpoint "$OUT/small-uncond/best.pt" --split test "${limit[@]}" --t-start "${tstart[@]}" --guidance "${guidance[@]}" \
  --out "$OUT/evaluate" --resume
step "done"
