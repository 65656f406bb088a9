#!/usr/bin/env bash
# Reproduces the "Expansion study" tables of docs/RESULTS.md: does expansion by layer reuse
# beat plain extraction + fine-tuning at equal unique parameters (within 2%) and equal
# fine-tuning steps? For each budget it extracts (greedy ranking, so the sizes fill the
# budget), expands where the variant asks for it, fine-tunes every model with the same
# configuration and the supernet as teacher for each seed, times every model, and writes
# a Markdown table (mean ± std over the seeds) to OUT/table.md.
#
#   bash scripts/expansion-study.sh                      # demo scale: embedded subset, configs/demo.yaml
#   bash scripts/expansion-study.sh --supernet S.safetensors --budgets 4x --seeds 1
#   bash scripts/expansion-study.sh --full               # full Fashion-MNIST, configs/fashion-mnist.yaml (hours)
#   OFA_DATA_SPEECH_DIR=DIR bash scripts/expansion-study.sh --speech   # spoken digits, configs/speech.yaml, 4x
#     (DIR from scripts/make-spoken-digits.sh; the embedded 280 clips are too few for that configuration)
#
# Options: --out DIR (default runs/expansion-study[-full|-speech]), --supernet FILE (else one
# is trained into OUT/supernet), --budgets 2x,4x,8x, --seeds N (3), --variants a,b,...
# (default: all below), --finetune-epochs N (default: the configuration's),
# --latency-repeats N (30), --hidden-distill W (1: the weight of the -hd variants' hidden
# term). OFA=... replaces the binary (default: built into OUT/bin).
#
# Variants (every expansion uses affine maps, a rank-4 map and head mixing on the reused
# positions, the tool's default transforms):
#   extract      extraction + fine-tune (the simple alternative every row is compared with)
#   extract-search  the same with the configuration's evolutionary search after the greedy
#                ranking, as `ofa run` extracts (it may stop under the budget)
#   expand       extraction a little smaller, each layer used twice in a row (repeat:2),
#                reused positions' gates start at 0 (the tool's default)
#   expand-open  the same, gates start at 1 (a reused position starts as a second run of its layer)
#   expand-lr10  gates start at 0, the transforms learn at 10x the rate (finetune.transform_lr_scale)
#   wide         width for depth: half the layers (rounded up), as wide as the budget allows
#                (extraction floors forbid more layers), each used twice, gates at 0
#   wide-open    the same, gates start at 1
#   wide-extract the half-depth, wider extraction fine-tuned without expansion (a control)
#   NAME-hd      any of the above fine-tuned with hidden-state distillation as well
#                (finetune.hidden_distill = --hidden-distill, 1 by default): each position
#                distils the teacher's residual stream through the uniform position-to-layer
#                map (MiniViT's weight distillation without the attention relations)
set -euo pipefail
cd "$(dirname "$0")/.."

FULL=0 SPEECH=0 SUPERNET="" OUT="" BUDGETS="" SEEDS=3 FT_EPOCHS="" REPEATS=30 HIDDEN=1
VARIANTS="extract,extract-search,expand,expand-open,expand-lr10,wide,wide-open,wide-extract"
while [ $# -gt 0 ]; do
  case "$1" in
    --full) FULL=1 ;;
    --speech) SPEECH=1 ;;
    --supernet) SUPERNET=${2:?--supernet needs a file}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    --budgets) BUDGETS=${2:?--budgets needs a list}; shift ;;
    --seeds) SEEDS=${2:?--seeds needs a number}; shift ;;
    --variants) VARIANTS=${2:?--variants needs a list}; shift ;;
    --finetune-epochs) FT_EPOCHS=${2:?--finetune-epochs needs a number}; shift ;;
    --latency-repeats) REPEATS=${2:?--latency-repeats needs a number}; shift ;;
    --hidden-distill) HIDDEN=${2:?--hidden-distill needs a weight}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "expansion-study: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$FULL" = 1 ] && [ "$SPEECH" = 1 ]; then
  echo "expansion-study: --full and --speech exclude each other" >&2; exit 2
fi
case "$SEEDS" in ''|*[!0-9]*|0) echo "expansion-study: --seeds wants a positive number, got $SEEDS" >&2; exit 2 ;; esac

