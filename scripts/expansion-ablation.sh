#!/usr/bin/env bash
# Combines expansion studies (scripts/expansion-study.sh) made on different supernets into
# the ablation table of docs/RESULTS.md: for every row, the fine-tuned test accuracy minus
# the reference's (the plain extraction + fine-tune from the reference study's supernet),
# per seed and then mean ± std over the seeds, at every budget, with the MACs and the
# measured latency of the row's model.
#
#   bash scripts/expansion-ablation.sh REF_DIR ROW...
#
# REF_DIR is the study whose `extract` variant is the reference; each ROW is
# LABEL=DIR:VARIANT (a study directory and one of its variants), e.g.
#   bash scripts/expansion-ablation.sh runs/expansion-study-full80 \
#     "none=runs/expansion-study-full80:expand" "reuse-aware=runs/expansion-study-reuse:expand-open"
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
python3 - "$@" <<'PY'
import json, os, statistics as st, sys
ref, rows = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
budgets = sorted({b for b in os.listdir(ref) if os.path.isdir(os.path.join(ref, b)) and b.endswith("x")}, key=lambda b: float(b[:-1]))
def accs(d, b, v):
    out, s = [], 1
    while os.path.exists(os.path.join(d, b, f"{v}-ft-s{s}.json")):
        out.append(json.load(open(os.path.join(d, b, f"{v}-ft-s{s}.json")))["test_accuracy"]); s += 1
    return out
def lat(d):
    m = {}
    p = os.path.join(d, "latency.jsonl")
    if os.path.exists(p):
        for line in open(p):
            r = json.loads(line); m[os.path.relpath(r["model"], d)] = r
    return m
lats = {}
head = "| row | " + " | ".join(f"{b}: Δ (accuracy) | {b}: MACs, latency" for b in budgets) + " |"
print(head)
print("| --- |" + " ---: | --- |" * len(budgets))
for label, spec in rows:
    d, v = spec.rsplit(":", 1)
    lats.setdefault(d, lat(d))
    cells = []
    for b in budgets:
        base, a = accs(ref, b, "extract"), accs(d, b, v)
        n = min(len(base), len(a))
        if n == 0:
            cells += ["—", "—"]; continue
        diff = [x - y for x, y in zip(a[:n], base[:n])]
        dd = f"{100*st.mean(diff):+.2f}" + (f" ± {100*st.stdev(diff):.2f}" if n > 1 else "")
        cells.append(f"{dd} ({100*st.mean(a[:n]):.2f}%)")
        info = lats[d].get(os.path.join(b, v, "model.safetensors"))
        cells.append(f'{info["macs"]/1e6:.2f}M, {info["latency_ms"]:.3f} ms' if info else "—")
    print(f"| {label} | " + " | ".join(cells) + " |")
PY
