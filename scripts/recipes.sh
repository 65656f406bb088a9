#!/usr/bin/env bash
# Reproduces the recipe grid of docs/RECIPES.md: trains the supernet once per training
# recipe on the demo setting (configs/demo.yaml: the embedded Fashion-MNIST subset, 680
# steps of batch 64), then runs the best recipes and the largest-subnet-alone baseline with
# more seeds, and writes the tables into docs/RECIPES.md (between its recipes markers).
#   bash scripts/recipes.sh                 # the demo grid (about an hour on 2 cores)
#   bash scripts/recipes.sh --full          # the same on the full Fashion-MNIST with
#                                           # configs/fashion-mnist.yaml (about 1 h per run)
#   bash scripts/recipes.sh --seeds 1       # one seed only
# Other options: --out DIR (runs; default runs/recipes or runs/recipes-full), --doc FILE,
# --top N (recipes that get every seed, default 5), --only NAME (run one recipe, no doc).
# Finished runs are kept and not repeated: delete the output directory to start over.
#
# A recipe is a list of configuration overrides, each key=value set through its OFA_
# environment variable on top of the config file. Every run first sets the recipe keys to
# the previous default recipe (RESET below), so a row does not depend on the current
# defaults. "stages=F:D/H/M,..." is a progressive schedule: each stage ends at fraction F of
# the run and unlocks D depth, H head and M MLP choices (0: all), written into a copy of the
# config file as sampler.stages.
# Seed 1 is the config's own seeds; seed k > 1 sets model.init_seed, sampler.seed and
# train.seed to k.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=demo CONFIG=configs/demo.yaml OUT="" DOC=docs/RECIPES.md SEEDS=3 TOP=5 ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --full) MODE=full CONFIG=configs/fashion-mnist.yaml ;;
    --out) OUT=$2; shift ;;
    --doc) DOC=$2; shift ;;
    --seeds) SEEDS=$2; shift ;;
    --top) TOP=$2; shift ;;
    --only) ONLY=$2; shift ;;
    *) echo "recipes.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$OUT" ]; then OUT=runs/recipes; [ $MODE = demo ] || OUT=runs/recipes-full; fi
mkdir -p "$OUT"

# The previous default recipe; every run starts from it.
RESET="model.init=trunc_normal model.zero_init_residual=false sampler.kind=sandwich sampler.random=2
  sampler.warm_fraction=0 train.alpha=1 train.largest_label_smoothing=0 train.project_conflicts=false"
OFA_STAGES="stages=0.1:1/1/1,0.25:0/1/1,0.5:0/1/0,1:0/0/0" # Once-for-All's order (sampler.DefaultStages)

# name | overrides of RESET. The first recipe is run first: its step count sizes the stages.
RECIPES="
old-default |
pt-r0 | model.init=pytorch sampler.random=0
largest-alone | sampler.kind=uniform sampler.random=0
pt-largest-alone | model.init=pytorch sampler.kind=uniform sampler.random=0
sandwich-r0 | sampler.random=0
pt | model.init=pytorch
pt-r1 | model.init=pytorch sampler.random=1
pt-zero-r0 | model.init=pytorch model.zero_init_residual=true sampler.random=0
pt-warm25-r0 | model.init=pytorch sampler.warm_fraction=0.25 sampler.random=0
pt-warm50-r0 | model.init=pytorch sampler.warm_fraction=0.5 sampler.random=0
pt-ofa-stages-r0 | model.init=pytorch sampler.kind=progressive sampler.random=0 $OFA_STAGES
pt-r0-alpha0.5 | model.init=pytorch sampler.random=0 train.alpha=0.5
pt-r0-alpha0 | model.init=pytorch sampler.random=0 train.alpha=0
pt-r0-ls0.1 | model.init=pytorch sampler.random=0 train.largest_label_smoothing=0.1
pt-r0-project | model.init=pytorch sampler.random=0 train.project_conflicts=true
pt-warm10-r0 | model.init=pytorch sampler.warm_fraction=0.1 sampler.random=0
pt-warm25-r0-alpha0.5 | model.init=pytorch sampler.warm_fraction=0.25 sampler.random=0 train.alpha=0.5
pt-warm25-r0-alpha0 | model.init=pytorch sampler.warm_fraction=0.25 sampler.random=0 train.alpha=0
pt-warm25-r1 | model.init=pytorch sampler.warm_fraction=0.25 sampler.random=1
warm50 | sampler.warm_fraction=0.5
r0-alpha0.5 | sampler.random=0 train.alpha=0.5
pt-warm50 | model.init=pytorch sampler.warm_fraction=0.5
pt-ofa-stages | model.init=pytorch sampler.kind=progressive $OFA_STAGES
pt-noclip | model.init=pytorch train.clip_norm=0
"
# the recipe the built-in defaults hold (marked in the tables)
DEFAULT=pt-warm25-r0-alpha0.5
# the strongest simple alternatives: the largest subnet alone, with each initialisation
BASELINES="largest-alone pt-largest-alone"