CONFIG=configs/demo.yaml SCALE=demo
[ "$FULL" = 1 ] && CONFIG=configs/fashion-mnist.yaml SCALE=full
[ "$SPEECH" = 1 ] && CONFIG=configs/speech.yaml SCALE=speech
if [ -z "$BUDGETS" ]; then BUDGETS=2x,4x,8x; [ "$SPEECH" = 1 ] && BUDGETS=4x; fi
if [ -z "$OUT" ]; then OUT=runs/expansion-study; [ "$SCALE" != demo ] && OUT=$OUT-$SCALE; fi
mkdir -p "$OUT"
if [ "$FULL" = 1 ]; then
  export OFA_DATA_EMBEDDED=false
  [ -d /usr/share/datasets/fashion-mnist ] || [ -n "${OFA_DATA_DIR:-}" ] ||
    { echo "expansion-study: --full needs the Fashion-MNIST IDX files (Debian package dataset-fashion-mnist, or OFA_DATA_DIR)" >&2; exit 1; }
fi
# the embedded spoken digits have 280 training clips: 3 calibration batches of 100
if [ "$SPEECH" = 1 ] && [ -z "${OFA_DATA_SPEECH_DIR:-}" ]; then
  export OFA_EXTRACT_CALIBRATION_BATCHES=${OFA_EXTRACT_CALIBRATION_BATCHES:-2}
fi
# the same selection for every variant: the greedy ranking fills the budget, so unique
# parameters are comparable (the evolutionary search may stop anywhere under it)
# (extract-search keeps the configuration's search, as `ofa run` does)
export OFA_EXTRACT_SEARCH_GENERATIONS=0
[ -n "$FT_EPOCHS" ] && export OFA_FINETUNE_EPOCHS=$FT_EPOCHS

if [ -z "${OFA:-}" ]; then
  go build -o "$OUT/bin/ofa" ./cmd/ofa
  OFA=$OUT/bin/ofa
fi
log() { echo "[expansion-study $(date +%H:%M:%S)] $*" >&2; }
last() { tail -1; } # with --json the last line of standard output is the JSON object

if [ -z "$SUPERNET" ]; then
  SUPERNET=$OUT/supernet/supernet.safetensors
  if [ ! -f "$SUPERNET" ] || [ -e "$OUT/supernet/.ofa-incomplete" ]; then
    log "training the supernet ($CONFIG) into $OUT/supernet"
    resume=""; [ -f "$OUT/supernet/resume.safetensors" ] && resume=--resume
    if [ -n "$resume" ]; then $OFA train --out "$OUT/supernet" --resume --json | last > "$OUT/supernet.json"
    else $OFA train --config "$CONFIG" --out "$OUT/supernet" --json | last > "$OUT/supernet.json"; fi
  fi
fi
$OFA inspect --json "$SUPERNET" 2>/dev/null | last > "$OUT/supernet-inspect.json"

# floors NEED_LAYERS BUDGET_PARAMS: extraction floors under which at most NEED_LAYERS layers fit
# the budget: extract.floors.min_heads / min_mlp / min_depth, as "H M D"
floors() {
  python3 - "$OUT/supernet-inspect.json" "$1" "$2" <<'PY'
import json, sys
sn, want, budget = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
a = sn["arch"]; d, dh = a["dim"], a["head_dim"]
def layer(h, m):  # unique params of a non-expanded layer: qkv, proj, fc1, fc2, two norms
    return 3*h*dh*d + 3*h*dh + d*h*dh + d + m*d + m + d*m + d + 4*d
for l in sn["layers"]:
    assert layer(l["heads"], l["mlp"]) == l["params"], "layer parameter formula out of date"
room = budget - sn["stem"]["params"]
H, M = max(l["heads"] for l in sn["layers"]), max(l["mlp"] for l in sn["layers"])
# the smallest floor at which want+1 layers no longer fit (and want layers still do)
best = min(((layer(h, m), h, m) for h in range(1, H+1) for m in range(8, M+1)
            if (want+1)*layer(h, m) > room and want*layer(h, m) <= room), default=None)
if best is None:
    sys.exit(f"no floors keep {want} layers within {budget} params")
print(best[1], best[2], want)
PY
}

