#!/usr/bin/env bash
# Reproduces the extraction table of docs/RESULTS.md: for 2x, 4x and 8x fewer parameters,
# test accuracy before any fine-tuning of importance-ordered extraction, plain leading
# slices and random units, and a comparison of importance criteria at 4x.
#   bash scripts/fmnist-extraction-table.sh runs/fmnist/supernet.safetensors OUTDIR
set -euo pipefail
SN=${1:?supernet}
OUT=${2:?output directory}
OFA=${OFA:-go run ./cmd/ofa}
mkdir -p "$OUT"
for b in 2x 4x 8x; do
  $OFA extract --supernet "$SN" --target "$b" --baselines --out "$OUT/$b" --force --json | tail -1 > "$OUT/$b.json"
done
for c in "taylor taylor" "attn_out activation" "qkv activation" "weight weight"; do
  set -- $c
  OFA_EXTRACT_CRITERIA_HEADS=$1 OFA_EXTRACT_CRITERIA_NEURONS=$2 \
    $OFA extract --supernet "$SN" --target 4x --out "$OUT/criteria-$1-$2" --force --json | tail -1 > "$OUT/criteria-$1-$2.json"
done
python3 - "$OUT" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
print("| budget | unique params (x fewer) | layers (heads/MLP) | importance order | plain slices | random units |")
print("| --- | --- | --- | ---: | ---: | ---: |")
for b in ("2x", "4x", "8x"):
    r = json.load(open(f"{out}/{b}.json"))
    m = r["manifest"]
    layers = ", ".join(f'{l["heads"]}/{l["mlp"]}' for l in r["layers"])
    print(f'| {b} | {m["achieved"]["params"]} ({m["params_reduction"]:.2f}x) | {layers} | {100*r["test_accuracy"]:.2f}% | '
          f'{100*r["baselines"]["none"]:.2f}% | {100*r["baselines"]["random"]:.2f}% |')
print()
print("| criteria (heads / neurons), 4x | test accuracy before fine-tuning | search's validation accuracy |")
print("| --- | ---: | ---: |")
for f in sorted(glob.glob(f"{out}/criteria-*.json")):
    r = json.load(open(f))
    c = r["manifest"]["criteria"]
    print(f'| {c["heads"]} / {c["neurons"]} | {100*r["test_accuracy"]:.2f}% | {100*r["manifest"].get("val_accuracy", 0):.2f}% |')
PY
