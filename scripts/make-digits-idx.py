#!/usr/bin/env python3
"""Writes the handwritten digits that Debian's python3-sklearn ships
(sklearn/datasets/data/digits.csv.gz: 1,797 images of 8x8, values 0..16, from the UCI
optical recognition of handwritten digits set) as an IDX pair with a classes.txt, so that
`ofa train --data DIR` learns digits that are not Fashion-MNIST:

    python3 scripts/make-digits-idx.py /tmp/digits-idx
    ofa train --data /tmp/digits-idx --config configs/digits.yaml --out runs/digits

The last 297 images are the test split; pixels are scaled 0..16 -> 0..255.
"""
import gzip
import os
import struct
import sys

SRC = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


def write_idx(path, dims, data):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, len(dims)))
        for d in dims:
            f.write(struct.pack(">I", d))
        f.write(bytes(data))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "digits-idx"
    rows = [list(map(float, line.split(","))) for line in gzip.open(SRC, "rt") if line.strip()]
    pixels = [[round(v * 255 / 16) for v in r[:64]] for r in rows]
    labels = [int(r[64]) for r in rows]
    os.makedirs(out, exist_ok=True)
    n_test = 297
    for prefix, lo, hi in (("train", 0, len(rows) - n_test), ("t10k", len(rows) - n_test, len(rows))):
        write_idx(os.path.join(out, prefix + "-images-idx3-ubyte.gz"), [hi - lo, 8, 8], sum(pixels[lo:hi], []))
        write_idx(os.path.join(out, prefix + "-labels-idx1-ubyte.gz"), [hi - lo], labels[lo:hi])
    with open(os.path.join(out, "classes.txt"), "w") as f:
        f.write("zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n")
    print(f"{out}: {len(rows) - n_test} train / {n_test} test images of 8x8")


if __name__ == "__main__":
    main()
