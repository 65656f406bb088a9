#!/usr/bin/env bash
# Prints the processor, its SIMD extensions and its sgemm peak (bench/sgemm_peak.py:
# OpenBLAS, 1024^3, 2 threads), then runs ofa bench and the PyTorch reference (1 and 2
# threads) on the same machine,
# alternating (for the reference config also ofa with gorgonia's stock ops, "-stock": the
# starting point before the fused ops), and prints the medians and the ratios against
# PyTorch's faster setting. Needs Debian's python3-torch (and libopenblas-dev for the
# OpenBLAS build of ofa).
#
# Then ofa's own inference against onnxruntime on the same model (the reference config), at
# batch 1 and batch 256: bench/ortbench times the evaluator `ofa bench` times and the model
# exported to ONNX in onnxruntime (1 and 2 intra-op threads), alternating in one process,
# with the ratios against onnxruntime's faster setting. Needs cgo and the onnxruntime library
# (scripts/install-onnx-test-deps.sh, or $ONNXRUNTIME_LIB); skipped with a note if
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

echo "processor: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs; SIMD: $(grep -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
# the machine's peak: OpenBLAS sgemm 1024^3 on 2 threads, measured now (bench/sgemm_peak.py)
$PY bench/sgemm_peak.py --threads 2 > bench/out/sgemm-peak.json
echo "sgemm peak (OpenBLAS, 1024^3, 2 threads): $($PY -c 'import json; print("%.1f" % json.load(open("bench/out/sgemm-peak.json"))["gflops"])') GFLOP/s"

