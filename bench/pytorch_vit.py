#!/usr/bin/env python3
"""The reference ViT in PyTorch, timed like `ofa bench` (synthetic data, same shapes).

Prints one JSON object: training and inference samples/s (median of runs) and peak RSS.
Runs with Debian's python3-torch; `--threads 2` matches a 2-core machine.

    python3 bench/pytorch_vit.py --threads 2 [--depth 4 --heads 4 --mlp 256]
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, dh, mlp):
        super().__init__()
        self.h, self.dh = heads, dh
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * heads * dh)
        self.proj = nn.Linear(heads * dh, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, mlp)
        self.fc2 = nn.Linear(mlp, d)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-1, -2) / self.dh ** 0.5).softmax(-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(b, t, self.h * self.dh))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class ViT(nn.Module):
    def __init__(self, depth, heads, mlp, d=64, dh=16, patch=7, size=28, classes=10, chans=1):
        super().__init__()
        self.patch = nn.Conv2d(chans, d, patch, patch)
        n = (size // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, d))
        self.blocks = nn.ModuleList(Block(d, heads, dh, mlp) for _ in range(depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--input", default="1x28x28", help="channels x height x width (square)")
    ap.add_argument("--patch", type=int, default=7)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c, h, w = (int(v) for v in a.input.split("x"))
    m = ViT(a.depth, a.heads, a.mlp, patch=a.patch, size=h, chans=c)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x = torch.randn(a.batch, c, h, w)
    y = torch.randint(0, 10, (a.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    train = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        for _ in range(a.steps):
            step()
        train.append(a.steps * a.batch / (time.perf_counter() - t))
    xi = torch.randn(a.infer_batch, c, h, w)
    m.eval()
    infer = []
    with torch.no_grad():
        m(xi)
        for _ in range(a.repeats):
            t = time.perf_counter()
            for _ in range(a.steps):
                m(xi)
            infer.append(a.steps * a.infer_batch / (time.perf_counter() - t))
    print(json.dumps({
        "framework": "pytorch " + torch.__version__, "threads": a.threads,
        "depth": a.depth, "heads": a.heads, "mlp": a.mlp, "input": a.input, "patch": a.patch,
        "train_batch": a.batch, "train_samples_per_sec": statistics.median(train), "train_runs": train,
        "infer_batch": a.infer_batch, "infer_samples_per_sec": statistics.median(infer), "infer_runs": infer,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
