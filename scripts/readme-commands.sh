#!/usr/bin/env bash
# Runs every command of README.md, in order, as written, and fails on the first command that
# fails: the README's promise that its commands run in sequence on what the previous ones
# wrote, checked.
#
#   bash scripts/readme-commands.sh              # quick: long runs at a reduced size
#   README_FULL=1 bash scripts/readme-commands.sh   # every command at its written size
#   README_KEEP_GOING=1 bash scripts/readme-commands.sh   # run on after a failure, list them all
#
# What it does:
#   - reads every line of the ```sh blocks of README.md (a line ending in \ continues), and
#     runs them one by one in one bash session, so variables (S=...) carry over;
#   - runs them in a scratch directory (README_WORK, default a new temporary one) that links
#     every top-level entry of the repository except runs/, so runs/ of the checkout is left
#     alone; `ofa` and `go run ./cmd/ofa` run one binary built from the checkout first;
#   - long runs at a reduced size: a command that does not use configs/demo.yaml and is not
#     on the embedded subset gets OFA_ environment variables (README_QUICK_ENV) that cut
#     epochs and data (the environment overrides a --config file, flags override it); the
#     demo runs as written, so its printed numbers can be compared with the README's;
#   - skips, saying why, what this machine cannot run: root package installs, etcd when it
#     is not installed, the PyTorch comparison without torch, the spoken-digit generator
#     without espeak-ng (and the commands that read its output), onnxruntime builds without
#     the library, and the full test suite (.ci/run; README_RUN_ALL=1 runs it);
#   - keeps each command's output in README_WORK/logs/NN.log and prints its last lines, and
#     stops background servers the commands started when it ends.
#
# Exit status: 0 when every command that ran exited 0, else the (last) failing command's status.
set -u

if [ -z "${README_SETSID:-}" ] && command -v setsid >/dev/null; then
  # a process group of its own, so that the servers README commands start in the
  # background (python3 -m http.server, etcd) are stopped at the end, and nothing else
  README_SETSID=1 exec setsid --wait bash "$0" "$@"
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
readme=${1:-$repo/README.md}
work=${README_WORK:-$(mktemp -d /tmp/ofa-readme.XXXXXX)}
quick_env=${README_QUICK_ENV:-"OFA_TRAIN_EPOCHS=1 OFA_FINETUNE_EPOCHS=1 OFA_DATA_TRAIN_LIMIT=3000 OFA_DATA_VAL_SIZE=500 OFA_DATA_TEST_LIMIT=1000 OFA_RUN_LATENCY_REPEATS=3"}

cleanup() {
  local rc=$?
  trap '' TERM
  if [ -n "${README_SETSID:-}" ]; then
    kill -TERM -- -$$ 2>/dev/null
  fi
  exit $rc
}
trap cleanup EXIT

if [ "$(cd "$work" 2>/dev/null && pwd -P)" = "$(cd "$repo" && pwd -P)" ]; then
  echo "README_WORK is the checkout itself: give a scratch directory"
  exit 2
fi
# a fresh start: the README's commands refuse to overwrite what an earlier pass wrote
rm -rf "$work/runs" "$work/logs"
mkdir -p "$work/logs" "$work/bin" || exit 1
for entry in "$repo"/* "$repo"/.[!.]*; do
  name=$(basename "$entry")
  case $name in runs | .git) continue ;; esac
  [ -e "$work/$name" ] || ln -s "$entry" "$work/$name"
done
echo "== building ofa from $repo"
(cd "$repo" && go build -o "$work/bin/ofa" ./cmd/ofa) || { echo "build failed"; exit 1; }
export PATH="$work/bin:$PATH"

# the commands, one per entry, continuation lines joined
mapfile -t commands < <(awk '
  /^```/ { if (fence) { fence = 0; inblock = 0 } else { fence = 1; inblock = ($0 ~ /^```(sh|bash|shell)?[[:space:]]*$/) }; next }
  !inblock { next }
  {
    line = $0
    if (cont != "") { line = cont " " line; cont = "" }
    if (line ~ /\\[[:space:]]*$/) { sub(/\\[[:space:]]*$/, "", line); cont = line; next }
    if (line ~ /^[[:space:]]*(#|$)/) next
    print line
  }' "$readme")

have() { command -v "$1" >/dev/null 2>&1; }

# skip_reason prints why a command cannot run on this machine, or nothing.
skip_reason() {
  local c=$1
  case $c in
    *"apt-get install"* | *"sudo "*) echo "installs system packages (needs root): run it yourself" ;;
    *".ci/run"*) [ -n "${README_RUN_ALL:-}" ] || echo "the whole test suite (README_RUN_ALL=1 runs it)" ;;
    *etcd*) { have etcd && have etcdctl; } || echo "etcd (etcd-server and etcd-client) is not installed" ;;
    *bench/compare.sh*) python3 -c 'import torch' 2>/dev/null || echo "PyTorch (python3-torch) is not installed" ;;
    *make-spoken-digits* | *spoken-digits* | *runs/speech*) have espeak-ng || echo "espeak-ng is not installed (the spoken-digit generator needs it)" ;;
    *"-tags onnxruntime"* | *ofa-ort*) [ -n "${OFA_ONNXRUNTIME_LIB:-}" ] || [ -d export/onnx/testdata/ort ] ||
      echo "onnxruntime is not installed (scripts/install-onnx-test-deps.sh)" ;;
  esac
}

n=0 ran=0 skipped=0 status=0
failed=()
cd "$work" || exit 1
for c in "${commands[@]}"; do
  n=$((n + 1))
  log=$(printf '%s/logs/%02d.log' "$work" "$n")
  printf '\n== [%d/%d] %s\n' "$n" "${#commands[@]}" "$c"
  if why=$(skip_reason "$c") && [ -n "$why" ]; then
    echo "   skipped: $why"
    skipped=$((skipped + 1))
    continue
  fi
  run=${c//go run .\/cmd\/ofa/ofa}
  envs=""
  if [ -z "${README_FULL:-}" ] && [[ $run == *ofa\ * ]] && [[ $run != *configs/demo.yaml* ]] && [[ $run != *--embedded* ]] && [[ $run != *--resume* ]]; then
    envs=$quick_env
    echo "   reduced size: $envs"
  fi
  start=$(date +%s)
  # shellcheck disable=SC2086 # envs is a list of NAME=value words
  (eval "export $envs"; eval "$run") >"$log" 2>&1 </dev/null
  rc=$?
  # a command may set variables that later ones use (S=...): set them here too
  if [[ $run =~ ^[A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*$ ]]; then eval "$run"; fi
  ran=$((ran + 1))
  echo "   exit $rc in $(($(date +%s) - start)) s; last lines of $log:"
  tail -n 4 "$log" | sed 's/^/   | /'
  if [ $rc -ne 0 ]; then
    echo "FAILED: $c"
    [ -n "${README_KEEP_GOING:-}" ] || exit $rc
    failed+=("$c")
    status=$rc
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  printf '\n== %d of %d commands that ran failed (%d skipped); outputs in %s:\n' "${#failed[@]}" "$ran" "$skipped" "$work"
  printf '   %s\n' "${failed[@]}"
  exit "$status"
fi
printf '\n== all %d commands that ran exited 0 (%d skipped); outputs in %s\n' "$ran" "$skipped" "$work"
