"""What cpu.py and rss.py both read from /proc: PID files and every process's
stat line."""
import os


def pid_from(path):
    """The PID on the first line of path, or None."""
    try:
        with open(path) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def stats():
    """(pid, fields) of every process, fields being /proc/PID/stat after
    "(comm)": state ppid ... utime(11) stime cutime cstime (0-based)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue  # ended since listdir
        yield int(d), s[s.rfind(")") + 2:].split()
