#!/usr/bin/env bash
# The CUDA paths that CI cannot run (its machines have no GPU), in one short script to run on a
# machine with one or more NVIDIA GPUs. NOT RUN YET: written without a GPU at hand; the first run
# on one is its test (README "Distributed training" says what it checks and what it cannot).
#
#   bash bench/gpu_check.sh                 # PYTHON=... to choose the interpreter, OUT=... to keep the runs
#
# FLAGS="--num-train-epochs 1" adds flags to every run; DEVICE=cpu runs the same sequence on the CPU
# (fp16 then trains in float32, as sessrec says): a check of this script's own plumbing, no more.
#
# On the bundled sample (6 windows, XLNet-MLM, the default job) it runs, each as `sessrec run
# --device cuda` in a fresh process:
#   fp32           the default job
#   fp16           --fp16 (float16 autocast and the gradient scaler)
#   bf16           --bf16 (bfloat16 autocast)
#   torchrun-1     torchrun --nproc-per-node 1: the launcher's environment, cuda:LOCAL_RANK
#   torchrun-N     with N >= 2 visible GPUs only: DistributedDataParallel over nccl, N processes of
#                  64/N sessions (the effective batch of the others)
# and prints for each: training and evaluation sessions/s, NDCG@20 averaged over time, the most
# popular ranking's, wall seconds. It fails (exit 1) when a run fails, when a run's NDCG@20 is not
# above the most popular ranking's (it learned nothing), or a loss is not finite; the differences
# between fp32 and the others are printed, not judged (AMP changes the rounding; CUDA kernels are
# not bitwise deterministic).
set -euo pipefail

PYTHON=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
read -r -a EXTRA <<< "${FLAGS:-}"
OUT=${OUT:-$(mktemp -d -t sessrec-gpu-XXXX)}
HERE=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$HERE/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"

if [ "$DEVICE" = cpu ]; then
    NGPU=1
    echo "gpu_check: DEVICE=cpu: the script's own check, on the CPU"
else
NGPU=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
if [ "$NGPU" -lt 1 ]; then
    echo "gpu_check: no CUDA device visible to torch ($("$PYTHON" -c 'import torch; print(torch.__version__)')): nothing to check" >&2
    exit 2
fi
"$PYTHON" -c 'import torch, sys; p = torch.cuda.get_device_properties(0)
print(f"gpu_check: {torch.cuda.device_count()} x {p.name} ({p.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, bf16 supported: {torch.cuda.is_bf16_supported()}, python {sys.version.split()[0]}")'
fi
echo "gpu_check: runs in $OUT"

run() {  # run NAME LAUNCHER... -- FLAGS...: one sessrec run into $OUT/NAME, its time and output kept
    local name=$1; shift
    local launcher=()
    while [ "$1" != "--" ]; do launcher+=("$1"); shift; done
    shift
    local began=$SECONDS
    if ! "${launcher[@]}" run --device "$DEVICE" --quiet --overwrite-output-dir -o "$OUT/$name" ${EXTRA[@]+"${EXTRA[@]}"} "$@" \
            > "$OUT/$name.log" 2>&1; then
        echo "gpu_check: $name FAILED; its output:" >&2
        tail -n 30 "$OUT/$name.log" >&2
        exit 1
    fi
    echo $((SECONDS - began)) > "$OUT/$name.wall"
}

PY=("$PYTHON" -m sessrec)
TR=("$PYTHON" -m torch.distributed.run --standalone)
run fp32 "${PY[@]}" --
run fp16 "${PY[@]}" -- --fp16
run bf16 "${PY[@]}" -- --bf16
run torchrun-1 "${TR[@]}" --nproc-per-node 1 -m sessrec --
NAMES="fp32 fp16 bf16 torchrun-1"
if [ "$NGPU" -ge 2 ]; then
    if [ $((64 % NGPU)) -eq 0 ]; then
        run "torchrun-$NGPU" "${TR[@]}" --nproc-per-node "$NGPU" -m sessrec -- --per-device-train-batch-size $((64 / NGPU))
        NAMES="$NAMES torchrun-$NGPU"
    else
        echo "gpu_check: $NGPU GPUs do not divide the batch of 64: the nccl run is left out" >&2
    fi
else
    echo "gpu_check: one GPU: DistributedDataParallel over nccl (torchrun-N) needs two or more, not checked"
fi

"$PYTHON" - "$OUT" $NAMES <<'EOF'
import json, math, sys
from pathlib import Path

out, names = Path(sys.argv[1]), sys.argv[2:]
bad = []
print(f"{'run':<12} {'train sess/s':>12} {'eval sess/s':>12} {'NDCG@20':>8} {'pop':>8} {'loss':>7} {'wall s':>7}")
rows = {}
for name in names:
    res = json.loads((out / name / "results.json").read_text())
    w = res["windows"]
    train = sum(x["train_samples_per_second"] for x in w) / len(w)
    evals = sum(x["metrics"]["eval_samples_per_second"] for x in w) / len(w)
    ndcg, pop = res["aot"]["eval_/next-item/ndcg_at_20"], res["pop_aot"]["eval_/next-item/ndcg_at_20"]
    loss = w[-1]["train_loss"]
    rows[name] = ndcg
    wall = (out / f"{name}.wall").read_text().strip()
    print(f"{name:<12} {train:12.0f} {evals:12.0f} {ndcg:8.4f} {pop:8.4f} {loss:7.3f} {wall:>7}")
    if not all(math.isfinite(x["train_loss"]) for x in w):
        bad.append(f"{name}: a training loss is not finite")
    if not ndcg > pop:
        bad.append(f"{name}: NDCG@20 {ndcg:.4f} is not above the most popular ranking's {pop:.4f}")
for name in names[1:]:
    print(f"NDCG@20 {name} - fp32: {rows[name] - rows['fp32']:+.4f}")
for line in bad:
    print(f"gpu_check: FAILED: {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
echo "gpu_check: passed"
