#!/usr/bin/python3
"""CPU time of the benchmarked processes, read from /proc, by component.

    cpu.py snapshot SPEC...          one line per component: LABEL<TAB>seconds
    cpu.py delta BEFORE AFTER        AFTER - BEFORE, the same format

SPEC is LABEL=PIDFILE (the first line of PIDFILE is the PID). A component is
the process and all its descendants, each counted with utime + stime +
cutime + cstime: a child that exits between two snapshots (a PostgreSQL
backend, a gunicorn worker recycled) moves its time into its parent's
cutime, so the sum over the tree counts it once either way. Several specs
with one label add up (the worker supervisors make one "workers" column).
A PID file that names no live process counts 0.
"""
import os
import sys

from procfs import pid_from, stats

HZ = os.sysconf("SC_CLK_TCK")


def procs():
    """{pid: (ppid, ticks)} of every process; ticks = the four times summed."""
    out = {}
    for pid, fields in stats():
        out[pid] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return out


def snapshot(specs):
    table = procs()
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    order, total = [], {}
    for spec in specs:
        label, path = spec.split("=", 1)
        if label not in total:
            order.append(label)
            total[label] = 0
        pid = pid_from(path)
        if pid is None or pid not in table:
            continue
        todo = [pid]
        while todo:
            p = todo.pop()
            todo.extend(kids.get(p, []))
            total[label] += table[p][1]
    return [(label, total[label] / HZ) for label in order]


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            label, secs = line.rstrip("\n").split("\t")
            rows.append((label, float(secs)))
    return rows


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "snapshot":
        for label, secs in snapshot(args):
            print(f"{label}\t{secs:.2f}")
    elif cmd == "delta" and len(args) == 2:
        before = dict(read(args[0]))
        for label, secs in read(args[1]):
            print(f"{label}\t{secs - before.get(label, 0.0):.2f}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
