#!/usr/bin/env python3
"""Measures the sgemm peak of this machine: OpenBLAS's cblas_sgemm on 1024 x 1024 x 1024
float32 matrices with 2 threads (override with --n and --threads), best of --repeats runs.
Prints one JSON object: {"sgemm_n":..., "threads":..., "gflops":...}. bench/compare.sh
uses it as the machine's peak for the in-step GFLOP/s of training.
Needs Debian's libopenblas0 (libopenblas-dev); nothing else (ctypes only)."""
import argparse
import ctypes
import ctypes.util
import json
import time

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=1024)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--repeats", type=int, default=10)
args = p.parse_args()

lib = None
for name in ("libopenblas.so.0", ctypes.util.find_library("openblas") or "libopenblas.so"):
    try:
        lib = ctypes.CDLL(name)
        break
    except OSError:
        pass
if lib is None:
    raise SystemExit("sgemm_peak: OpenBLAS not found (Debian package libopenblas0 or libopenblas-dev)")
lib.openblas_set_num_threads(args.threads)
n = args.n
Mat = ctypes.c_float * (n * n)
a, b, c = Mat(), Mat(), Mat()
for i in range(0, n * n, 7):  # some non-zero values
    a[i] = 0.5
    b[i] = 0.25
# cblas_sgemm(RowMajor=101, NoTrans=111, NoTrans=111, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
f = lib.cblas_sgemm
f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
              ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
              ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
f.restype = None
best = float("inf")
for r in range(args.repeats + 2):  # two warm-up runs
    t0 = time.perf_counter()
    f(101, 111, 111, n, n, n, 1.0, a, n, b, n, 0.0, c, n)
    dt = time.perf_counter() - t0
    if r >= 2:
        best = min(best, dt)
print(json.dumps({"sgemm_n": n, "threads": args.threads, "gflops": 2 * n**3 / best / 1e9}))