go build -o "$OUT/ofa" ./cmd/ofa

# stagesYAML TOTAL SPEC prints sampler.stages for a run of TOTAL steps.
stagesYAML() {
  python3 - "$1" "$2" <<'PY'
import sys
total, spec = int(sys.argv[1]), sys.argv[2]
print("  stages:")
for st in spec.split(","):
    f, counts = st.split(":")
    d, h, m = counts.split("/")
    until = 0 if float(f) >= 1 else round(float(f) * total)
    print(f"    - {{until: {until}, depth: {d}, heads: {h}, mlp: {m}}}")
PY
}

# withStages FILE TOTAL SPEC writes a copy of the config file with sampler.stages set.
withStages() {
  awk -v stages="$(stagesYAML "$2" "$3")" '
    /^[^ #]/ { insec = ($0 ~ /^sampler:/); skip = 0 }
    insec && /^  stages:/ { skip = 1; next }
    skip && /^(    |  - )/ { next }
    { skip = 0; print }
    insec && /^sampler:/ && !done { print stages; done = 1 }
    END { if (!done) { print "sampler:"; print stages } }' "$CONFIG" > "$1"
}

# run NAME SEED OVERRIDES... trains one recipe and keeps the summary in $OUT/NAME-sSEED.json.
run() {
  local name=$1 seed=$2; shift 2
  local dir="$OUT/$name-s$seed" envs=() config=$CONFIG kv key
  [ -s "$dir.json" ] && return 0
  for kv in $RESET "$@"; do
    key=${kv%%=*}
    if [ "$key" = stages ]; then
      [ -s "$OUT/steps" ] || { echo "recipes.sh: run the first recipe before a staged one" >&2; exit 1; }
      config="$dir.yaml"
      withStages "$config" "$(cat "$OUT/steps")" "${kv#*=}"
      continue
    fi
    envs+=("OFA_$(echo "${key//./_}" | tr a-z A-Z)=${kv#*=}")
  done
  if [ "$seed" != 1 ]; then
    envs+=(OFA_MODEL_INIT_SEED=$seed OFA_SAMPLER_SEED=$seed OFA_TRAIN_SEED=$seed)
  fi
  echo "== $name seed $seed: $* (load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))"
  env "${envs[@]}" "$OUT/ofa" train --config "$config" --out "$dir" --force --json > "$dir.log" 2> "$dir.err" ||
    { tail -5 "$dir.err" >&2; exit 1; }
  tail -1 "$dir.log" > "$dir.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ", *("%s %.1f%%" % (e["name"], 100*e["accuracy"]) for e in d["eval"]), "%.1f s" % d["seconds"])' "$dir.json"
  [ -s "$OUT/steps" ] || python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"])' "$dir.json" > "$OUT/steps"
}

overrides() { echo "$RECIPES" | awk -F'|' -v n="$1" '{gsub(/ +$/, "", $1)} $1 == n {print $2}'; }
names() { echo "$RECIPES" | awk -F'|' 'NF > 1 {gsub(/ /, "", $1); print $1}'; }

if [ -n "$ONLY" ]; then
  run "$(names | head -1)" 1 $(overrides "$(names | head -1)")
  run "$ONLY" 1 $(overrides "$ONLY")
  exit 0
fi
for n in $(names); do
  run "$n" 1 $(overrides "$n")
done
if [ "$SEEDS" -gt 1 ]; then
  # the TOP recipes by the mean of the three subnets' accuracies, and the baselines
  best=$(python3 - "$OUT" $(names) <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
score = {n: sum(e["accuracy"] for e in json.load(open(f"{out}/{n}-s1.json"))["eval"]) for n in names}
print(" ".join(sorted(names, key=lambda n: -score[n])))
PY
)
  for n in $(echo "$best" | tr ' ' '\n' | head -"$TOP") $BASELINES; do
    for s in $(seq 2 "$SEEDS"); do run "$n" "$s" $(overrides "$n"); done
  done
fi

# The tables, between the markers of this mode in the doc.
python3 - "$OUT" "$DOC" "$MODE" "$CONFIG" "$SEEDS" "${BASELINES%% *}" "$RECIPES" "$DEFAULT" <<'PY'
import glob, json, os, re, statistics, sys
out, doc, mode, config, seeds, baseline, recipes, default = sys.argv[1:]
rows = []
for line in recipes.strip().splitlines():
    name, ov = (s.strip() for s in line.split("|"))
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{name}-s*.json"))]
    if runs:
        rows.append((name, ov, runs))
base = dict((n, r) for n, _, r in rows)[baseline][0]
largest_macs = next(e["macs"] for e in base["eval"] if e["name"] == "largest")

def acc(runs, sub):
    v = [100 * next(e["accuracy"] for e in r["eval"] if e["name"] == sub) for r in runs]
    return f"{v[0]:.1f}" if len(v) == 1 else f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}"

def table(rows, title):
    lines = [title, "",
             "| recipe | overrides | seeds | largest | middle | smallest | subnet passes / steps | compute | wall |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, ov, runs in rows:
        r = runs[0]
        compute = r["train_macs"] / (r["steps"] * largest_macs)
        wall = statistics.mean(x["seconds"] for x in runs)
        ov = ov.replace(",", ", ") if ov else "(none: the previous default)"
        shown = f"**{name}** (default)" if name == default else name
        lines.append(f"| {shown} | `{ov}` | {len(runs)} | {acc(runs, 'largest')} | {acc(runs, 'middle')} | "
                     f"{acc(runs, 'smallest')} | {r['subnets_trained']:,} / {r['steps']:,} | {compute:.2f} | {wall:.0f} s |")
    return lines

one = [(n, o, r[:1]) for n, o, r in rows]
multi = [(n, o, r) for n, o, r in rows if len(r) > 1]
body = [f"<!-- recipes-{mode}:begin (written by scripts/recipes.sh{' --full' if mode == 'full' else ''}) -->",
        f"Config `{config}`; {base['steps']} steps; data: {base['data']}; BLAS {base['blas']}.", ""]
body += table(one, "Seed 1, every recipe:")
if multi:
    body += [""] + table(multi, f"Mean ± standard deviation over {seeds} seeds:")
body.append(f"<!-- recipes-{mode}:end -->")
text = open(doc).read() if os.path.exists(doc) else "# Supernet training recipes\n"
pat = re.compile(rf"<!-- recipes-{mode}:begin.*?<!-- recipes-{mode}:end -->", re.S)
new = "\n".join(body)
text = pat.sub(lambda _: new, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + new + "\n"
open(doc, "w").write(text)
print(f"wrote {doc}")
PY
