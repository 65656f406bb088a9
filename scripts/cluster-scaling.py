#!/usr/bin/env python3
"""The scaling model of docs/CLUSTER.md: predicted data-parallel efficiency per node count.

A step on N nodes = compute (the node's share of the global batch) + gradient exchange
(no overlap: train/ sums gradients after each subnet's backward pass). Per subnet trained
in a step the exchange moves one float32 gradient record of P parameters per node:
  allgather (what ofa does, bit-identical to one process): (N-1) * (alpha + 4P/beta)
  ring allreduce (the usual alternative, not bit-identical): 2(N-1)/N * 4P/beta + 2(N-1) alpha
Efficiency = compute / (compute + exchange). Inputs are the measurements of
scripts/mpi-speed.sh (samples/s per core) and the reference model's parameter count; the
5M-parameter model's compute per example is scaled by its parameter count (a ViT's MACs per
example grow with its parameters at a fixed token count).

  scripts/cluster-scaling.py --samples-per-core 271 --params 205066
"""
import argparse

p = argparse.ArgumentParser()
p.add_argument("--samples-per-core", type=float, required=True, help="training samples/s per core (3 subnets per step)")
p.add_argument("--params", type=int, default=205066, help="reference model parameters")
p.add_argument("--big", type=int, default=5_000_000, help="the larger model's parameters")
p.add_argument("--cores", type=int, default=16, help="cores per node")
p.add_argument("--batch-per-node", type=int, default=64)
p.add_argument("--subnets", type=int, default=3, help="subnets trained per step (sandwich: largest, smallest, one random)")
p.add_argument("--alpha-us", type=float, default=50, help="per-message latency, microseconds (10 GbE, TCP)")
p.add_argument("--beta-gbs", type=float, default=1.25, help="bandwidth, GB/s (10 GbE)")
a = p.parse_args()

alpha, beta = a.alpha_us * 1e-6, a.beta_gbs * 1e9
print(f"network: alpha {a.alpha_us:g} us, beta {a.beta_gbs:g} GB/s; {a.cores} cores and {a.batch_per_node} examples per node and step; "
      f"{a.subnets} subnets per step (every one exchanging all P gradients: an upper bound)")
print()
print("| model | params | compute/step | nodes | global batch | allgather/step | efficiency (allgather) | ring allreduce/step | efficiency (allreduce) |")
print("|---|---|---|---|---|---|---|---|---|")
for name, params in (("reference", a.params), (f"{a.big / 1e6:g}M", a.big)):
    per_example = (params / a.params) / a.samples_per_core  # core-seconds
    compute = a.batch_per_node * per_example / a.cores
    rec = 4 * params / beta
    for n in (1, 4, 16, 64):
        ag = a.subnets * (n - 1) * (alpha + rec)
        ar = a.subnets * (2 * (n - 1) / n * rec + 2 * (n - 1) * alpha)
        print(f"| {name} | {params:,} | {1000 * compute:.1f} ms | {n} | {n * a.batch_per_node} | {1000 * ag:.1f} ms | "
              f"{compute / (compute + ag):.2f} | {1000 * ar:.1f} ms | {compute / (compute + ar):.2f} |")
for name, params in (("reference", a.params), (f"{a.big / 1e6:g}M", a.big)):
    compute = a.batch_per_node * (params / a.params) / a.samples_per_core / a.cores
    rec = 4 * params / beta
    # half efficiency: exchange == compute
    n_ag = 1 + compute / (a.subnets * (alpha + rec))
    n_ar = next((n for n in range(2, 100000) if a.subnets * (2 * (n - 1) / n * rec + 2 * (n - 1) * alpha) >= compute), None)
    print(f"\n{name}: efficiency falls to 0.5 at about {n_ag:.0f} nodes with the allgather, "
          + (f"{n_ar} with a ring allreduce" if n_ar else "never below 100000 nodes with a ring allreduce"))
