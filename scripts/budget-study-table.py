#!/usr/bin/env python3
"""Tables of docs/RESULTS.md, "Budget-aware supernets" (issue 24), from the runs of
scripts/budget-study.sh:

    python3 scripts/budget-study-table.py OUTDIR

For every variant and budget: test accuracy mean ± std over the seeds found (n), training
MACs (each row's stages, shared stages counted in full) and wall time (mean over seeds).
Then the supernets' largest, middle and smallest subnets against the dense model trained
alone at equal training MACs, and the compute totals of the three budgets."""
import glob, json, os, re, statistics as st, sys

out = sys.argv[1]
VARIANTS = [("both", "budgets sampler + dense teacher (new)"), ("budgets", "budgets sampler alone"),
            ("teacher", "dense teacher alone"), ("fixed", "fixed budget subnets + dense teacher, search starts from them"),
            ("only", "fixed budget subnets only (no largest) + dense teacher"),
            ("fixednowarm", "fixed budget subnets + dense teacher, no warm phase"),
            ("fixedsoft", "fixed budget subnets + dense teacher, soft labels only (train.alpha 1)"),
            ("fixedproj", "fixed budget subnets + dense teacher, gradient projection against the largest"),
            ("fixedsearched", "named budget subnets (the sizes the \"both\" run extracted) + dense teacher"),
            ("fixeddense", "fixed budget subnets + dense teacher (trained in the run)"),
            ("fixedalone", "fixed budget subnets alone (in-place), search starts from them"), ("sandwich", "previous default (sandwich + 1 random, in-place)")]
BUDGETS = ["2x", "4x", "8x"]


def reports(v):
    rs = []
    for d in sorted(glob.glob(os.path.join(out, f"{v}-s*"))):
        p = os.path.join(d, "report.json")
        if os.path.isfile(p):
            rs.append((d, json.load(open(p))))
    return rs


def ms(xs, scale=100, fmt="{:.2f}"):
    if not xs:
        return "—"
    m = fmt.format(scale * st.mean(xs))
    return m + (f" ± {scale * st.stdev(xs):.2f}" if len(xs) > 1 else "") + f" (n={len(xs)})"


def macs(row):
    return sum(s.get("macs", 0) for s in row.get("compute") or [])


def wall(row):
    return sum(s.get("seconds", 0) for s in row.get("compute") or [])


def si(x):
    for f, s in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if x >= f:
            return f"{x / f:.3g}{s}"
    return f"{x:.3g}"


def teacher_macs(d):
    """The training MACs of the dense teacher a run given the "both" run's teacher by path
    distils from (its report counts only the teacher's forward passes); 0 for runs that
    train their own (their rows count it)."""
    if os.path.basename(d).split("-")[0] not in ("fixed", "teacher", "only", "fixednowarm", "fixedsoft", "fixedproj", "fixedsearched"):
        return 0
    both = os.path.join(out, "both-" + os.path.basename(d).split("-")[-1], "report.json")
    if not os.path.isfile(both):
        return 0
    for row in json.load(open(both))["rows"]:
        for s in row.get("compute") or []:
            if s.get("name") == "dense":
                return s.get("macs", 0)
    return 0


def rows_of(rs, variant, budget):
    out = []
    for d, r in rs:
        for x in r["rows"]:
            if x["variant"] == variant and x["budget"] == budget:
                x = dict(x, teacher_macs=teacher_macs(d))
                p = os.path.join(d, "budgets", budget, "extracted", "manifest.json")
                if os.path.isfile(p):
                    x["chose_trained"] = json.load(open(p)).get("chose_trained", False)
                out.append(x)
    return out


