#!/usr/bin/env python3
"""Packs the ZINC 12k subset (TU-format text export) into data/zinc/zinc_subset.bin.gz.

Usage: python3 scripts/make_zinc_bundle.py [SOURCE_DIR] [OUTPUT]
  SOURCE_DIR  folder holding ZINC_subset_{train,val,test}/ (default ../shared/data/zinc/derived)
  OUTPUT      default data/zinc/zinc_subset.bin.gz

Python 3 standard library only. The output is deterministic (gzip mtime 0, no file name).

Bundle layout after gunzip (little endian), read by graph/zinc.cpp:
  8 bytes   magic "LAPISZNC"
  u32       version (1)
  then for each split in the order train, val, test:
    u32 G (graphs), u32 total_nodes, u32 total_bonds
    u8[G]   nodes per graph
    u8[G]   bonds per graph (undirected: each bond once)
    f32[G]  regression target (graph_attributes of the export)
    u8[total_nodes]  atom type 0..27, graph by graph
    u8[total_bonds]  bond end i (node id local to its graph, 0-based)
    u8[total_bonds]  bond end j
    u8[total_bonds]  bond type 1..3 (1 single, 2 double, 3 triple; 0 is the benchmark's "no bond")
Bonds are the lines of _A.txt whose reverse appears later; the script checks that every
directed line has its reverse with the same bond label.
"""
import gzip
import io
import os
import struct
import sys

SPLITS = ("train", "val", "test")


def read_text(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            if p.endswith(".gz"):
                with gzip.open(p, "rt") as f:
                    return f.read()
            with open(p, "r") as f:
                return f.read()
    raise SystemExit("missing file: %s(.gz)" % path)


def rows(text):
    return [line.replace(",", " ").split() for line in text.splitlines() if line.strip()]


def pack_split(folder, split):
    prefix = os.path.join(folder, "ZINC_subset_%s" % split, "ZINC_subset_%s_" % split)
    indicator = [int(r[0]) for r in rows(read_text(prefix + "graph_indicator.txt"))]
    atoms = [int(r[0]) for r in rows(read_text(prefix + "node_labels.txt"))]
    edges = [(int(r[0]), int(r[1])) for r in rows(read_text(prefix + "A.txt"))]
    bond_labels = [int(r[0]) for r in rows(read_text(prefix + "edge_labels.txt"))]
    targets = [float(r[0]) for r in rows(read_text(prefix + "graph_attributes.txt"))]
    assert len(atoms) == len(indicator), "node_labels vs graph_indicator"
    assert len(bond_labels) == len(edges), "edge_labels vs A"
    num_graphs = len(targets)
    assert indicator == sorted(indicator) and indicator[-1] == num_graphs
    first = [None] * (num_graphs + 1)  # first global node id of each graph
    sizes = [0] * num_graphs
    for node, g in enumerate(indicator, start=1):
        if first[g] is None:
            first[g] = node
        sizes[g - 1] += 1
    assert all(0 < s < 256 for s in sizes)
    assert all(0 <= a < 28 for a in atoms)
    label = {}
    for (u, v), t in zip(edges, bond_labels):
        assert indicator[u - 1] == indicator[v - 1] and u != v
        assert (u, v) not in label, "duplicate edge %d-%d" % (u, v)
        label[(u, v)] = t
    bonds = [[] for _ in range(num_graphs)]
    for (u, v), t in zip(edges, bond_labels):
        assert label.get((v, u)) == t, "edge %d-%d has no reverse with the same label" % (u, v)
        assert t in (1, 2, 3)
        if u < v:
            g = indicator[u - 1]
            bonds[g - 1].append((u - first[g], v - first[g], t))
    assert all(len(b) < 256 for b in bonds)
    out = io.BytesIO()
    total_bonds = sum(len(b) for b in bonds)
    out.write(struct.pack("<III", num_graphs, len(atoms), total_bonds))
    out.write(bytes(sizes))
    out.write(bytes(len(b) for b in bonds))
    out.write(struct.pack("<%df" % num_graphs, *targets))
    out.write(bytes(atoms))
    for k in range(3):
        out.write(bytes(bond[k] for b in bonds for bond in b))
    print("%s: %d graphs, %d nodes, %d bonds (%d directed edges)"
          % (split, num_graphs, len(atoms), total_bonds, 2 * total_bonds))
    return out.getvalue()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    source = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        repo, "..", "shared", "data", "zinc", "derived")
    output = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        repo, "data", "zinc", "zinc_subset.bin.gz")
    payload = b"LAPISZNC" + struct.pack("<I", 1)
    for split in SPLITS:
        payload += pack_split(source, split)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    tmp = output + ".tmp"
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(payload)
    os.replace(tmp, output)
    print("wrote %s (%d bytes, %d uncompressed)" % (output, os.path.getsize(output), len(payload)))


if __name__ == "__main__":
    main()
