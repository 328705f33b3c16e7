#!/usr/bin/python3
"""Load users into the DRF peer's database for its GET /api/users/?search=
benchmark: the same names, roles, designations and companies, drawn with the
same seed, as scripts/seed_users.py loads into ours (so a search term finds
the same share of them), written with COPY straight into accounts_user.

    /usr/bin/python3 scripts/bench.d/seed_drf_users.py [--count 100000]
        [--host /var/tmp/drf-peer] [--port 5434] [--db drf] [--user drf]

Usernames <first><last><n> and emails seed<n>@seed.example are unique across
runs; the password "!" is Django's unusable password (no login). The search
scenario reads no nested rows, so none are created.
"""
import argparse
import io
import os
import random
import sys
import time

import psycopg2

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from seed_users import COMPANIES, FIRST, LAST, ROLES, TITLES, tsv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--host", default="/var/tmp/drf-peer")
    ap.add_argument("--port", default="5434")
    ap.add_argument("--db", default="drf")
    ap.add_argument("--user", default="drf")
    ap.add_argument("--seed", type=int, default=1)
    opts = ap.parse_args()

    rnd = random.Random(opts.seed)
    conn = psycopg2.connect(host=opts.host, port=opts.port, dbname=opts.db, user=opts.user)
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM accounts_user WHERE email LIKE 'seed%%@seed.example'")
    base = cur.fetchone()[0]
    t0 = time.monotonic()
    buf = io.StringIO()
    joined = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
    for i in range(base, base + opts.count):
        # the same draws in the same order as seed_users.py
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        company = rnd.choice(COMPANIES) if rnd.random() < 0.7 else ""
        designation = rnd.choice(TITLES) if rnd.random() < 0.7 else ""
        role = rnd.choice(ROLES)
        about = f"Hello, I am {first}." if rnd.random() < 0.3 else ""
        buf.write(tsv("!", "f", f"{first.lower()}{last.lower()}{i}", first, last, "f", "t",
                      f"seed{i}@seed.example", role, about, "", "", "", "", designation,
                      company, "f", "f", "f", joined))
    buf.seek(0)
    cur.execute("SET LOCAL synchronous_commit = off")
    cur.copy_expert("COPY accounts_user (password, is_superuser, username, first_name, last_name, "
                    "is_staff, is_active, email, role, about, linkedin, github, phone_no, address, "
                    "designation, company, is_student, is_alumni, is_faculty, date_joined) FROM STDIN", buf)
    conn.commit()
    conn.autocommit = True
    cur.execute("ANALYZE accounts_user")
    print(f"seeded {opts.count} users into the DRF peer in {time.monotonic() - t0:.1f}s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