# done_dir DIR: DIR holds a finished model and its JSON answer (a rerun keeps it)
done_dir() { [ -f "$1.json" ] && [ -f "$1/model.safetensors" ] && [ ! -e "$1/.ofa-incomplete" ]; }

# extract NAME TARGET_PARAMS [H M D]: greedy extraction to OUT/BUDGET/NAME
extract() {
  local name=$1 target=$2 dir=$OUT/$B/$1
  done_dir "$dir" && [ "$(cat "$dir.target" 2>/dev/null)" = "$target ${*:3}" ] && return 0
  echo "$target ${*:3}" > "$dir.target"
  if [ "${name%-hd}" = extract-search ]; then
    env -u OFA_EXTRACT_SEARCH_GENERATIONS \
      $OFA extract --config "$CONFIG" --supernet "$SUPERNET" --target "params=$target" --out "$dir" --force --json | last > "$dir.json"
  elif [ $# -ge 5 ]; then
    OFA_EXTRACT_FLOORS_MIN_HEADS=$3 OFA_EXTRACT_FLOORS_MIN_MLP=$4 OFA_EXTRACT_FLOORS_MIN_DEPTH=$5 \
      $OFA extract --config "$CONFIG" --supernet "$SUPERNET" --target "params=$target" --out "$dir" --force --json | last > "$dir.json"
  else
    $OFA extract --config "$CONFIG" --supernet "$SUPERNET" --target "params=$target" --out "$dir" --force --json | last > "$dir.json"
  fi
}
params_of() { $OFA inspect --json "$1" 2>/dev/null | last | python3 -c 'import json,sys; print(json.load(sys.stdin)["params"])'; }
layers_of() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["layers"]))' "$1"; }

# expanded NAME LIMIT GATE [H M D]: extract, expand with repeat:2 and the gate, and shrink
# the extraction until the expanded model's unique params are within LIMIT
expanded() {
  local name=$1 limit=$2 gate=$3; shift 3
  local target=$limit try got
  if done_dir "$OUT/$B/$name" && [ "$(cat "$OUT/$B/$name.gate" 2>/dev/null)" = "$gate" ]; then
    got=$(params_of "$OUT/$B/$name/model.safetensors")
    [ "$got" -le "$limit" ] && return 0
  fi
  for try in 1 2 3 4 5; do
    extract "$name-x" "$target" "$@"
    echo "$gate" > "$OUT/$B/$name.gate"
    OFA_EXPAND_INIT_GATE=$gate $OFA expand --config "$CONFIG" --model "$OUT/$B/$name-x/model.safetensors" \
      --plan repeat:2 --out "$OUT/$B/$name" --force --json | last > "$OUT/$B/$name.json"
    got=$(params_of "$OUT/$B/$name/model.safetensors")
    [ "$got" -le "$limit" ] && return 0
    target=$(( target - (got - limit) - limit / 200 ))
  done
  echo "expansion-study: $name: could not fit the expansion within $limit params" >&2; return 1
}

finetune() { # finetune NAME SEED [LR_SCALE [HIDDEN_DISTILL]]
  local name=$1 seed=$2 scale=${3:-1} hidden=${4:-0} dir=$OUT/$B/$1-ft-s$2
  [ -f "$dir.json" ] && [ ! -e "$dir/.ofa-incomplete" ] && return 0
  OFA_FINETUNE_SEED=$seed OFA_FINETUNE_TRANSFORM_LR_SCALE=$scale OFA_FINETUNE_HIDDEN_DISTILL=$hidden \
    $OFA finetune --config "$CONFIG" --model "$OUT/$B/$name/model.safetensors" --teacher "$SUPERNET" \
    --out "$dir" --force --json | last > "$dir.json.tmp"
  mv "$dir.json.tmp" "$dir.json"
}

IFS=, read -r -a budget_list <<< "$BUDGETS"
IFS=, read -r -a variant_list <<< "$VARIANTS"
[ "${variant_list[0]}" = extract ] ||
  { echo "expansion-study: --variants must start with extract, the row every other is compared with" >&2; exit 2; }
