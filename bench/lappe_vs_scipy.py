#!/usr/bin/python3
"""LapPE side by side: Lapis (bench_lappe) vs numpy/scipy on the same graphs and machine.

  /usr/bin/python3 bench/lappe_vs_scipy.py --bin build/bin/bench_lappe zinc
  /usr/bin/python3 bench/lappe_vs_scipy.py --bin build/bin/bench_lappe grid --side 300
  /usr/bin/python3 bench/lappe_vs_scipy.py --bin build/bin/bench_lappe grid --side 1000

zinc: numpy.linalg.eigh per graph on the dense L (k=8), all 12k ZINC subset graphs.
grid: scipy.sparse.linalg.eigsh(L, k=k+1, which='SA', tol=1e-4) on a side x side grid plus
`extra` random edges drawn with the same SplitMix64 stream as bench_lappe (lapis::random_bits).
Prints time, peak memory (getrusage of this process) and the eigen residuals ||L u - lambda u||.
"""
import argparse, gzip, os, resource, subprocess, sys, time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def random_bits(seed, counter):
    with np.errstate(over="ignore"):
        return mix64(mix64(np.uint64(seed)) ^ (counter.astype(np.uint64) *
                                               np.uint64(0xD1B54A32D192ED03)))


def laplacian(n, r, c):
    m = r != c
    A = sp.coo_matrix((np.ones(m.sum()), (r[m], c[m])), shape=(n, n)).tocsr()
    A = A + A.T
    A.data[:] = 1.0
    d = np.asarray(A.sum(1)).ravel()
    dis = 1.0 / np.sqrt(np.maximum(d, 1))
    return sp.identity(n, format="csr") - sp.diags(dis) @ A @ sp.diags(dis)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_lines(path):
    if not os.path.exists(path):
        path += ".gz"
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rt") as f:
        return [l for l in f.read().split("\n") if l.strip()]


def zinc(args):
    graphs = []
    for split in ("train", "val", "test"):
        name = f"ZINC_subset_{split}"
        d = os.path.join(args.dir, name)
        ind = np.array(read_lines(os.path.join(d, name + "_graph_indicator.txt")), dtype=int) - 1
        A = np.array([l.split(",") for l in read_lines(os.path.join(d, name + "_A.txt"))],
                     dtype=int) - 1
        first = np.searchsorted(ind, np.arange(ind.max() + 1))
        counts = np.bincount(ind)
        eg = ind[A[:, 0]]
        order = np.argsort(eg, kind="stable")
        A, eg = A[order], eg[order]
        starts = np.searchsorted(eg, np.arange(len(counts) + 1))
        for g in range(len(counts)):
            e = A[starts[g]:starts[g + 1]] - first[g]
            graphs.append((counts[g], e[:, 0], e[:, 1]))
    dense = [laplacian(n, r, c).toarray() for n, r, c in graphs]
    t = time.time()
    for L in dense:
        w, v = np.linalg.eigh(L)
        pe = v[:, 1:args.k + 1]
    t = time.time() - t
    print(f"| numpy eigh per graph (k={args.k}) | {len(graphs)} graphs | {t:.3f} s | "
          f"peak {peak_mb():.0f} MB |")
    if args.bin:
        print(subprocess.run([args.bin, "--threads", str(args.threads), "zinc", "--dir", args.dir,
                              "--k", str(args.k)], capture_output=True, text=True).stdout)


def grid(args):
    s = args.side
    n = s * s
    idx = np.arange(n).reshape(s, s)
    e = np.arange(args.extra, dtype=np.uint64)
    er = (random_bits(12345, 2 * e) % np.uint64(n)).astype(np.int64)
    ec = (random_bits(12345, 2 * e + np.uint64(1)) % np.uint64(n)).astype(np.int64)
    r = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel(), er])
    c = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel(), ec])
    L = laplacian(n, r, c)
    t = time.time()
    w, v = sla.eigsh(L, k=args.k + 1, which="SA", tol=args.tol)
    t = time.time() - t
    order = np.argsort(w)
    w, v = w[order], v[:, order]
    res = np.linalg.norm(L @ v - v * w, axis=0)
    print(f"| scipy eigsh k={args.k + 1} SA tol={args.tol} | N={n} nnz={L.nnz} | {t:.2f} s | "
          f"max residual {res[1:].max():.1e} | peak {peak_mb():.0f} MB |")
    print("scipy eigenvalues:", " ".join(f"{x:.6f}" for x in w[1:]))
    if args.bin:
        print(subprocess.run([args.bin, "--threads", str(args.threads), "grid", "--side", str(s),
                              "--extra", str(args.extra), "--k", str(args.k)],
                             capture_output=True, text=True).stdout)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="", help="path to bench_lappe (runs it after scipy)")
    p.add_argument("--threads", type=int, default=2)
    sub = p.add_subparsers(dest="case", required=True)
    z = sub.add_parser("zinc")
    z.add_argument("--dir", default="/work/shared/data/zinc/derived")
    z.add_argument("--k", type=int, default=8)
    g = sub.add_parser("grid")
    g.add_argument("--side", type=int, default=1000)
    g.add_argument("--extra", type=int, default=-1)
    g.add_argument("--k", type=int, default=10)
    g.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    if args.case == "zinc":
        zinc(args)
    else:
        if args.extra < 0:
            args.extra = args.side * args.side
        grid(args)


if __name__ == "__main__":
    main()
