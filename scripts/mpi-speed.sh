#!/usr/bin/env bash
# Speed of data-parallel training on one machine (docs/CLUSTER.md, "Measured"): the
# reference supernet (configs/fashion-mnist.yaml's model and sampler, every step training
# the largest, the smallest and one random subnet) for STEPS steps on the embedded subset,
# 1 process x 2 threads (2 shards) against 2 MPI ranks x 1 thread (1 shard each); the
# same global batch and shards, so both train the same weights. Prints training samples/s,
# their ratio, and the gradient exchange's time per step and share of a step (from the
# ranks' metrics). Hold a timing lock when the machine is shared:
#   flock /tmp/ofa-timing.lock scripts/mpi-speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-120}
REPEATS=${REPEATS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -tags mpi -o "$work/ofa" ./cmd/ofa
cat > "$work/speed.yaml" <<YAML
data:
  embedded: true
  test_limit: 500
  augment: {crop_pad: 2, hflip: true}
model: {patch_size: 7, dim: 64, head_dim: 16, heads: 4, mlp: 256, depth: 4,
  head_choices: [1, 2, 3, 4], mlp_choices: [64, 128, 192, 256], depth_choices: [2, 3, 4], init: pytorch}
sampler: {kind: sandwich, random: 1, warm_fraction: 0, seed: 1}
train: {steps: $STEPS, batch_size: 64, warmup_steps: 10, eval_every: 100000, eval_batch: 500, shards: 2}
YAML
# Open MPI refuses root without these; they are set for this script's jobs only
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rate() { sed -n 's/.*steps in [0-9.]*s (\([0-9.]*\) samples\/s.*/\1/p' "$1"; }
for i in $(seq "$REPEATS"); do
  # both write to the same --out (the stored configuration names it)
  rm -rf "$work/run"
  GOMAXPROCS=2 "$work/ofa" train --config "$work/speed.yaml" --out "$work/run" >"$work/one$i.log" 2>&1
  mv "$work/run" "$work/one$i"
  mpirun --oversubscribe -np 2 -x GOMAXPROCS=1 "$work/ofa" train --config "$work/speed.yaml" --out "$work/run" >"$work/two$i.log" 2>&1
  mv "$work/run" "$work/two$i"
  one=$(rate "$work/one$i.log"); two=$(rate "$work/two$i.log")
  cmp -s "$work/one$i/supernet.safetensors" "$work/two$i/supernet.safetensors" && same=yes || same=no
  # the gradient exchange: comm_seconds / seconds over the step records (every 10th step)
  comm=$(python3 -c '
import json, sys
s = c = n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") != "step": continue
    s += r["seconds"]; c += r.get("comm_seconds", 0); n += 1
print(f"{1000*c/n:.1f} ms of {1000*s/n:.1f} ms per step ({100*c/s:.1f}%)")' "$work/two$i/metrics.jsonl")
  echo "run $i: 1 process x 2 threads $one samples/s; 2 ranks x 1 thread $two samples/s; ratio $(python3 -c "print(f'{$two/$one:.3f}')"); identical supernet: $same; gradient exchange $comm"
done
