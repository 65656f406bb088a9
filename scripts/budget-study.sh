#!/usr/bin/env bash
# Budget-aware supernets (issue 24): runs the lifecycle of configs/fashion-mnist.yaml on the
# full Fashion-MNIST at one reduced schedule, the same for every row, for each variant and
# seed, then writes the tables of docs/RESULTS.md ("Budget-aware supernets") with
# scripts/budget-study-table.py.
#
#   bash scripts/budget-study.sh OUTDIR SEED [VARIANT...]
#
# Variants (default: all, in this order; "teacher" needs "both" of the same seed first,
# whose dense model it reuses as its fixed teacher):
#   both     sampler.kind budgets + run.teacher dense, with the scratch (equal steps) and
#            dense -> prune -> fine-tune baselines, all distilled from the same dense teacher
#   budgets  sampler.kind budgets alone (in-place distillation)
#   sandwich the previous default: sandwich rule with one random subnet, in-place
#   only     (not in the default list) "fixed" with sampler.budget_only: after the warm
#            phase only the budget subnets are trained (no largest), from the teacher of
#            "both", with its own baselines
#   fixeddense (not in the default list) "fixed" training its own dense teacher
#            (run.teacher dense: configs/fashion-mnist-budgets.yaml's recipe), with its
#            own baselines; needs no "both" run
#   fixedalone (not in the default list) sampler.budget_fixed with in-place distillation
#            (no teacher), no baselines
#   fixednowarm (not in the default list) "fixed" without the warm phase
#            (sampler.warm_fraction 0): the budget subnets train from the first step
#   fixedsoft (not in the default list) "fixed" with soft labels only (train.alpha 1, so
#            also for the scratch rows, which train with the supernet's train section)
#   fixedproj (not in the default list) "fixed" with gradient projection
#            (train.project_conflicts): a budget subnet's gradient loses its component
#            against the largest subnet's
#   fixedsearched (not in the default list) "fixed" whose budget subnets are named
#            (sampler.budget_subnets): the sizes the "both" run of the same seed extracted,
#            written into OUTDIR/searched-sSEED.yaml by scripts/budget-subnets-from.py; an
#            oracle for choosing the fixed subnets by a search (that search's compute is
#            the "both" run's, not counted here)
#   teacher  the previous default's sampler with the fixed dense teacher of "both"
#   fixed    (not in the default list) "both" with sampler.budget_fixed (one fixed subnet
#            per budget, PreNAS, which the extraction's search starts from), the teacher of
#            "both" given by path, with its own baselines (scratch and dense -> prune of its
#            own extracted sizes, from the same teacher)
# The schedule: SUPERNET_STEPS supernet steps (default 1000, about 1.2 epochs of the 55,000
# training images), FT_STEPS fine-tuning steps (default 400); the scratch rows train for
# their sum, the dense model for the supernet run's training MACs. Every seed changes the
# initialisation, the sampler's draws and the data order (model.init_seed, sampler.seed,
# train.seed, finetune.seed).
set -euo pipefail
OUT=${1:?output directory}
SEED=${2:?seed}
shift 2
VARIANTS=${*:-both budgets sandwich teacher}
OFA=${OFA:-./ofa}
SUPERNET_STEPS=${SUPERNET_STEPS:-1000}
FT_STEPS=${FT_STEPS:-400}
mkdir -p "$OUT"
common=(OFA_TRAIN_STEPS=$SUPERNET_STEPS OFA_TRAIN_WARMUP_STEPS=200 OFA_FINETUNE_STEPS=$FT_STEPS
  OFA_MODEL_INIT_SEED=$SEED OFA_SAMPLER_SEED=$SEED OFA_TRAIN_SEED=$SEED OFA_FINETUNE_SEED=$SEED
  OFA_RUN_EXPAND=false OFA_RUN_SCRATCH=false OFA_RUN_BASELINES=false OFA_RUN_LATENCY_REPEATS=3
  OFA_EXTRACT_SEARCH_POPULATION=8 OFA_EXTRACT_SEARCH_GENERATIONS=2 OFA_EXTRACT_VAL_EXAMPLES=1000)
light=(OFA_RUN_SCRATCH_EQUAL_STEPS=false OFA_RUN_DENSE_PRUNE=false)
for v in $VARIANTS; do
  dir="$OUT/$v-s$SEED"
  config=configs/fashion-mnist.yaml
  if [ -f "$dir/report.json" ]; then echo "== $dir: done"; continue; fi
  case $v in
    both)     vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_RUN_TEACHER=dense) ;;
    budgets)  vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 "${light[@]}") ;;
    sandwich) vars=(OFA_SAMPLER_KIND=sandwich OFA_SAMPLER_RANDOM=1 "${light[@]}") ;;
    fixed)    vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_SAMPLER_BUDGET_FIXED=true OFA_RUN_TEACHER="$OUT/both-s$SEED/dense/model.safetensors") ;;
    only)     vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_SAMPLER_BUDGET_FIXED=true OFA_SAMPLER_BUDGET_ONLY=true OFA_RUN_TEACHER="$OUT/both-s$SEED/dense/model.safetensors") ;;
    fixednowarm) vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_SAMPLER_BUDGET_FIXED=true OFA_SAMPLER_WARM_FRACTION=0 OFA_RUN_TEACHER="$OUT/both-s$SEED/dense/model.safetensors") ;;
    fixedsoft) vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_SAMPLER_BUDGET_FIXED=true OFA_TRAIN_ALPHA=1 OFA_RUN_TEACHER="$OUT/both-s$SEED/dense/model.safetensors") ;;
    fixedproj) vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_SAMPLER_BUDGET_FIXED=true OFA_TRAIN_PROJECT_CONFLICTS=true OFA_RUN_TEACHER="$OUT/both-s$SEED/dense/model.safetensors") ;;
    fixedsearched)
      config="$OUT/searched-s$SEED.yaml"
      python3 scripts/budget-subnets-from.py "$OUT/both-s$SEED" configs/fashion-mnist.yaml "$config"
      vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_RUN_TEACHER="$OUT/both-s$SEED/dense/model.safetensors") ;;
    fixeddense) vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_SAMPLER_BUDGET_FIXED=true OFA_RUN_TEACHER=dense) ;;
    fixedalone) vars=(OFA_SAMPLER_KIND=budgets OFA_SAMPLER_RANDOM=0 OFA_SAMPLER_BUDGET_FIXED=true "${light[@]}") ;;
    teacher)  vars=(OFA_SAMPLER_KIND=sandwich OFA_SAMPLER_RANDOM=1 OFA_RUN_TEACHER="$OUT/both-s$SEED/dense/model.safetensors" "${light[@]}") ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  echo "== $dir: ${vars[*]}"
  start=$(date +%s)
  env "${common[@]}" "${vars[@]}" $OFA run --config "$config" --out "$dir" --force > "$dir.log" 2>&1
  echo "== $dir: $(( $(date +%s) - start )) s"
done
