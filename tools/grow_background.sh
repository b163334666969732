#!/bin/sh
# Maintainer tool (issue 7): run tools/grow_dataset.py in the background, one process per core, and control it.
#
#   tools/grow_background.sh start  OUT [WORKERS]   # snapshot the library, start WORKERS (default 2) at nice 10
#   tools/grow_background.sh pause|resume|stop      # SIGSTOP / SIGCONT / kill the workers and their GPAW children
#   tools/grow_background.sh status OUT             # records and failures so far, last log lines
#
# `start` copies dosmatgen/ and tools/grow_dataset.py into OUT/snapshot-<time>/ and runs from there, so editing
# the checkout never changes a running calculation. To continue from the packs in the repository, copy them in
# first: `mkdir -p OUT && cp data/gpaw-v2/dataset-*.npz OUT/` (packed ids count as done); to pack what a run
# computed: `dosmatgen data pack OUT --out data/gpaw-v2/dataset-NAME.npz --exclude data/gpaw-v2`.
# Pause the workers while measuring benchmarks or running the test suite on a 2-core machine.
set -eu
cmd=${1:?usage: tools/grow_background.sh start OUT [WORKERS] | pause | resume | stop | status OUT}
pattern='grow_dataset.py|dosmatgen.dft.worker'
signal_all() { for p in $(pgrep -f "$pattern" || true); do kill "-$1" "$p" 2>/dev/null || true; done; }
case "$cmd" in
  start)
    out=${2:?OUT}
    workers=${3:-2}
    repo=$(cd "$(dirname "$0")/.." && pwd)
    python=${PYTHON:-$(command -v python)}
    mkdir -p "$out"
    snap="$out/snapshot-$(date +%Y%m%d-%H%M%S)"
    mkdir -p "$snap/tools"
    cp -r "$repo/dosmatgen" "$snap/"
    cp "$repo/tools/grow_dataset.py" "$snap/tools/"
    i=0
    while [ "$i" -lt "$workers" ]; do
      PYTHONPATH="$snap" nohup nice -n 10 "$python" "$snap/tools/grow_dataset.py" --out "$out" --worker "$i/$workers" \
        > "$out/grow-$i.out" 2>&1 &
      i=$((i + 1))
    done
    echo "started $workers workers on $out (library snapshot $snap)"
    ;;
  pause) signal_all STOP ;;
  resume) signal_all CONT ;;
  stop) signal_all CONT; signal_all TERM ;;
  status)
    out=${2:?OUT}
    n=$(find "$out" -path '*/records/*.npz' | wc -l)
    f=$(cat "$out"/failures.jsonl "$out"/worker-*/failures.jsonl 2>/dev/null | wc -l)
    echo "records: $n (not counting packs), failure lines: $f, running processes: $(pgrep -fc "$pattern" || true)"
    tail -n 3 "$out/grow.log" 2>/dev/null || true
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
