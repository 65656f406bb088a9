#!/usr/bin/env bash
# Runs ofa bench and the PyTorch reference (1 and 2 threads) on the same machine,
# alternating (for the reference config also ofa with gorgonia's stock ops, "-stock": the
# starting point before the fused ops), and prints the medians and the ratios against
# PyTorch's faster setting. Needs Debian's python3-torch (and libopenblas-dev for the
# OpenBLAS build of ofa).
#
# Then ofa's own inference against onnxruntime on the same exported model (the reference
# config), at batch 1 and batch 256: `ofa bench` next to bench/ortbench (the model exported
# to ONNX and run in onnxruntime with 1 and 2 intra-op threads), with the ratios against
# onnxruntime's faster setting. Needs cgo and the onnxruntime library
# (scripts/install-onnx-test-deps.sh, or $OFA_ONNXRUNTIME_LIB); skipped with a note if
# either is missing.
#
#   bash bench/compare.sh [ROUNDS] [PARTS]
#
# PARTS: all (default), pytorch (the first comparison only) or onnxruntime (the second).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
PARTS=${2:-all}
case "$PARTS" in all | pytorch | onnxruntime) ;; *) echo "PARTS: got $PARTS, want all, pytorch or onnxruntime" >&2; exit 2 ;; esac
PY=${PYTHON:-/usr/bin/python3}
mkdir -p bench/out
go build -o bench/out/ofa-openblas -tags openblas ./cmd/ofa
CGO_ENABLED=0 go build -o bench/out/ofa-purego ./cmd/ofa

if [ "$PARTS" != onnxruntime ]; then
# name | ofa flags | pytorch flags
CONFIGS=(
  "reference (largest)||--depth 4 --heads 4 --mlp 256"
  "smallest subnet|--subnet smallest|--depth 2 --heads 1 --mlp 64"
)
: > bench/out/results.jsonl
for ((r = 1; r <= ROUNDS; r++)); do
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name oflags pflags <<< "$c"
    for build in openblas purego; do
      bench/out/ofa-$build bench --json $oflags 2>/dev/null | tail -1 |
        sed "s/^{/{\"name\":\"$name\",\"impl\":\"ofa-$build\",\"round\":$r,/" >> bench/out/results.jsonl
    done
    if [ -z "$oflags" ]; then # before: the same tool with gorgonia's stock ops (reference config only; slow)
      for build in openblas purego; do
        bench/out/ofa-$build bench --json --ops composed --steps 5 --repeats 3 2>/dev/null | tail -1 |
          sed "s/^{/{\"name\":\"$name\",\"impl\":\"ofa-$build-stock\",\"round\":$r,/" >> bench/out/results.jsonl
      done
    fi
    for th in 1 2; do
      $PY bench/pytorch_vit.py --threads $th $pflags |
        sed "s/^{/{\"name\":\"$name\",\"impl\":\"pytorch-${th}t\",\"round\":$r,/" >> bench/out/results.jsonl
    done
  done
done
$PY - <<'PYEOF'
import json, statistics
rows = [json.loads(l) for l in open("bench/out/results.jsonl")]
names = list(dict.fromkeys(r["name"] for r in rows))
print("ratios are against the faster PyTorch thread setting (and the smaller PyTorch peak memory)")
print(f"{'config':22} {'impl':14} {'train/s':>9} {'infer/s':>9} {'peak MB':>8} {'train x':>8} {'infer x':>8} {'memory x':>8}")
for n in names:
    med = {}
    for impl in ("pytorch-1t", "pytorch-2t", "ofa-openblas-stock", "ofa-purego-stock", "ofa-openblas", "ofa-purego"):
        rs = [r for r in rows if r["name"] == n and r["impl"] == impl]
        if rs:
            med[impl] = {k: statistics.median(r[k] for r in rs) for k in ("train_samples_per_sec", "infer_samples_per_sec", "peak_rss_mb")}
    # the baseline is PyTorch at its faster thread count for each measure
    bt = max(med[i]["train_samples_per_sec"] for i in ("pytorch-1t", "pytorch-2t"))
    bi = max(med[i]["infer_samples_per_sec"] for i in ("pytorch-1t", "pytorch-2t"))
    bm = min(med[i]["peak_rss_mb"] for i in ("pytorch-1t", "pytorch-2t"))
    for impl, m in med.items():
        print(f"{n:22} {impl:14} {m['train_samples_per_sec']:9.0f} {m['infer_samples_per_sec']:9.0f} {m['peak_rss_mb']:8.0f} "
              f"{m['train_samples_per_sec']/bt:8.2f} {m['infer_samples_per_sec']/bi:8.2f} {m['peak_rss_mb']/bm:8.2f}")
