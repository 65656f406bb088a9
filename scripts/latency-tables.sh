#!/usr/bin/env bash
# Reproduces the latency-table accuracy table of docs/PERFORMANCE.md: for the demo supernet
# and one of the full Fashion-MNIST architecture, `ofa latency-table` in each runtime, batch
# and statistic below (REPEATS samples per shape at batch 1, a tenth of that at batch 64),
# and for each the error of predicted against measured whole-model latency on held-out
# random subnets (with the grid predictor, the default, and with the fitted line) and how
# well the times follow MACs. Prints the table in Markdown.
#
#   bash scripts/latency-tables.sh OUTDIR
#
# Supernets: $DEMO_SN and $FMNIST_SN if set (safetensors files), else trained into OUTDIR:
# the demo with configs/demo.yaml (a few minutes), the Fashion-MNIST architecture with one
# training step of configs/fashion-mnist.yaml (timing needs the shapes, not trained
# weights; needs the Debian package dataset-fashion-mnist). The onnxruntime rows need cgo
# and the onnxruntime library (bash scripts/install-onnx-test-deps.sh, or
# $ONNXRUNTIME_LIB). $BASE_COMMIT, if set, also times both supernets with
# `ofa latency-table` as it was at that commit, with its defaults (the "before" rows).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?output directory}
REPEATS=${REPEATS:-500}
CHECKS=${CHECKS:-16}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT"
go build -tags onnxruntime -o "$OUT/ofa" ./cmd/ofa
OFA="$OUT/ofa"

DEMO=${DEMO_SN:-}
if [ -z "$DEMO" ]; then
  DEMO="$OUT/demo-sn/supernet.safetensors"
  [ -f "$DEMO" ] || $OFA train --config configs/demo.yaml --out "$OUT/demo-sn" >/dev/null
fi
FMNIST=${FMNIST_SN:-}
if [ -z "$FMNIST" ]; then
  FMNIST="$OUT/fmnist-sn/supernet.safetensors"
  [ -f "$FMNIST" ] || $OFA train --config configs/fashion-mnist.yaml --steps 1 --out "$OUT/fmnist-sn" >/dev/null
fi

ROWS=()
if [ -n "${BASE_COMMIT:-}" ]; then # the tool before this change, its defaults (batch 1, median of 30)
  rm -rf "$OUT/base-src" && mkdir -p "$OUT/base-src"
  git archive "$BASE_COMMIT" | tar -x -C "$OUT/base-src"
  (cd "$OUT/base-src" && go build -o ../ofa-base ./cmd/ofa)
  for sn in demo fmnist; do
    path=$DEMO
    [ $sn = fmnist ] && path=$FMNIST
    "$OUT/ofa-base" latency-table --supernet "$path" --checks "$CHECKS" --out "$OUT/$sn-base.json" >"$OUT/$sn-base.log" 2>&1 ||
      { tail -3 "$OUT/$sn-base.log" >&2; exit 1; }
    ROWS+=("$sn-base")
  done
fi

# name | environment | flags (batch-1 samples are short: many of them; batch 64 fewer)
B1="--batch 1 --repeats $REPEATS"
B64="--batch 64 --repeats $((REPEATS / 10))"
SETTINGS=(
  "ofa-b1-median||--runtime ofa $B1 --statistic median"
  "ofa-b1-min||--runtime ofa $B1 --statistic min"
  "ofa1-b1-cpu|GOMAXPROCS=1|--runtime ofa $B1 --statistic median --clock cpu"
  "ofa-b64-median||--runtime ofa $B64 --statistic median"
  "ofa1-b64-cpu|GOMAXPROCS=1|--runtime ofa $B64 --statistic median --clock cpu"
  "ort2-b1-median||--runtime onnxruntime --threads 2 $B1 --statistic median"
  "ort2-b1-min||--runtime onnxruntime --threads 2 $B1 --statistic min"
  "ort1-b1-median||--runtime onnxruntime --threads 1 $B1 --statistic median"
  "ort1-b1-min||--runtime onnxruntime --threads 1 $B1 --statistic min"
  "ort1-b1-cpu||--runtime onnxruntime --threads 1 $B1 --statistic median --clock cpu"
  "ort2-b64-median||--runtime onnxruntime --threads 2 $B64 --statistic median"
  "ort1-b64-cpu||--runtime onnxruntime --threads 1 $B64 --statistic median --clock cpu"
)
for sn in demo fmnist; do
  path=$DEMO
  [ $sn = fmnist ] && path=$FMNIST
  for s in "${SETTINGS[@]}"; do
    IFS='|' read -r name envs flags <<< "$s"
    env $envs $OFA latency-table --supernet "$path" $flags --checks "$CHECKS" --out "$OUT/$sn-$name.json" >"$OUT/$sn-$name.log" 2>&1 ||
      { tail -3 "$OUT/$sn-$name.log" >&2; exit 1; }
    ROWS+=("$sn-$name")
  done
done

$PY - "$OUT" "${ROWS[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]

def concordance(x, y):  # as extract.concordance: pairs of different x ordered alike in y, ties half
    pairs = agree = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if x[i] == x[j]:
                continue
            pairs += 1
            dy = y[j] - y[i]
            agree += 0.5 if dy == 0 else float((x[j] > x[i]) == (dy > 0))
    return agree / pairs if pairs else 1.0

print("| supernet | runtime | threads | batch | statistic | clock | mean abs error (grid) | max abs error (grid) | mean abs error (fit) | blocks in MACs order | checks predicted in measured order (grid) | checks measured in MACs order |")
print("| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
def block_macs(t, h, m):  # as arch.BlockCost, per example
    d, tok, hd = t["dim"], t["tokens"], h * t["head_dim"]
    return tok * d * 3 * hd + 2 * tok * tok * hd + tok * hd * d + 2 * tok * d * m

for name in names:
    t = json.load(open(f"{out}/{name}.json"))
    sn = name.split("-")[0]
    # tables from before MACs were recorded: the blocks' MACs from the shapes (the stem's
    # are the same for every model, so they do not change an order)
    for b in t["blocks"]:
        b.setdefault("macs", block_macs(t, b["heads"], b["mlp"]))
    for c in t["checks"]:
        c.setdefault("macs", sum(block_macs(t, int(l.split(":h")[1].split("m")[0]), int(l.split("m")[1])) for l in c["subnet"].split(",")))
    if "block_order" not in t:
        t["block_order"] = concordance([b["macs"] for b in t["blocks"]], [b["ms"] for b in t["blocks"]])
    rt = t.get("runtime") or "ofa"
    if name.endswith("-base"):
        rt = "ofa (before this change)"
    elif rt == "onnxruntime":
        rt = f"onnxruntime {t['runtime_version']}"
    cs = t["checks"]
    macs = [c["macs"] for c in cs]
    meas = [c["measured_ms"] for c in cs]
    macs_order = f"{100 * concordance(macs, meas):.0f}%"
    block_order = f"{100 * t['block_order']:.0f}%"
    check_order = f"{100 * concordance(meas, [c['predicted_ms'] for c in cs]):.0f}%"
    worst = max(abs(c["error_pct"]) for c in cs)
    fit = f"{t['fit']['mean_abs_error_pct']:.1f}%" if "fit" in t else "-"
    print(f"| {sn} | {rt} | {t.get('threads', t['cpus'])} | {t['batch']} | {t.get('statistic', 'median')} | {t.get('clock', 'wall')} | "
          f"{t['mean_abs_error_pct']:.1f}% | {worst:.1f}% | {fit} | {block_order} | {check_order} | {macs_order} |")
PY
