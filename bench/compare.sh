#!/usr/bin/env bash
# Runs ofa bench and the PyTorch reference (1 and 2 threads) on the same machine,
# alternating (for the reference config also ofa with gorgonia's stock ops, "-stock": the
# starting point before the fused ops), and prints the medians and the ratios against
# PyTorch's faster setting. Needs Debian's python3-torch (and libopenblas-dev for the
# OpenBLAS build of ofa).
#
#   bash bench/compare.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p bench/out
go build -o bench/out/ofa-openblas -tags openblas ./cmd/ofa
CGO_ENABLED=0 go build -o bench/out/ofa-purego ./cmd/ofa

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
