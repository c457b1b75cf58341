#!/usr/bin/env bash
# The GPU measurements, as one command for a GPU machine (run from the project root):
#
#   source .whl/on-gpu.sh && bash benchmarks/gpu_check.sh          # the full check
#   SIZE=tiny bash benchmarks/gpu_check.sh                           # a dry run on any machine
#
# Writes JSON under $OUT (default benchmarks/gpu/): the device and versions, PPO CartPole-v1 at
# 5e5 steps per seed for 2048 seeds in one run, the seed-scaling curve (steps/s, compile time,
# device peak memory), the default A2C experiment end to end, and TD3 Pendulum with 256 seeds.
# Each step has its own time limit, so one slow step cannot cost the others; a step that fails
# or runs out of time is recorded in $OUT/log.txt and the script goes on.
set -uo pipefail
OUT=${OUT:-benchmarks/gpu}
SIZE=${SIZE:-full}
PY=${PYTHON:-python}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: >"$LOG"

if [ "$SIZE" = tiny ]; then
  PPO_SEEDS=8 PPO_STEPS=4096 CURVE="4 8" CURVE_STEPS=2048 A2C_SEEDS=4 A2C_STEPS=4096
  TD3_SEEDS=2 TD3_STEPS=2000 LIMIT=300 SOLVE=()
else
  PPO_SEEDS=2048 PPO_STEPS=500000 CURVE="64 256 1024 4096 16384" CURVE_STEPS=100000
  A2C_SEEDS=64 A2C_STEPS=500000 TD3_SEEDS=256 TD3_STEPS=20000 LIMIT=110  # 5 x 110 s in all (the curve gets 2): under 10 min
  SOLVE=(--solve --solve-seeds 64)  # make train's experiment end to end (train.py)
fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log the outcome
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.out" 2>&1
  local rc=$?
  echo "$name rc=$rc wall_s=$((SECONDS - t0))" | tee -a "$LOG"
}

$PY -c 'import jax, json, platform; print(json.dumps({"jax": jax.__version__, "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "python": platform.python_version()}))' >"$OUT/device.json"
cat "$OUT/device.json"
# One vmap over every seed on one device: the GPU's way (no seed blocks).
BENCH=("$PY" benchmarks/bench_train.py --seed-block none --devices 1)
step ppo_2048 "$LIMIT" "${BENCH[@]}" --agent ppo --seeds "$PPO_SEEDS" --steps "$PPO_STEPS" \
  --out "$OUT/ppo_2048.json"
step ppo_curve $((LIMIT * 2)) "${BENCH[@]}" --agent ppo --seeds $CURVE --steps "$CURVE_STEPS" \
  --out "$OUT/ppo_curve.json"
step a2c_default "$LIMIT" "${BENCH[@]}" --agent a2c --seeds "$A2C_SEEDS" --steps "$A2C_STEPS" \
  "${SOLVE[@]}" --out "$OUT/a2c_default.json"
step td3_pendulum "$LIMIT" "${BENCH[@]}" --agent td3 --env Pendulum-v1 --seeds "$TD3_SEEDS" \
  --steps "$TD3_STEPS" --out "$OUT/td3_pendulum.json"
echo "done: $OUT" | tee -a "$LOG"