print("### Every budget: extracted + fine-tune against the baselines (same teacher)\n")
print("| budget | variant | model | unique params | test accuracy (%) | training MACs | wall (s) | chose a trained subnet |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
for b in BUDGETS:
    for v, label in VARIANTS:
        rs = reports(v)
        models = ["extracted+finetune"]
        if v in ("both", "fixed", "only", "fixeddense", "fixednowarm", "fixedsoft", "fixedproj", "fixedsearched"):
            models += ["scratch, equal steps", "dense -> prune (Taylor) -> fine-tune"]
        for m in models:
            rr = rows_of(rs, m, b)
            if not rr:
                continue
            chose = f"{sum(bool(x.get('chose_trained')) for x in rr)} of {len(rr)}" if v in ("fixed", "fixedalone", "only", "fixeddense", "fixednowarm", "fixedsoft", "fixedproj", "fixedsearched") and m == "extracted+finetune" else ""
            print(f"| {b} | {label} | {m} | {st.mean(x['unique_params'] for x in rr):,.0f} | {ms([x['test_accuracy'] for x in rr])} | "
                  f"{si(st.mean(macs(x) + x['teacher_macs'] for x in rr))} | {st.mean(wall(x) for x in rr):,.0f} | {chose} |")

print("\n### Differences per seed (extracted + fine-tune minus the baseline of the same run)\n")
print("| budget | variant | − scratch, equal steps | − dense → prune → fine-tune |")
print("| --- | --- | ---: | ---: |")
for b in BUDGETS:
    for v, label in VARIANTS:
        if v not in ("both", "fixed", "only", "fixeddense", "fixednowarm", "fixedsoft", "fixedproj", "fixedsearched") or not reports(v):
            continue
        cells = []
        for base in ["scratch, equal steps", "dense -> prune (Taylor) -> fine-tune"]:
            d = []
            for dd, r in reports(v):
                x = [y["test_accuracy"] for y in r["rows"] if y["budget"] == b and y["variant"] == "extracted+finetune"]
                z = [y["test_accuracy"] for y in r["rows"] if y["budget"] == b and y["variant"] == base]
                if x and z:
                    d.append(x[0] - z[0])
            cells.append(ms(d, fmt="{:+.2f}"))
        print(f"| {b} | {label} | " + " | ".join(cells) + " |")

print("\n### The supernet's subnets against the dense model trained alone (equal training MACs)\n")
print("| variant | largest | middle | smallest | dense model alone | largest − dense |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
pat = re.compile(r"(largest|middle|smallest) \([^)]*\) ([0-9.]+)%")
for v, label in VARIANTS:
    acc = {"largest": [], "middle": [], "smallest": []}
    dense, diff = [], []
    for d, r in reports(v):
        for n in r["notes"]:
            if n.startswith("supernet subnets, test accuracy"):
                for name, a in pat.findall(n):
                    acc[name].append(float(a) / 100)
        p = os.path.join(d, "dense", "result.json")
        if not os.path.isfile(p):  # the teacher of "teacher" runs is the "both" run's dense model
            p = os.path.join(out, "both-" + os.path.basename(d).split("-")[-1], "dense", "result.json")
        if os.path.isfile(p):
            dense.append(json.load(open(p))["test_accuracy"])
            if acc["largest"]:
                diff.append(acc["largest"][-1] - dense[-1])
    print(f"| {label} | {ms(acc['largest'])} | {ms(acc['middle'])} | {ms(acc['smallest'])} | {ms(dense)} | {ms(diff, fmt='{:+.2f}')} |")

print("\n### Compute for the three budgets (new default, mean over seeds)\n")
print("| | shared (once) | per budget | total training MACs | wall (s) | break-even budgets |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for v, label in VARIANTS:
    if v not in ("both", "fixed", "only", "fixeddense", "fixednowarm", "fixedsoft", "fixedproj", "fixedsearched"):
        continue
    tots = []
    for d, r in reports(v):
        t = r.get("compute_total")
        if not t:  # a run without the scratch rows: the pipeline's side from its rows
            shared, per, secs = {}, [], 0.0
            for x in r["rows"]:
                if x["variant"] != "extracted+finetune":
                    continue
                own = 0.0
                for s in x.get("compute") or []:
                    if s.get("shared"):
                        shared[s["name"]] = s
                    else:
                        own += s.get("macs", 0)
                        secs += s.get("seconds", 0)
                per.append(own)
            if not per:
                continue
            sh = sum(s.get("macs", 0) for s in shared.values())
            t = {"pipeline_shared_macs": sh, "pipeline_per_budget_macs": st.mean(per), "pipeline_train_macs": sh + sum(per),
                 "pipeline_wall_seconds": secs + sum(s.get("seconds", 0) for s in shared.values()), "break_even_budgets": 0}
        t = dict(t)
        for k in ("pipeline_shared_macs", "pipeline_train_macs", "alternative_shared_macs", "alternative_train_macs"):
            if k in t:  # the teacher given by path, shared by both sides
                t[k] += teacher_macs(d)
        tots.append(t)
    if not tots:
        continue
    sides = [("pipeline", f"{label}: pipeline (dense teacher + supernet + 3 × extraction and fine-tune)")]
    if all("alternative_train_macs" in t for t in tots):
        sides.append(("alternative", f"{label}: 3 × scratch, equal steps (+ the same dense teacher)"))
    for side, name in sides:
        m = lambda k: st.mean(t[f"{side}_{k}"] for t in tots)
        be = ", ".join(str(t["break_even_budgets"] or "never") for t in tots) if side == "pipeline" and len(sides) > 1 else ""
        print(f"| {name} | {si(m('shared_macs'))} | {si(m('per_budget_macs'))} | {si(m('train_macs'))} | {m('wall_seconds'):,.0f} | {be} |")