if [ "$PARTS" != onnxruntime ]; then
go build -o bench/out/ofa-openblas -tags openblas ./cmd/ofa
CGO_ENABLED=0 go build -o bench/out/ofa-purego ./cmd/ofa
# name | ofa flags | pytorch flags
CONFIGS=(
  "reference (largest)||--depth 4 --heads 4 --mlp 256"
  "smallest subnet|--subnet smallest|--depth 2 --heads 1 --mlp 64"
  "RGB 3x32x32 patch 4|--input 3x32x32 --patch 4|--input 3x32x32 --patch 4"
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
peak = json.load(open("bench/out/sgemm-peak.json"))["gflops"]
names = list(dict.fromkeys(r["name"] for r in rows))
for impl in ("ofa-openblas", "ofa-purego"):
    r = next(r for r in rows if r["impl"] == impl)
    print(f"{impl}: matrix kernel {r['blas']}, allocations per training step {r['allocs_per_step']:.0f} ({r['bytes_per_step']/1e3:.0f} KB)")
print("ratios are against the faster PyTorch thread setting (and the smaller PyTorch peak memory);")
print("GFLOP/s is training's: 6 x the model's forward MACs per example x samples/s (forward 2, backward 4 flops per MAC);")
print(f"% peak is that against the sgemm peak above ({peak:.1f} GFLOP/s)")
print(f"{'config':22} {'impl':18} {'train/s':>9} {'infer/s':>9} {'peak MB':>8} {'train x':>8} {'infer x':>8} {'memory x':>8} {'GFLOP/s':>8} {'% peak':>7}")
for n in names:
    med = {}
    macs = next(r["macs"] for r in rows if r["name"] == n and "macs" in r)
    for impl in ("pytorch-1t", "pytorch-2t", "ofa-openblas-stock", "ofa-purego-stock", "ofa-openblas", "ofa-purego"):
        rs = [r for r in rows if r["name"] == n and r["impl"] == impl]
        if rs:
            med[impl] = {k: statistics.median(r[k] for r in rs) for k in ("train_samples_per_sec", "infer_samples_per_sec", "peak_rss_mb")}
    # the baseline is PyTorch at its faster thread count for each measure
    bt = max(med[i]["train_samples_per_sec"] for i in ("pytorch-1t", "pytorch-2t"))
    bi = max(med[i]["infer_samples_per_sec"] for i in ("pytorch-1t", "pytorch-2t"))
    bm = min(med[i]["peak_rss_mb"] for i in ("pytorch-1t", "pytorch-2t"))
    for impl, m in med.items():
        gf = 6 * macs * m['train_samples_per_sec'] / 1e9
        print(f"{n:22} {impl:18} {m['train_samples_per_sec']:9.0f} {m['infer_samples_per_sec']:9.0f} {m['peak_rss_mb']:8.0f} "
              f"{m['train_samples_per_sec']/bt:8.2f} {m['infer_samples_per_sec']/bi:8.2f} {m['peak_rss_mb']/bm:8.2f} {gf:8.1f} {100*gf/peak:6.0f}%")
PYEOF
fi

[ "$PARTS" = pytorch ] && exit 0
# inference: ofa vs onnxruntime on the same model. bench/ortbench runs, in one process and
# alternating run by run, the evaluator `ofa bench` times and the same model exported to
# ONNX in onnxruntime (1 and 2 intra-op threads); built once per BLAS build of ofa.
if ! go build -o bench/out/ortbench-purego -tags onnxruntime ./bench/ortbench 2>bench/out/ortbench-build.log ||
  ! go build -o bench/out/ortbench-openblas -tags 'onnxruntime openblas' ./bench/ortbench 2>>bench/out/ortbench-build.log ||
  ! bench/out/ortbench-purego --batch 1 --steps 1 --repeats 1 >/dev/null 2>bench/out/ortbench-probe.log; then
  echo "onnxruntime comparison skipped: $(cat bench/out/ortbench-build.log bench/out/ortbench-probe.log | tail -1)"
  echo "(needs cgo and the onnxruntime library: bash scripts/install-onnx-test-deps.sh, or set ONNXRUNTIME_LIB)"
  exit 0
fi
# batch | ortbench flags (a run is --steps passes)
BATCHES=(
  "1|--batch 1 --steps 200 --repeats 5"
  "256|--batch 256 --steps 4 --repeats 5"
)
: > bench/out/ort-results.jsonl
for ((r = 1; r <= ROUNDS; r++)); do
  for c in "${BATCHES[@]}"; do
    IFS='|' read -r b flags <<< "$c"
    for build in openblas purego; do
      bench/out/ortbench-$build $flags --threads 1,2 |
        sed "s/^{/{\"batch\":$b,\"build\":\"$build\",\"round\":$r,/" >> bench/out/ort-results.jsonl
    done
  done
done
$PY - <<'PYEOF'
import json, statistics
rows = [json.loads(l) for l in open("bench/out/ort-results.jsonl")]
ver = next(r["runtime"] for r in rows if r["impl"].startswith("onnxruntime"))
print(f"inference, reference config: ofa's evaluator (as ofa bench) vs {ver} on the same exported model, alternating in one process")
print("samples/s: medians over rounds of medians of 5 runs; 'x ort': median over rounds of ofa / the faster onnxruntime setting in the same process")
print(f"{'batch':>5} {'impl':16} {'infer/s':>9} {'x ort':>7}")
for b in sorted(set(r["batch"] for r in rows)):
    runs = {}  # (round, build) -> impl -> samples/s
    for r in rows:
        if r["batch"] == b:
            runs.setdefault((r["round"], r["build"]), {})[r["impl"]] = r["infer_samples_per_sec"]
    for impl in ("onnxruntime-1t", "onnxruntime-2t"):
        v = statistics.median(x[impl] for x in runs.values())
        print(f"{b:5} {impl:16} {v:9.0f} {'':>7}")
    for build in ("openblas", "purego"):
        mine = [x for (rd, bd), x in runs.items() if bd == build]
        v = statistics.median(x["ofa"] for x in mine)
        ratio = statistics.median(x["ofa"] / max(x["onnxruntime-1t"], x["onnxruntime-2t"]) for x in mine)
        print(f"{b:5} {'ofa-' + build:16} {v:9.0f} {ratio:7.2f}")
PYEOF
