#!/usr/bin/env python3
"""Writes the `vmm` binary's link order (order.txt) from fntrace runs.

    order.py BINARY OUT GROUP=HITS[,HITS...] ...

BINARY is the binary the runs traced (for its symbol names); each HITS
file is one run's fntrace output. Functions come out in this order: the
ones the first run of the first group and the first run of the second
group both ran (every launch's common core), then each group's remaining
functions, group by group, each in the order its runs first ran them. So
the first group's runs (the built-in guest) find their code in one block,
the second's (Solo5) in the core plus the next block, and so on.
"""
import collections
import subprocess
import sys


def symbols(binary):
    names = collections.defaultdict(list)
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            names[int(parts[0], 16)].append(parts[2])
    return names


def hits(path):
    seen, order = set(), []
    for line in open(path):
        a = int(line, 16)
        if a not in seen:
            seen.add(a)
            order.append(a)
    return order


def main():
    binary, out, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    groups = [[hits(p) for p in spec.split("=", 1)[1].split(",") if p] for spec in specs]
    groups = [g for g in groups if g]
    if not groups:
        sys.exit("order.py: no runs")
    names = symbols(binary)
    core = set(groups[0][0]) & set(groups[1][0]) if len(groups) > 1 else set()
    order = [a for a in groups[0][0] if a in core]
    placed = set(order)
    for group in groups:
        for run in group:
            for a in run:
                if a not in placed:
                    placed.add(a)
                    order.append(a)
    rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
    with open(out, "w") as f:
        f.write("# The vmm binary's link order (vmm/cli/build.rs): made by\n")
        f.write("# vmm/cli/link-order/regen.sh; do not edit by hand.\n")
        f.write(f"# {rustc}\n")
        for a in order:
            for n in names.get(a, []):
                f.write(n + "\n")
    print(f"order.py: {len(order)} functions ({len(core)} in the common core)")


main()