SN_PARAMS=$(params_of "$SUPERNET")
for B in "${budget_list[@]}"; do
  case "$B" in
    *x) LIMIT=$(python3 -c "import math,sys; print(math.floor($SN_PARAMS/float(sys.argv[1])))" "${B%x}") ;;
    params=*) LIMIT=${B#params=} ;;
    *) echo "expansion-study: budget $B: want Nx or params=N" >&2; exit 2 ;;
  esac
  mkdir -p "$OUT/$B"
  log "budget $B: at most $LIMIT unique params"
  extract extract "$LIMIT"
  BASE_LAYERS=$(layers_of "$OUT/$B/extract.json")
  HALF=$(( (BASE_LAYERS + 1) / 2 ))
  read -r FH FM FD <<< "$(floors "$HALF" "$LIMIT")"
  log "budget $B: the extraction keeps $BASE_LAYERS layers; width for depth keeps $HALF (floors: $FH heads, MLP $FM)"
  for v in "${variant_list[@]}"; do
    case "${v%-hd}" in
      extract) [ "$v" = extract ] || extract "$v" "$LIMIT" ;;
      extract-search) extract "$v" "$LIMIT" ;;
      expand|expand-lr10) expanded "$v" "$LIMIT" 0 ;;
      expand-open) expanded "$v" "$LIMIT" 1 ;;
      wide) expanded "$v" "$LIMIT" 0 "$FH" "$FM" "$FD" ;;
      wide-open) expanded "$v" "$LIMIT" 1 "$FH" "$FM" "$FD" ;;
      wide-extract) extract "$v" "$LIMIT" "$FH" "$FM" "$FD" ;;
      *) echo "expansion-study: unknown variant $v" >&2; exit 2 ;;
    esac
  done
  for seed in $(seq 1 "$SEEDS"); do
    for v in "${variant_list[@]}"; do
      log "budget $B: fine-tuning $v, seed $seed"
      scale=1; [ "${v%-hd}" = expand-lr10 ] && scale=10
      hidden=0; [ "$v" != "${v%-hd}" ] && hidden=$HIDDEN
      finetune "$v" "$seed" "$scale" "$hidden"
    done
  done
done

# pre-fine-tuning test accuracy of every model, then latency, one model at a time
for B in "${budget_list[@]}"; do
  for v in "${variant_list[@]}"; do
    $OFA eval --config "$CONFIG" --model "$OUT/$B/$v/model.safetensors" --json 2>/dev/null | last > "$OUT/$B/$v-eval.json"
  done
done
log "timing every model (batch 1, median of $REPEATS runs)"
models=()
for B in "${budget_list[@]}"; do for v in "${variant_list[@]}"; do models+=("$OUT/$B/$v/model.safetensors"); done; done
go run scripts/timemodel.go -repeats "$REPEATS" "${models[@]}" > "$OUT/latency.jsonl"

python3 - "$OUT" "$BUDGETS" "$VARIANTS" "$SEEDS" "$SCALE" > "$OUT/table.md" <<'PY'
import json, math, os, statistics as st, struct, sys
out, budgets, variants, seeds, scale = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), int(sys.argv[4]), sys.argv[5]
lat = {}
for line in open(os.path.join(out, "latency.jsonl")):
    r = json.loads(line); lat[os.path.relpath(r["model"], out)] = r
label = {"extract": "extraction + fine-tune", "extract-search": "extraction with the search + fine-tune", "expand": "expand repeat:2, gates 0 (default)",
         "expand-open": "expand repeat:2, gates 1", "expand-lr10": "expand repeat:2, gates 0, transforms lr x10",
         "wide": "half depth, wider, repeat:2, gates 0", "wide-open": "half depth, wider, repeat:2, gates 1",
         "wide-extract": "half depth, wider, no expansion"}
label.update({k + "-hd": v + ", + hidden distill" for k, v in list(label.items())})
def gates(path):
    # mean |branch gate| (affine attention and MLP scales) over the reused positions of a
    # model file: a reused position whose gates stay near 0 adds nothing to the model
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        head = json.loads(f.read(n))
        data = f.read()
    vals = []
    for name, t in head.items():
        if name.endswith(("affine.attn_scale", "affine.mlp_scale")):
            assert t["dtype"] == "F32"
            lo, hi = t["data_offsets"]
            vals += [abs(x) for x in struct.unpack(f"<{(hi - lo)//4}f", data[lo:hi])]
    return st.mean(vals) if vals else None
