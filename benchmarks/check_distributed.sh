#!/usr/bin/env bash
# The checks of issue 14 with real `ember train` runs (docs/distributed.md), in a scratch folder:
#
#   benchmarks/check_distributed.sh exact [float64|float32]   # 1 process vs mpirun -np 2: mnist-mlp sgd,
#                                                             # mnist-mlp adam, lenet5 sgd; one full epoch each
#   benchmarks/check_distributed.sh reproducible [RANKS] [S] # the same 3 runs in float32 with --grad-shards S
#                                                             # (default 2 and 2): 1 process vs mpirun -np RANKS
#   benchmarks/check_distributed.sh kill                      # SIGKILL rank 1 mid-epoch, time the stop,
#                                                             # then resume the checkpoint on 1 process
#
# Needs mpirun and mpi4py (pip install 'ember[mpi]'); sets the Open MPI root variables itself.
# Every run uses --threads 1 and seed 1; lenet5 takes a few minutes a run.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$HERE/../src" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
PY="${PYTHON:-python3}"
MPIRUN="$(command -v mpirun || echo "$(dirname "$(command -v "$PY")")/mpirun")"
WORK="$(mktemp -d /tmp/ember-check-XXXXXX)"
cd "$WORK"
TRAIN=("$PY" -m ember train --epochs 1 --seed 1 --no-progress --threads 1)

compare() {  # name [ranks]: the two runs' arrays (float64 kept) and test accuracies
    "$PY" - "$1" "${2:-2}" <<'EOF'
import sys
import numpy as np
from ember.io import read_tensors
name, ranks = sys.argv[1], sys.argv[2]
one, two = (read_tensors(f"{name}_{r}.safetensors")[0] for r in (1, 2))
times = [open(f"{name}_{r}.log").read().split(" epochs (")[1].split("s)")[0] for r in (1, 2)]
diff = max(float(np.abs(one[k].astype(np.float64) - two[k]).max()) for k in one if not k.startswith("extra"))
acc = [open(f"{name}_{r}.log").read().split("test accuracy ")[1].split("%")[0] for r in (1, 2)]
print(f"{name}: {next(iter(one.values())).dtype}, max |parameter difference| {diff:.3g}, bitwise equal "
      f"{all(np.array_equal(one[k], two[k]) for k in one)}, test accuracy 1 process {acc[0]}%, {ranks} ranks "
      f"{acc[1]}%, run time {times[0]} s / {times[1]} s", flush=True)
EOF
}

exact() {
    local dtype="${1:-float64}" name
    for run in "mnist-mlp sgd" "mnist-mlp adam" "lenet5 sgd"; do
        set -- $run
        name="$1-$2-$dtype"
        "${TRAIN[@]}" --model "$1" --optimizer "$2" --dtype "$dtype" --save "${name}_1.safetensors" > "${name}_1.log"
        "$MPIRUN" -np 2 "${TRAIN[@]}" --model "$1" --optimizer "$2" --dtype "$dtype" --save "${name}_2.safetensors" \
            > "${name}_2.log"
        compare "$name"
    done
}

reproducible() {
    local ranks="${1:-2}" shards="${2:-2}" name
    for run in "mnist-mlp sgd" "mnist-mlp adam" "lenet5 sgd"; do
        set -- $run
        name="$1-$2-S$shards"
        "${TRAIN[@]}" --model "$1" --optimizer "$2" --grad-shards "$shards" --save "${name}_1.safetensors" \
            > "${name}_1.log"
        "$MPIRUN" --oversubscribe -np "$ranks" "${TRAIN[@]}" --model "$1" --optimizer "$2" --grad-shards "$shards" \
            --save "${name}_2.safetensors" > "${name}_2.log"
        compare "$name" "$ranks"
    done
}

kill_rank() {
    # 3 epochs: a quiet 2-core machine finishes one in ~5 s, so a fixed sleep could miss the run
    "$MPIRUN" -np 2 "${TRAIN[@]}" --epochs 3 --model mnist-mlp --checkpoint run.ckpt --checkpoint-every 50 \
        > kill.out 2> kill.err &
    local launcher=$! rank1="" start end status=0
    for _ in $(seq 600); do [ -e run.ckpt ] && break; sleep 0.1; done  # into the run: a checkpoint exists
    sleep 1
    for pid in $(pgrep -P "$launcher"); do  # the ranks are the launcher's children
        if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then rank1=$pid; fi
    done
    [ -n "$rank1" ] || { echo "rank 1 not found among the children of mpirun ($launcher)"; kill "$launcher"; exit 1; }
    start=$(date +%s.%N)
    kill -9 "$rank1"
    wait "$launcher" || status=$?
    end=$(date +%s.%N)
    echo "SIGKILL to rank 1 (pid $rank1): mpirun exited with status $status after $(echo "$end - $start" | bc) s"
    grep -m1 -A1 "noticed\|died" kill.err || true
    "${TRAIN[@]}" --model mnist-mlp --checkpoint run.ckpt --resume --save resumed.safetensors | grep "resumed\|accuracy"
}

case "${1:-}" in
    exact) exact "${2:-float64}" ;;
    reproducible) reproducible "${2:-2}" "${3:-2}" ;;
    kill) kill_rank ;;
    *) echo "usage: $0 exact [float64|float32] | reproducible [RANKS] [S] | kill"; exit 2 ;;
esac
echo "(files in $WORK)"
