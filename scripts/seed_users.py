#!/usr/bin/python3
"""Load many users fast (COPY) for the benchmarks of GET /api/users/?search=
and GET /api/users/{id}/.

    /usr/bin/python3 scripts/seed_users.py [--count 100000] [--nested 1000]
                                           [--password-like USERNAME] [--dsn DSN]

Users are named from a fixed pseudo-random list of first and last names, so a
search for a name finds a realistic share of them; usernames are
<first><last><n> and emails seed<n>@seed.example (both unique, so running it
again adds more users). The first --nested of the new users get two
educations, two certificates, an achievement and a few follows, which the
nested profile bench reads. --password-like copies an existing user's
password hash so the seeded users can log in with that user's password;
without it they cannot log in at all ("!" is no valid hash).

The database is the test instance's by default (BK_DB_DSN, as scripts/test
exports it, or 127.0.0.1:5435). Prints the id range it created.
"""
import argparse
import io
import os
import random
import sys
import time

import psycopg2

FIRST = ("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William "
         "Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa "
         "Daniel Nancy Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven "
         "Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian "
         "Dorothy George Melissa Timothy Deborah Ana Wei Priya Mohammed Fatima Hiroshi Yuki "
         "Olga Ivan Chloe Lucas Sofia Mateo Aisha Omar Ingrid Lars Amara Kwame Zoe Leon").split()
LAST = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
        "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
        "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
        "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
        "Roberts Kowalski Novak Tanaka Sato Kim Park Chen Wang Singh Patel Okafor Mensah Silva "
        "Costa Rossi Bianchi Muller Schmidt Dubois Laurent Jensen Hansen Ivanova Petrov").split()
COMPANIES = ("Acme Globex Initech Umbrella Hooli Stark Wayne Wonka Cyberdyne Soylent Tyrell "
             "Aperture Massive Vandelay Gringotts Oscorp").split()
TITLES = ("Engineer Developer Designer Analyst Manager Researcher Teacher Student Consultant "
          "Architect Scientist Writer").split()
ROLES = ["member"] * 6 + ["student", "alumni", "faculty", "teacher"]


def tsv(*fields):
    """One COPY text-format line (tabs, newlines and backslashes escaped)."""
    out = []
    for f in fields:
        if f is None:
            out.append("\\N")
        else:
            out.append(str(f).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n"))
    return "\t".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--nested", type=int, default=1000,
                    help="how many of the new users get educations, certificates, follows")
    ap.add_argument("--password-like", metavar="USERNAME",
                    help="give the seeded users this existing user's password hash")
    ap.add_argument("--dsn", default=os.environ.get(
        "BK_DB_DSN", "host=127.0.0.1 port=5435 user=backend password=backend dbname=backend"))
    ap.add_argument("--seed", type=int, default=1)
    opts = ap.parse_args()

    rnd = random.Random(opts.seed)
    conn = psycopg2.connect(opts.dsn)
    cur = conn.cursor()
    password = "!"
    if opts.password_like:
        cur.execute("SELECT password FROM users WHERE username = %s", (opts.password_like,))
        row = cur.fetchone()
        if not row:
            sys.exit(f"no user {opts.password_like!r}")
        password = row[0]
    # a run number keeps usernames and emails unique across runs
    cur.execute("SELECT count(*) FROM users WHERE email LIKE 'seed%%@seed.example'")
    base = cur.fetchone()[0]

    t0 = time.monotonic()
    buf = io.StringIO()
    for i in range(base, base + opts.count):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        company = rnd.choice(COMPANIES) if rnd.random() < 0.7 else ""
        designation = rnd.choice(TITLES) if rnd.random() < 0.7 else ""
        buf.write(tsv(f"{first.lower()}{last.lower()}{i}", f"seed{i}@seed.example", password,
                      first, last, rnd.choice(ROLES), designation, company,
                      f"Hello, I am {first}." if rnd.random() < 0.3 else ""))
    buf.seek(0)
    cur.copy_expert("COPY users (username, email, password, first_name, last_name, role, "
                    "designation, company, about) FROM STDIN", buf)
    cur.execute("SELECT id FROM users WHERE email = %s", (f"seed{base}@seed.example",))
    cur.execute("SELECT id FROM users WHERE id >= %s AND email LIKE 'seed%%@seed.example' "
                "ORDER BY id", (cur.fetchone()[0],))
    ids = [r[0] for r in cur.fetchall()]
    first_id, last_id = ids[0], ids[-1]

    nested = min(opts.nested, opts.count)
    edu, cert, ach, fol = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
    for uid in ids[:nested]:
        for k in range(2):
            start = rnd.randint(1990, 2020)
            edu.write(tsv(uid, rnd.choice(["BSc", "MSc", "PhD", "BA", "MBA"]) + " " +
                          rnd.choice(TITLES), rnd.choice(LAST) + " University", start,
                          start + rnd.randint(1, 5)))
            cert.write(tsv(uid, rnd.choice(TITLES) + " certificate", rnd.choice(COMPANIES),
                           f"20{rnd.randint(10, 24)}-0{rnd.randint(1, 9)}-1{k}",
                           "https://example.com/cert"))
        ach.write(tsv(uid, "Award " + rnd.choice(TITLES), "For good work.",
                      f"20{rnd.randint(10, 24)}-05-0{rnd.randint(1, 9)}"))
        for other in rnd.sample(ids, 5):
            if other != uid:
                fol.write(tsv(uid, other))
    for data, sql in ((edu, "COPY educations (user_id, degree, institution, start_year, "
                            "end_year) FROM STDIN"),
                      (cert, "COPY certificates (user_id, title, issuer, date, link) FROM STDIN"),
                      (ach, "COPY achievements (user_id, title, description, date) FROM STDIN"),
                      (fol, "COPY follows (follower_id, followee_id) FROM STDIN")):
        data.seek(0)
        cur.copy_expert(sql, data)
    conn.commit()
    conn.autocommit = True
    cur.execute("ANALYZE users")
    cur.execute("ANALYZE follows")
    print(f"seeded users {first_id}..{last_id} ({opts.count}, {nested} with nested rows) "
          f"in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
