#!/usr/bin/env bash
# The device checks of issue 4, as one script for a 15-minute accelerator slot:
#   1. the CUDA-only tests (CUDA graphs, bf16, stacked composition on the GPU);
#   2. `tora bench speed` at K = 1, 2, 3 and batch 1 / 501, eager sequential vs stacked vs
#      CUDA-graphed vs bf16, with a whole 501-preference sweep of MO-HalfCheetah;
#   3. the full protocol (501 preferences) of benchmarks/suites/full.toml on one env, cut by a
#      time limit (the suite resumes, so finished cells are kept).
# Writes into $OUT (default /tmp/gpu-check). Wheels for packages the machine lacks are taken
# from .whl/ when present. SMOKE=1 shrinks everything for a dry run on a CPU.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
if [ -d .whl ] && [ "${SMOKE:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 MUJOCO_GL=disable  # no rendering needed
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
ENV_ID=${ENV_ID:-MO-HalfCheetah-v2}
FULL_LIMIT=${FULL_LIMIT:-330}
if [ "${SMOKE:-0}" = 1 ]; then
  SPEED="--repeats 2 --warmup 1 --sampler-steps 2 --batch-sizes 1 8"
  SWEEP="--sweep-preferences 5 --sweep-steps 5"
else
  SPEED="--repeats 20 --warmup 5"
  SWEEP="--sweep-preferences 501"
fi

{ nvidia-smi -L 2>/dev/null; "$PY" -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor())"; nproc; } 2>&1 | tee "$OUT/machine.txt"

if [ "${SKIP_DONE:-0}" != 1 ]; then
echo "== tests" | tee "$OUT/log.txt"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/diffusion/test_compose_accel.py \
  tests/planning/test_batched_sweep.py 2>&1 | tail -4 | tee -a "$OUT/log.txt"

echo "== speed" | tee -a "$OUT/log.txt"
i=0
for mode in "--compose sequential" "--compose stacked" "--compose sequential --compile cuda_graph" \
    "--compose stacked --compile cuda_graph" "--compose stacked --precision bf16 --compile cuda_graph"; do
  i=$((i + 1))
  echo "-- $mode" | tee -a "$OUT/log.txt"
  timeout 120 "$PY" -m tora.cli.main bench speed --device "$DEVICE" $SPEED $mode --out "/tmp/speed$i.json" 2>&1 \
    | tee -a "$OUT/log.txt"
done
fi
echo "-- sweep" | tee -a "$OUT/log.txt"
timeout 150 "$PY" -m tora.cli.main bench speed --device "$DEVICE" $SPEED --models 2 --batch-sizes 501 \
  --compose stacked --compile cuda_graph --sweep $SWEEP --sweep-env "$ENV_ID" --sweep-workers 0 \
  --out /tmp/speed_sweep.json 2>&1 | tee -a "$OUT/log.txt"
"$PY" -c "import json,glob; json.dump({p: json.load(open(p)) for p in sorted(glob.glob('/tmp/speed*.json'))}, open('$OUT/speed.json','w'), indent=1)"

echo "== full protocol on $ENV_ID (limit ${FULL_LIMIT}s)" | tee -a "$OUT/log.txt"
SUITE=${SUITE:-benchmarks/suites/full.toml}
timeout "$FULL_LIMIT" "$PY" -m tora.cli.main bench run "$SUITE" --env "$ENV_ID" --out /tmp/full \
  --no-progress 2>&1 | tail -30 | tee -a "$OUT/log.txt"
"$PY" -m tora.cli.main bench table "$SUITE" --out /tmp/full >/dev/null 2>&1
cp /tmp/full/results.md /tmp/full/results.json "$OUT/" 2>/dev/null
(cd /tmp/full && find . -name eval.json -o -name train.json | tar czf "$OUT/cells.tgz" -T -) 2>/dev/null
echo "== done" | tee -a "$OUT/log.txt"
