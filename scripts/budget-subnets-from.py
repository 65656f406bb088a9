#!/usr/bin/env python3
"""Writes a configuration whose supernet trains, at each budget, the subnet an earlier
`ofa run` extracted there (sampler.budget_subnets, PreNAS's preferred architectures chosen
before training):

    python3 scripts/budget-subnets-from.py RUN_DIR BASE_CONFIG OUT_CONFIG [BUDGET...]

RUN_DIR is the earlier run's --out; the budgets (default: 2x 4x 8x, the order of the new
run's run.budgets) name its budgets/<budget>/extracted/manifest.json, whose layers (the
supernet layer each came from, its heads and neurons) give the subnet in the supernet's
layer numbers. BASE_CONFIG is copied with sampler.kind budgets and the subnets added."""
import json, os, sys

import yaml

run, base, out = sys.argv[1:4]
budgets = sys.argv[4:] or ["2x", "4x", "8x"]
subnets = []
for b in budgets:
    path = os.path.join(run, "budgets", b, "extracted", "manifest.json")
    layers = json.load(open(path)).get("layers") or []
    if not layers:
        sys.exit(f"{path}: no layers")
    subnets.append({"layers": sorted(({"layer": l["supernet_layer"], "heads": len(l["heads"]), "mlp": len(l["neurons"])} for l in layers),
                                     key=lambda l: l["layer"])})
cfg = yaml.safe_load(open(base))
cfg.setdefault("sampler", {})
cfg["sampler"]["kind"] = "budgets"
cfg["sampler"]["budget_subnets"] = subnets
cfg.setdefault("run", {})["budgets"] = budgets
with open(out, "w") as f:
    f.write(f"# {base} with the subnets {run} extracted at {', '.join(budgets)} (scripts/budget-subnets-from.py)\n")
    yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None)
for b, s in zip(budgets, subnets):
    print(b, ",".join(f"{l['layer']}:h{l['heads']}m{l['mlp']}" for l in s["layers"]))
