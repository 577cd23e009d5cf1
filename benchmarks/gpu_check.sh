#!/usr/bin/env bash
# GPU check, one prepared script (issue 22 item 5). From the repository root:
#
#   bash benchmarks/gpu_check.sh [--cpu] [--out docs/gpu_check_CARD.md]
#       benchmarks/gpu_check.py: objective terms, the SMARL solver and closures and one RLVR
#       learner update on CUDA against the CPU, with timings. Needs torch only (plus numpy,
#       gymnasium and pettingzoo, taken from benchmarks/vendor/ when the machine lacks them):
#       no Ray, no network, no `pip install` of regrl (the package layout is linked in a
#       temporary folder). --cpu is a dry run on the CPU (checks the script, not CUDA).
#   bash benchmarks/gpu_check.sh --vendor [DIR]
#       on a machine with this checkout's venv: copy the pure-Python packages the check needs
#       into DIR (default benchmarks/vendor/, git-ignored) to carry to the GPU machine.
#   bash benchmarks/gpu_check.sh --ray [--cpu]
#       on a GPU machine with Ray and the venv (`make setup`): one learner update per domain
#       through `regrl train` (RLlib, offline, RLVR, RIFT) and the 1024^2 solver benchmark.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -x "$ROOT/.venv/bin/python" ]; then PY=${PYTHON:-$ROOT/.venv/bin/python}; else PY=${PYTHON:-python3}; fi
VENDOR_PACKAGES="gymnasium pettingzoo cloudpickle farama_notifications typing_extensions.py yaml"

if [ "${1:-}" = --vendor ]; then
  dest=${2:-$ROOT/benchmarks/vendor}
  site=$("$PY" -c "import gymnasium, os; print(os.path.dirname(os.path.dirname(gymnasium.__file__)))")
  mkdir -p "$dest"
  for pkg in $VENDOR_PACKAGES; do cp -r "$site/$pkg" "$dest/" || exit 1; done
  echo "vendored into $dest: $VENDOR_PACKAGES ($(du -sh "$dest" | cut -f1))"
  exit 0
fi

if [ "${1:-}" != --ray ]; then
  layout=$(mktemp -d)   # the installed layout: regrl/{agents,envs,trainers} as links
  mkdir "$layout/regrl"
  cp "$ROOT/regrl/__init__.py" "$layout/regrl/"
  for d in agents envs trainers; do ln -s "$ROOT/$d" "$layout/regrl/$d"; done
  device=cuda
  if [ "${1:-}" = --cpu ]; then device=cpu; shift; fi
  PYTHONPATH="$layout:${REGRL_VENDOR:-$ROOT/benchmarks/vendor}${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" "$ROOT/benchmarks/gpu_check.py" --device "$device" "$@"
  status=$?
  rm -rf "$layout"
  exit $status
fi
shift

REGRL="$PY -m regrl.trainers.cli"
RUNS=$(mktemp -d)
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 PYTHONUNBUFFERED=1
status=0

step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$EPOCHREALTIME
  if timeout "$limit" "$@" > "$RUNS/$name.log" 2>&1; then result=ok; else result="FAILED (rc $?)"; status=1; fi
  printf '%-28s %-16s %6s s\n' "$name" "$result" \
    "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')"
  [ "$result" = ok ] || tail -5 "$RUNS/$name.log"
}

GPUS=1   # resources.num_gpus_per_learner of every kind: 0 = CPU, 1 = CUDA
if [ "${1:-}" = --cpu ]; then
  GPUS=0
else
  $PY - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PY
fi

GPU_LEARNER=(--set resources.num_learners=1 --set resources.num_gpus_per_learner=$GPUS
             --set "runs_root=$RUNS" --quiet)
step solver_1024 120 $PY benchmarks/gpu_solver.py --n 1024
step cartpole_ppo_1_iter 150 $REGRL train configs/cartpole_ppo.yaml --set training.iterations=1 "${GPU_LEARNER[@]}"
step smarl_1_iter 150 $REGRL train configs/smarl_demo.yaml --set training.iterations=1 "${GPU_LEARNER[@]}"
step digits_data 60 $PY benchmarks/noisy_labels.py --write-data "$RUNS/digits.npz"
step offline_elr_1_epoch 90 $REGRL train configs/offline_digits.yaml --set training.epochs=1 \
     --set resources.num_gpus_per_learner=$GPUS --set "data.path=$RUNS/digits.npz" --set "runs_root=$RUNS" --quiet
step rlvr_tiny_1_step 150 $REGRL train configs/rlvr_tiny_grpo.yaml --set model.path=tiny \
     --set training.steps=1 --set eval.every=0 --set resources.num_gpus_per_learner=$GPUS \
     --set "runs_root=$RUNS" --quiet
step traffic_demos 120 $REGRL traffic demos --episodes 2 --horizon 60 --out "$RUNS/demos.npz"
step rift_pretrain_1_epoch 90 $REGRL traffic pretrain configs/rift_pretrain.yaml \
     --set "demos=$RUNS/demos.npz" --set epochs=1 --set num_modes=4 --set "export=$RUNS/planner.pt" \
     --set "runs_root=$RUNS"
step rift_1_iter 150 $REGRL train configs/rift_ci.yaml --set "env.kwargs.planner=$RUNS/planner.pt" \
     --set "eval.kwargs.demos=$RUNS/demos.npz" "${GPU_LEARNER[@]}"
grep -h "solver" "$RUNS/solver_1024.log"
echo "logs: $RUNS"
exit $status
