"""The hot reads are each one planned statement (issue 13): the statements the
workers really run (read back from pg_stat_activity after a request over
HTTP) are prepared here and explained with EXPLAIN (ANALYZE, BUFFERS,
VERBOSE) after enough executions for PostgreSQL's plan cache to settle, on
a database seeded with enough rows that a sequential scan would show.

Each must:
- use a generic plan (custom_plans stays at the 5 PostgreSQL tries first):
  nothing is planned again per request;
- call no SQL function left un-inlined (order_json, rfc3339, profile_rep...:
  such a call parses and plans its body on every execution) and run no
  Function Scan; the only call is actor_check, the caller's freshness check
  folded into the statement;
- scan no table sequentially."""
import re
import unittest

from helpers import PUBLIC_BASE_URL, db, http, register_and_login

# SQL functions of schema/ that must be inlined into a hot statement
INLINED = ("order_json", "payment_json", "rfc3339", "day_text", "media_url", "profile_rep",
           "profile_nested", "profile_json", "profile_nested_json", "education_json",
           "certificate_json", "achievement_json", "resume_json", "user_me")
EXECUTIONS = 12
# Users with 10 orders each, a payment for every other order, 2 educations, a
# certificate, an achievement, a follow and for every fourth a resume: tables
# big enough that the planner's choices are the ones a real database gets.
SEED_USERS = 2000
SEEDED = "FROM users u WHERE u.username LIKE 'plans\\_seed\\_%'"
SEED = (
    "INSERT INTO orders (user_id, product_name, quantity, price) "
    f"SELECT u.id, 'seed ' || g, g, 9.99 {SEEDED.replace('WHERE', ', generate_series(1, 10) g WHERE')}",
    "INSERT INTO payments (order_id, amount, status) SELECT o.id, o.total, 'completed' "
    f"FROM orders o WHERE o.id % 2 = 0 AND o.user_id IN (SELECT u.id {SEEDED}) "
    "ON CONFLICT DO NOTHING",
    "INSERT INTO educations (user_id, degree, institution, start_year, end_year) "
    f"SELECT u.id, 'BSc', 'Uni ' || g, 2010 + g, 2014 + g "
    f"{SEEDED.replace('WHERE', ', generate_series(1, 2) g WHERE')}",
    f"INSERT INTO certificates (user_id, title, issuer, date) SELECT u.id, 'C', 'I', '2020-01-01' {SEEDED}",
    f"INSERT INTO achievements (user_id, title, date) SELECT u.id, 'A', '2021-01-01' {SEEDED}",
    f"INSERT INTO follows (follower_id, followee_id) SELECT u.id, u.id + 1 {SEEDED} "
    "AND EXISTS (SELECT 1 FROM users v WHERE v.id = u.id + 1) ON CONFLICT DO NOTHING",
    "INSERT INTO media (key, content_type, size, data) SELECT encode(sha256(u.id::text::bytea), 'hex'), "
    f"'application/pdf', 1, '\\x00'::bytea {SEEDED} AND u.id % 4 = 0 ON CONFLICT DO NOTHING",
    "INSERT INTO resumes (user_id, file) SELECT u.id, encode(sha256(u.id::text::bytea), 'hex') "
    f"{SEEDED} AND u.id % 4 = 0 ON CONFLICT DO NOTHING",
)

ME = None  # (token, user id, role) of the reader, who wrote nothing but 3 orders


def setUpModule():
    global ME
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM users WHERE username LIKE 'plans\\_seed\\_%'")
        if cur.fetchone()[0] < SEED_USERS:
            cur.execute(
                "INSERT INTO users (username, email, password, role) "
                "SELECT 'plans_seed_' || g || '_' || md5(random()::text), "
                "'plans' || g || md5(random()::text) || '@example.com', '!', 'student' "
                "FROM generate_series(1, %s) g", (SEED_USERS,))
            for sql in SEED:
                cur.execute(sql)
        cur.execute("ANALYZE")
    token, body = register_and_login("plans")
    ME = (token, body["user"]["id"], body["user"]["role"])
    for i in range(3):
        status, _, out = http("POST", "/api/orders/",
                              {"product_name": f"Plan {i}", "quantity": 1, "price": "2.00"},
                              token=token)
        assert status == 201, out


def last_statement(like):
    """The text of the statement a worker ran last that matches like."""
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT query FROM pg_stat_activity WHERE query LIKE %s "
                    "AND pid <> pg_backend_pid() ORDER BY state_change DESC LIMIT 1", (like,))
        row = cur.fetchone()
    return row[0] if row else None


def seed_user():
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM users WHERE username LIKE 'plans\\_seed\\_%' LIMIT 1")
        return cur.fetchone()[0]


class HotReads(unittest.TestCase):
    def check(self, request, like, params, folded=True):
        status, _, body = http("GET", request, token=ME[0])
        self.assertEqual(status, 200, body)
        sql = last_statement(like)
        self.assertIsNotNone(sql, f"no worker ran a statement like {like!r}")
        if folded:
            self.assertIn("actor_check(", sql, "the caller's check is not folded in")
        with db() as conn, conn.cursor() as cur:
            cur.execute(f"PREPARE hot AS {sql}")
            values = ", ".join(conn.cursor().mogrify("%s", (p,)).decode() for p in params)
            for _ in range(EXECUTIONS):
                cur.execute(f"EXECUTE hot ({values})")
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, VERBOSE) EXECUTE hot ({values})")
            plan = "\n".join(r[0] for r in cur.fetchall())
            cur.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                        "WHERE name = 'hot'")
            generic, custom = cur.fetchone()
        where = f"{request}:\n{sql}\n{plan}"
        self.assertLessEqual(custom, 5, f"planned again on every execution: {where}")
        self.assertGreater(generic, 0, where)
        self.assertNotIn("Seq Scan", plan, f"a sequential scan on a hot path: {where}")
        self.assertNotIn("Function Scan", plan, f"a function not inlined: {where}")
        for name in INLINED:
            self.assertIsNone(re.search(rf"\b{name}\(", plan), f"{name}() not inlined: {where}")
        return plan

    def test_order_detail(self):
        _, _, orders = http("GET", "/api/orders/", token=ME[0])
        oid = orders["results"][0]["id"]
        self.check(f"/api/orders/{oid}/", "%FROM orders o LEFT JOIN payments p%o.id = $1%",
                   [oid, ME[1], ME[1], False, ME[2]])

    def test_order_list(self):
        self.check("/api/orders/?page_size=20", "%json_agg(order_json(o, p)%o.user_id = $3 ORDER BY%",
                   [20, 0, ME[1], ME[1], False, ME[2]])

    def test_user_detail(self):
        uid = seed_user()
        self.check(f"/api/users/{uid}/", "%profile_rep(u, $2) p, profile_nested(u.id, $2)%",
                   [uid, PUBLIC_BASE_URL, ME[1], False, ME[2]])

    def test_payment_list(self):
        self.check("/api/payments/", "%json_agg(payment_json(p)%o.user_id = $3%",
                   [20, 0, ME[1], ME[1], False, ME[2]])

    def test_education_list(self):
        # the count is the folded statement; the page comes second
        uid = seed_user()
        self.check(f"/api/educations/?user={uid}", "%education_json(e, $1)%e.user_id = $4%",
                   [PUBLIC_BASE_URL, 20, 0, uid], folded=False)


if __name__ == "__main__":
    unittest.main()
