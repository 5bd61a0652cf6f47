#!/usr/bin/env bash
# Replays the nine ways a run could mix models or mislead (issue 16) on a tiny Cruise run, about
# one minute on 2 cores; each section prints what tora answers. Usage: bash benchmarks/run_integrity_probe.sh
set -u
T=${T:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/tora}; W=$(mktemp -d); cd "$W"
Q="--device cpu --no-progress"
P="--steps 20 --diffusion-steps 10 --denoiser-hidden-dim 32 --denoiser-depth 1 --denoiser-time-dim 8 --inverse-steps 20 --optim-checkpoint-every 10"
F="--steps 6 --batch-size 4 --num-pairs 50 --segment-length 8 --optim-checkpoint-every 3"
E="--episodes 1 --sampler-steps 2 $Q"
$T data make --episodes 6 --seed 1 --out d.h5 --no-progress --no-plot >/dev/null
$T data make --episodes 6 --seed 2 --out other.h5 --no-progress --no-plot >/dev/null
$T pretrain --data d.h5 --run run $Q $P >/dev/null
for o in speed energy; do $T finetune --data d.h5 --run run --objective $o $Q $F >/dev/null; done
say() { echo "== $1"; }
say "1. reference changed (pretrain --steps 30), then finetune without --restart"
$T pretrain --data d.h5 --run run $Q $P --steps 30 2>&1 >/dev/null | head -2
$T finetune --data d.h5 --run run --objective speed $Q $F 2>&1 >/dev/null; echo "exit $?"
$T evaluate --run run $E --weights 0.5,0.5 2>&1 >/dev/null | tail -1; echo "exit ${PIPESTATUS[0]}"
for o in speed energy; do $T finetune --data d.h5 --run run --objective $o $Q $F --restart 2>&1 >/dev/null; done
say "2. one flipped byte in objectives/speed/model.safetensors; a truncated reference"
cp -r run run2; python3 - <<'PY'
p='run2/objectives/speed/model.safetensors'; b=bytearray(open(p,'rb').read()); b[-1]^=1; open(p,'wb').write(b)
PY
$T evaluate --run run2 $E --weights 0.5,0.5 2>&1 >/dev/null | tail -1
rm -rf run2; cp -r run run2; python3 -c "p='run2/reference/model.safetensors'; d=open(p,'rb').read(); open(p,'wb').write(d[:1000])"
$T evaluate --run run2 $E --weights 0.5,0.5 2>&1 >/dev/null | tail -1
say "3. pretrain again on other data of the same shape"
sha() { sha256sum run/reference/config.json run/inverse_dynamics/config.json run/pretrain_command.json | sha256sum | cut -c1-12; }
before=$(sha); $T pretrain --data other.h5 --run run $Q $P 2>&1 >/dev/null | tail -1; echo "configs unchanged: $([ "$before" = "$(sha)" ] && echo yes || echo NO)"
say "4. a subset of the models"
$T evaluate --run run --objectives energy --weights 1 $E --out e4 >/dev/null; echo "exit $?; files: $(ls e4 | tr '\n' ' ')"
say "5. reordered models: returns.csv header and steering line"
$T evaluate --run run --objectives energy,speed --sweep 3 $E --out e5 | grep steering; head -1 e5/returns.csv
say "6. 3-objective env, default ref point; wrong-length ref point (both before any rollout)"
$T evaluate --run run --env tora/MO-Hopper-3obj-v0 --ref-point 0,0 $E 2>&1 | tail -1
say "7. empty weights, empty item, repeated objective"
$T evaluate --run run --weights= $E 2>&1 | tail -1
$T evaluate --run run --weights 0.5,,0.5 $E 2>&1 | tail -1
$T evaluate --run run --objectives speed,speed $E 2>&1 | tail -1
say "8. two evaluations into one --out at once"
$T evaluate --run run --weights 1,0 $E --out e8 >/dev/null & $T evaluate --run run --weights 0,1 $E --out e8 >/dev/null; wait
python3 -c "import json; r=json.load(open('e8/results.json')); c=json.load(open('e8/config.json')); print('results weights', r['summary']['weights'], 'config weights', c['options']['weights'])"
say "9. piped into a reader that closes; resume line without progress bars"
$T data inspect d.h5 | head -1; echo "exit ${PIPESTATUS[0]}"
$T finetune --data d.h5 --run run --objective speed $Q $F --steps 9 2>&1 >/dev/null | head -1
rm -rf "$W"
