#!/usr/bin/env python3
# Usage: ncu --csv --page raw --cache-control none --clock-control none \
#          --metrics gpu__time_duration.sum --launch-skip 2500 --launch-count 1600 \
#          build/bin/lapis train-graph --dataset zinc --device cuda --epochs 1 > ncu.csv
#        python3 bench/ncu_step_summary.py ncu.csv
"""Summarise `ncu --csv --page raw --metrics gpu__time_duration.sum` output: launches and GPU
time per training step (steps delimited by the multi-tensor Adam kernel) and per kernel name."""
import csv, sys, collections
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
hdr = None
for i, r in enumerate(rows):
    if "Kernel Name" in r and "gpu__time_duration.sum" in r:
        hdr = i; break
if hdr is None:
    print("no header; first lines:"); print("\n".join(",".join(r) for r in rows[:20])); sys.exit(0)
h = rows[hdr]; kn = h.index("Kernel Name"); mv = h.index("gpu__time_duration.sum")
unit = rows[hdr + 1][mv] if len(rows) > hdr + 1 else ""
scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}.get(unit, 1.0)
launches = []
for r in rows[hdr + 2:]:
    if len(r) <= max(kn, mv): continue
    try: launches.append((r[kn], float(r[mv].replace(",", "")) * scale))
    except ValueError: pass
print(f"unit {unit}, {len(launches)} launches, total {sum(t for _, t in launches):.1f} us")
steps, cur = [], []
for name, t in launches:
    cur.append((name, t))
    if "adam" in name.lower():
        steps.append(cur); cur = []
for s in steps[1:]:
    print(f"step: {len(s)} launches, GPU {sum(t for _, t in s):.1f} us")
agg = collections.defaultdict(lambda: [0, 0.0])
ref = steps[1] if len(steps) > 1 else launches
for name, t in ref:
    short = name.split("(")[0][:70]
    agg[short][0] += 1; agg[short][1] += t
print("| kernel (one step) | launches | us |")
for k, (c, t) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"| {k} | {c} | {t:.1f} |")