def ms(v): return f"{100*st.mean(v):.2f} ± {100*st.stdev(v):.2f}" if len(v) > 1 else f"{100*v[0]:.2f}"
print(f"Scale: {scale}. Every fine-tune: the same configuration and steps, the supernet as teacher; "
      f"{seeds} seed(s) (finetune.seed); accuracies on the test split, mean ± std. "
      "Δ: the variant's mean minus the reference's, ± the std of the per-seed differences; "
      "the same depth without reuse is the plain extraction + FT with as many layers as the expanded model stores and "
      "within 2% of its unique params: the greedy one (extract, or wide-extract for wide*) where it qualifies, else extract-search.\n")
def delta(acc, ref):
    diff = [x - y for x, y in zip(acc, ref)]
    return f"{100*st.mean(diff):+.2f}" + (f" ± {100*st.stdev(diff):.2f}" if len(diff) > 1 else "")
plain = ("extract", "wide-extract", "extract-search")  # extractions fine-tuned without expansion
plain += tuple(p + "-hd" for p in plain)
for b in budgets:
    print(f"\n**{b}**\n")
    print("| variant | unique params | layers / positions (heads/MLP) | MACs | latency (batch 1) | FT steps (wall time) | before FT | after FT "
          "| Δ vs extraction + FT | Δ vs the same depth without reuse | reused gates before → after FT |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    d = os.path.join(out, b)
    accs, vals, params, layers = {}, {}, {}, {}
    for v in variants:
        fts = [json.load(open(os.path.join(d, f"{v}-ft-s{s}.json"))) for s in range(1, seeds + 1)]
        accs[v], vals[v] = [f["test_accuracy"] for f in fts], st.mean(f["val_accuracy"] for f in fts)
        info = lat[os.path.join(b, v, "model.safetensors")]
        params[v], layers[v] = info["params"], info["layers"]
    def reference(v):
        # the plain extraction with as many stored layers as v and within 2% of its unique
        # params, preferring the greedy ones (the selection the expansions start from) to
        # the searched one; else the closest in params of those with v's layer count
        # (with the same fine-tuning loss: a -hd variant is compared with a -hd extraction)
        cands = [p for p in plain if p in accs and layers[p] == layers[v] and p.endswith("-hd") == v.endswith("-hd")]
        for p in cands:
            if abs(params[p] - params[v]) <= 0.02 * params[v]:
                return p, ""
        if cands:
            return min(cands, key=lambda p: abs(params[p] - params[v])), ", params not within 2%"
        return None, ""
    for v in variants:
        info = lat[os.path.join(b, v, "model.safetensors")]
        expanded = v not in plain
        man = json.load(open(os.path.join(d, (v + "-x" if expanded else v) + ".json")))
        sizes = " ".join(f'{l["heads"]}/{l["mlp"]}' for l in man["layers"])
        pre_acc = json.load(open(os.path.join(d, v + "-eval.json")))["results"][0]["accuracy"]
        fts = [json.load(open(os.path.join(d, f"{v}-ft-s{s}.json"))) for s in range(1, seeds + 1)]
        acc = accs[v]
        g0 = gates(os.path.join(d, v, "model.safetensors"))
        g1 = [gates(os.path.join(d, f"{v}-ft-s{s}", "model.safetensors")) for s in range(1, seeds + 1)]
        gate = "—" if g0 is None else f"{g0:.2f} → {st.mean(g1):.2f}"
        base = variants[0]
        vs_base = "—" if v == base else delta(acc, accs[base])
        ref, note = reference(v) if expanded else (None, "")
        vs_same = f"{delta(acc, accs[ref])} (vs {ref}{note})" if ref else "—"
        rel = 100 * (info["params"] - params[base]) / params[base]
        flag = "" if abs(rel) <= 2 else " (not within 2%)"
        print(f'| {label.get(v, v)} | {info["params"]:,} ({rel:+.1f}%){flag} | {info["layers"]} / {info["positions"]} ({sizes}) | '
              f'{info["macs"]:,} | {info["latency_ms"]:.3f} ms | {fts[0]["steps"]} ({st.mean(f["seconds"] for f in fts):.0f} s) | '
              f'{100*pre_acc:.2f}% | {ms(acc)}% | {vs_base} | {vs_same} | {gate} |')
PY
log "table: $OUT/table.md"
cat "$OUT/table.md"
