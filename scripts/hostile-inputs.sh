#!/usr/bin/env bash
# Drives the ofa binary with hostile inputs (special files as inputs and outputs, corrupted
# checkpoints and resume files, bad configuration values, bad extraction arguments) and
# counts the outcomes: a clean error (non-zero exit, one "ofa:" line, no panic), a panic,
# a hang (over the per-case timeout) or an unexpected success; it also reports the peak
# memory of all cases. Usage: scripts/hostile-inputs.sh [work-dir]   (needs mkfifo, GNU time)
set -u
cd "$(dirname "$0")/.."
W=${1:-$(mktemp -d)}
mkdir -p "$W"
BIN=$W/ofa
CGO_ENABLED=0 go build -o "$BIN" ./cmd/ofa || exit 1
T=${OFA_CASE_TIMEOUT:-60}

cat > "$W/tiny.yaml" <<'YAML'
data: {embedded: true, train_limit: 600, test_limit: 100, val_size: 88}
model: {dim: 32, head_dim: 8, heads: 2, mlp: 64, depth: 2, head_choices: [1, 2], mlp_choices: [32, 64], depth_choices: [1, 2]}
train: {steps: 12, batch_size: 32, warmup_steps: 2, eval_batch: 50}
YAML
"$BIN" train --config "$W/tiny.yaml" --out "$W/S" >/dev/null 2>&1 || { echo "cannot train the tiny supernet"; exit 1; }
S=$W/S/supernet.safetensors

# special files and corrupted copies
mkfifo "$W/fifo" "$W/fifo.png" "$W/fifo.yaml"
mkdir -p "$W/adir"
head -c 100 "$S" > "$W/trunc.safetensors"
head -c 4096 /dev/urandom > "$W/random.safetensors"
: > "$W/empty.safetensors"
cp "$S" "$W/nan.safetensors"; printf '\x00\x00\xc0\x7f' | dd of="$W/nan.safetensors" bs=1 seek=$(( $(stat -c %s "$S") - 4 )) conv=notrunc 2>/dev/null
printf 'RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00' > "$W/empty.wav"
head -c 2000 /dev/urandom > "$W/random.png"
: > "$W/zero.png"
printf 'train:\n  steps: -5\n' > "$W/neg.yaml"
printf "data:\n  embedded: 'yes please'\n" > "$W/yes.yaml"
printf "train:\n  lr: '1e-3'\n" > "$W/lrstr.yaml"
printf 'train:\n  steps: 1e99\n' > "$W/huge.yaml"
printf 'extract:\n  floors:\n    min_heads: 100\n' > "$W/floors.yaml"
printf '{"batch":1,"stem_ms":0,"blocks":[{"heads":1,"mlp":32,"ms":-5}]}' > "$W/lat-neg.json"
printf '{"batch":1,"stem_ms":-1,"blocks":[{"heads":1,"mlp":32,"ms":1}]}' > "$W/lat-stem.json"
head -c 300 /dev/urandom > "$W/lat-random.json"

n=0 clean=0 panics=0 hangs=0 ok=0 peak=0
declare -a odd
case_() { # expect: fail or ok; then the ofa arguments
	local expect=$1; shift
	n=$((n + 1))
	local out=$W/case$n
	timeout -s KILL "$T" /usr/bin/time -f %M -o "$out.mem" "$BIN" "$@" >"$out.stdout" 2>"$out.stderr"
	local rc=$?
	local mem=$(tail -1 "$out.mem" 2>/dev/null | tr -dc 0-9)
	[ -n "$mem" ] && [ "$mem" -gt "$peak" ] && peak=$mem
	if [ $rc -eq 137 ] || [ $rc -eq 124 ]; then
		hangs=$((hangs + 1)); odd+=("HANG: ofa $*")
	elif grep -q -e '^panic:' -e 'goroutine [0-9]' "$out.stderr"; then
		panics=$((panics + 1)); odd+=("PANIC: ofa $*")
	elif [ $rc -ne 0 ]; then
		clean=$((clean + 1))
		[ "$expect" = ok ] && odd+=("FAILED (expected success): ofa $* -> $(tail -1 "$out.stderr")")
	else
		ok=$((ok + 1))
		[ "$expect" = fail ] && odd+=("ACCEPTED (expected an error): ofa $*")
	fi
}

# outputs that are not regular files
case_ fail export --model "$S" --out "$W/fifo"
case_ fail export --model "$S" --out "$W/adir"
case_ ok export --model "$S" --out /dev/null
case_ fail export --model "$S" --out /dev/full
case_ fail latency-table --supernet "$S" --repeats 3 --checks 0 --out "$W/adir"
case_ fail latency-table --supernet "$S" --repeats 3 --checks 0 --out "$W/fifo"
case_ ok latency-table --supernet "$S" --repeats 3 --checks 0 --out /dev/null
# models that are not models
for m in "$W/fifo" "$W/adir" /dev/zero /dev/null "$W/trunc.safetensors" "$W/random.safetensors" "$W/empty.safetensors" "$W/nan.safetensors" "$W/missing.safetensors"; do
	case_ fail inspect "$m"
	case_ fail eval --config "$W/tiny.yaml" --model "$m"
	case_ fail export --model "$m" --out "$W/x.onnx"
	case_ fail extract --config "$W/tiny.yaml" --supernet "$m" --ratios 0.5 --out "$W/x-$n"
done
# predict inputs
for in in "$W/fifo.png" "$W/adir" /dev/zero "$W/random.png" "$W/zero.png" "$W/empty.wav" "$W/missing.png"; do
	case_ fail predict --model "$S" "$in"
done
# configuration values
case_ fail train --config "$W/neg.yaml" --steps 5 --embedded --out "$W/t1"
case_ fail train --config "$W/yes.yaml" --embedded --out "$W/t2"
case_ fail train --config "$W/lrstr.yaml" --out "$W/t3"
case_ fail train --config "$W/huge.yaml" --out "$W/t4"
case_ fail train --config "$W/fifo.yaml" --out "$W/t5"
case_ fail train --config /dev/zero --out "$W/t6"
case_ fail train --config "$W/adir" --out "$W/t7"
# extraction arguments
for a in "--ratios 2" "--ratios nan" "--ratios -1" "--ratios 0.5,0.5,0.5" "--ratios x" "--thresholds 1.5" "--thresholds inf" "--target 100x" "--target 0x" "--target nonsense" "--target macs=-1"; do
	# shellcheck disable=SC2086
	case_ fail extract --config "$W/tiny.yaml" --supernet "$S" $a --out "$W/e$n"
done
case_ fail extract --config "$W/floors.yaml" --supernet "$S" --target 2x --out "$W/e-floors"
for tb in lat-neg lat-stem lat-random; do
	case_ fail extract --config "$W/tiny.yaml" --supernet "$S" --target latency_ms=1 --latency-table "$W/$tb.json" --out "$W/e-$tb"
done
# resume without a run, and a finished run resumed
case_ fail train --out "$W/adir" --resume
case_ fail run --out "$W/S" --resume
left=$(find "$W" -maxdepth 1 -name 'x-*' -o -maxdepth 1 -name 'e[0-9]*' | wc -l)

echo "cases $n, clean errors $clean, panics $panics, hangs $hangs, succeeded $ok, peak memory $((peak / 1024)) MiB"
echo "failed commands that left an output directory behind: $left"
for o in "${odd[@]}"; do echo "  $o"; done
