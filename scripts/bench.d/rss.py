#!/usr/bin/python3
"""Memory of the benchmarked processes, read from /proc.

    rss.py snapshot SPEC...                      one sample, to stdout
    rss.py sample --flag F --out FILE [--interval S] SPEC...
                                                 a sample every S seconds (0.25)
                                                 while file F exists, appended to
                                                 FILE; runs until SIGTERM
    rss.py report IDLE_FILE SAMPLES_FILE         the idle and peak table

SPEC is LABEL=PIDFILE:MODE (the first line of PIDFILE is the PID):
  one   the process alone
  each  the process ("LABEL (supervisor)"), and each of its children on a
        row of its own ("LABEL copy 1", ... by PID: a worker's copies)
  tree  the process and all its descendants summed (PostgreSQL, gunicorn),
        with their number and also their PSS (shared pages split between
        the processes sharing them, so a sum that means something)
A sample line is: time, label, processes, RSS KiB, PSS KiB (tree only, else -).
"""
import os
import signal
import sys
import time

from procfs import pid_from, stats


def ppid_map():
    kids = {}
    for pid, fields in stats():
        if fields[0] == "Z":
            continue
        kids.setdefault(int(fields[1]), []).append(pid)
    return kids


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def alive(pid):
    return pid is not None and os.path.exists(f"/proc/{pid}")


def sample(specs):
    """[(label, procs, rss_kib, pss_kib or None)] for the specs that run."""
    out = []
    kids = None
    for spec in specs:
        label, rest = spec.split("=", 1)
        path, mode = rest.rsplit(":", 1)
        pid = pid_from(path)
        if not alive(pid):
            continue
        if mode == "one":
            rss = status_kib(pid, "VmRSS")
            if rss is not None:
                out.append((label, 1, rss, None))
        elif mode == "each":
            kids = kids if kids is not None else ppid_map()
            rss = status_kib(pid, "VmRSS")
            if rss is not None:
                out.append((f"{label} (supervisor)", 1, rss, None))
            for i, child in enumerate(sorted(kids.get(pid, [])), 1):
                rss = status_kib(child, "VmRSS")
                if rss is not None:
                    out.append((f"{label} copy {i}", 1, rss, None))
        elif mode == "tree":
            kids = kids if kids is not None else ppid_map()
            todo, n, rss_sum, pss_sum = [pid], 0, 0, 0
            while todo:
                p = todo.pop()
                todo.extend(kids.get(p, []))
                rss = status_kib(p, "VmRSS")
                if rss is None:
                    continue
                n += 1
                rss_sum += rss
                pss_sum += pss_kib(p)
            out.append((label, n, rss_sum, pss_sum))
        else:
            sys.exit(f"rss.py: unknown mode {mode!r} in {spec!r}")
    return out


def write(rows, f, now):
    for label, n, rss, pss in rows:
        f.write(f"{now:.2f}\t{label}\t{n}\t{rss}\t{'-' if pss is None else pss}\n")


def read(path):
    order, rows = [], {}
    try:
        with open(path) as f:
            for line in f:
                _, label, n, rss, pss = line.rstrip("\n").split("\t")
                if label not in rows:
                    order.append(label)
                    rows[label] = [0, 0, None]
                r = rows[label]
                r[0] = max(r[0], int(n))
                r[1] = max(r[1], int(rss))
                if pss != "-":
                    r[2] = max(r[2] or 0, int(pss))
    except FileNotFoundError:
        pass
    return order, rows


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f}"


def report(idle_path, peak_path):
    order_i, idle = read(idle_path)
    order_p, peak = read(peak_path)
    order = order_i + [x for x in order_p if x not in idle]
    print(f"{'process':<28} {'procs':>9} {'idle RSS':>9} {'peak RSS':>9} {'idle PSS':>9} {'peak PSS':>9}   (MiB)")
    for label in order:
        i = idle.get(label, [0, None, None])
        p = peak.get(label, [0, None, None])
        procs = f"{i[0]}/{p[0]}" if (i[0] > 1 or p[0] > 1) else "1"
        print(f"{label:<28} {procs:>9} {mib(i[1]):>9} {mib(p[1]):>9} {mib(i[2]):>9} {mib(p[2]):>9}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "snapshot":
        write(sample(args), sys.stdout, time.time())
    elif cmd == "report":
        report(args[0], args[1])
    elif cmd == "sample":
        flag = out = None
        interval = 0.25
        while args and args[0].startswith("--"):
            opt, val, args = args[0], args[1], args[2:]
            if opt == "--flag":
                flag = val
            elif opt == "--out":
                out = val
            elif opt == "--interval":
                interval = float(val)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with open(out, "a", buffering=1) as f:
            while True:
                if os.path.exists(flag):
                    write(sample(args), f, time.time())
                time.sleep(interval)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