PYEOF
fi

[ "$PARTS" = pytorch ] && exit 0
# inference: ofa vs onnxruntime on the same model (bench/ortbench exports what ofa bench runs)
if ! go build -o bench/out/ortbench -tags onnxruntime ./bench/ortbench 2>bench/out/ortbench-build.log ||
  ! bench/out/ortbench --batch 1 --steps 1 --repeats 1 >/dev/null 2>bench/out/ortbench-probe.log; then
  echo "onnxruntime comparison skipped: $(cat bench/out/ortbench-build.log bench/out/ortbench-probe.log | tail -1)"
  echo "(needs cgo and the onnxruntime library: bash scripts/install-onnx-test-deps.sh, or set OFA_ONNXRUNTIME_LIB)"
  exit 0
fi
# batch | ofa bench flags (its training part is ignored here; a small --batch keeps it short,
# and it must be a multiple of train.shards)
BATCHES=(
  "1|--batch 2 --infer-batch 1 --steps 400 --repeats 5"
  "256|--batch 8 --infer-batch 256 --steps 10 --repeats 5"
)
: > bench/out/ort-results.jsonl
for ((r = 1; r <= ROUNDS; r++)); do
  for c in "${BATCHES[@]}"; do
    IFS='|' read -r b oflags <<< "$c"
    steps=$(sed 's/.*--steps \([0-9]*\).*/\1/' <<< "$oflags")
    for build in openblas purego; do
      bench/out/ofa-$build bench --json $oflags 2>/dev/null | tail -1 |
        sed "s/^{/{\"batch\":$b,\"impl\":\"ofa-$build\",\"round\":$r,/" >> bench/out/ort-results.jsonl
    done
    for th in 1 2; do
      bench/out/ortbench --batch "$b" --steps "$steps" --repeats 5 --threads $th |
        sed "s/^{/{\"batch\":$b,\"impl\":\"onnxruntime-${th}t\",\"round\":$r,/" >> bench/out/ort-results.jsonl
    done
  done
done
$PY - <<'PYEOF'
import json, statistics
rows = [json.loads(l) for l in open("bench/out/ort-results.jsonl")]
for r in rows:
    if "error" in r:
        raise SystemExit(f"batch {r['batch']}, {r['impl']}: {r['error']}")
ver = next(r["runtime"] for r in rows if r["impl"].startswith("onnxruntime"))
print(f"inference, reference config, ofa bench vs {ver} on the same exported model; "
      "ratios are against onnxruntime's faster thread setting (medians over rounds of medians of 5 runs)")
print(f"{'batch':>5} {'impl':16} {'infer/s':>9} {'x ort':>7}")
for b in sorted(set(r["batch"] for r in rows)):
    med = {}
    for impl in ("onnxruntime-1t", "onnxruntime-2t", "ofa-openblas", "ofa-purego"):
        rs = [r["infer_samples_per_sec"] for r in rows if r["batch"] == b and r["impl"] == impl]
        if rs:
            med[impl] = statistics.median(rs)
    base = max(med["onnxruntime-1t"], med["onnxruntime-2t"])
    for impl, v in med.items():
        print(f"{b:5} {impl:16} {v:9.0f} {v/base:7.2f}")
PYEOF
