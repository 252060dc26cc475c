#!/usr/bin/env python3
"""Peer for bench_graph_attention: the attention part of the Dwivedi & Bresson layer written
with PyTorch Geometric, as in ../shared/bench/pyg_gt.py (GTLayer.forward from Q/K/V/E to hh and
e_out), timed forward + backward with CUDA events on the same shapes as bench_graph_attention:
a ZINC-like batch (128 molecule-like graphs, H=8, D=8), a large random graph (1M nodes, 10M
edges, H=8, D=8 and 16) and a power-law one of the same size (D=8). Prints the same markdown table (GB/s from the same minimal byte count as
the fused Lapis kernels, and % of a 1 GiB device-to-device copy measured in the same run).
    python3 pyg_attention.py [--nodes 1000000] [--edges 10000000] [--repeats 20] [--cases zinc random power-law]"""
import argparse, math, random, statistics
import torch
from torch_geometric.utils import scatter


def time_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ms.append(a.elapsed_time(b))
    return statistics.median(ms)


def zinc_like(graphs):
    rng = random.Random(1); src, dst, base = [], [], 0
    for _ in range(graphs):
        n = rng.randint(9, 37)
        pairs = [(i, rng.randint(max(0, i - 3), i - 1)) for i in range(1, n)]
        for _ in range(n // 8):
            i, j = rng.randrange(n), rng.randrange(n)
            if i != j: pairs.append((i, j))
        for i, j in pairs:
            src += [base + i, base + j]; dst += [base + j, base + i]
        base += n
    return base, torch.tensor([src, dst], dtype=torch.long)


def attention(Q, K, V, E, ei, n, d):
    # GTLayer.forward of pyg_gt.py, attention part only.
    src, dst = ei
    sc = K[src] * Q[dst] / math.sqrt(d) * E
    e_out = sc
    w = torch.exp(sc.sum(-1, keepdim=True).clamp(-5, 5))
    wV = scatter(V[src] * w, dst, 0, dim_size=n, reduce='sum')
    z = scatter(w, dst, 0, dim_size=n, reduce='sum')
    return wV / (z + 1e-6), e_out


def bench_case(rows, name, n, ei, h, d, dev, warmup, repeats):
    e = ei.size(1); g = torch.Generator(device=dev).manual_seed(3)
    rnd = lambda *s, sd=1.0: (torch.randn(*s, device=dev, generator=g) * sd).requires_grad_()
    Q, K, V = rnd(n, h, d, sd=0.5), rnd(n, h, d, sd=0.5), rnd(n, h, d)
    E = rnd(e, h, d)
    go, gt = torch.randn(n, h, d, device=dev), torch.randn(e, h, d, device=dev)
    ei = ei.to(dev)

    def fwd():
        with torch.no_grad():
            attention(Q, K, V, E, ei, n, d)

    def fwd_bwd():
        out, eo = attention(Q, K, V, E, ei, n, d)
        torch.autograd.backward([out, eo], [go, gt])

    f, nf, ef, hd = 4.0, float(n), float(e), h * d
    graph_csr, graph_csc = 4.0 * (nf + 1 + ef), 4.0 * (nf + 1 + 2 * ef)
    fwd_bytes = f * (3 * nf * hd + ef * hd) + graph_csr + f * (nf * hd + ef * hd + ef * h + nf * h)
    bwd_bytes = (f * (6 * nf * hd + 2 * ef * hd + ef * h + nf * h) + graph_csr + graph_csc
                 + f * (3 * nf * hd + ef * hd))
    shape = f'N={n} E={e} H={h} D={d}'
    rows.append((name, 'pyg fwd', shape, time_ms(fwd, warmup, repeats), fwd_bytes))
    rows.append((name, 'pyg fwd+bwd', shape, time_ms(fwd_bwd, warmup, repeats), fwd_bytes + bwd_bytes))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--nodes', type=int, default=1000000); ap.add_argument('--edges', type=int, default=10000000)
    ap.add_argument('--zinc-graphs', type=int, default=128); ap.add_argument('--repeats', type=int, default=20)
    ap.add_argument('--cases', nargs='+', choices=['zinc', 'random', 'power-law'],
                    default=['zinc', 'random', 'power-law'])
    a = ap.parse_args(); dev = torch.device('cuda'); torch.manual_seed(0)
    print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)
    src = torch.ones(1 << 28, device=dev); dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), 3, a.repeats)
    copy_gbs = 2 * src.numel() * 4 / (ms * 1e-3) / 1e9
    print(f'copy ceiling (1024 MiB, device to device): {copy_gbs:.1f} GB/s (read + write)\n')
    del src, dst
    rows = []
    if 'zinc' in a.cases:
        n, ei = zinc_like(a.zinc_graphs)
        bench_case(rows, 'zinc-like', n, ei, 8, 8, dev, 3, a.repeats)
    if a.nodes > 0:
        g = torch.Generator().manual_seed(2)
        ei = torch.randint(0, a.nodes, (2, a.edges), generator=g)
        for d in (8, 16) if 'random' in a.cases else ():
            bench_case(rows, 'large random', a.nodes, ei, 8, d, dev, 3, a.repeats)
            torch.cuda.empty_cache()
    if a.nodes > 0 and 'power-law' in a.cases:
        # Skewed degrees as bench_graph_attention's power-law case (same law, 1/(i+1)^0.9 over a
        # random relabelling; a different random stream, so the graphs match in distribution).
        w = torch.arange(1, a.nodes + 1, dtype=torch.float64).pow(-0.9)
        rank = torch.multinomial(w, a.edges, replacement=True, generator=g)
        label = torch.randperm(a.nodes, generator=g)
        ei = torch.stack([torch.randint(0, a.nodes, (a.edges,), generator=g), label[rank]])
        max_in = int(torch.bincount(ei[1], minlength=a.nodes).max())
        bench_case(rows, f'large power-law (max in-degree {max_in})', a.nodes, ei, 8, 8, dev, 3,
                   a.repeats)
    print('| graph | path | shape | time (ms) | GB/s (minimal bytes) | % of copy |')
    print('|---|---|---|---:|---:|---:|')
    for name, path, shape, ms, b in rows:
        gbs = b / (ms * 1e-3) / 1e9
        print(f'| {name} | {path} | {shape} | {ms:.4f} | {gbs:.1f} | {100 * gbs / copy_gbs:.1f} |')


if __name__ == '__main__':
    main()
