"""The operator's first hour: backendctl as manage.py (help that runs nothing,
usage errors, set-staff, users, check, config) and strict configuration (a bad
value or an unknown key stops every process at start, naming it)."""
import os
import subprocess
import unittest
import uuid

from helpers import BIN_DIR, REPO, EventListener, db, register, unique


def run(binary, *args, env=None, timeout=60):
    full = dict(os.environ, **(env or {}))
    return subprocess.run([os.path.join(BIN_DIR, binary), *args], capture_output=True,
                          text=True, env=full, cwd=REPO, timeout=timeout)


def ctl(*args, env=None):
    return run("backendctl", *args, env=env)


class IsolatedSchema:
    """A schema of its own in the test database, migrated by backendctl, so a
    test may count every user or staff member without meeting other tests'
    rows. BACKEND_DB_CONNINFO points backendctl at it (search_path)."""

    def __init__(self, with_public=True):
        # public holds the extensions (pg_trgm) the migrations use
        self.path_tail = ",public" if with_public else ""

    def __enter__(self):
        self.name = "ctl_" + uuid.uuid4().hex[:10]
        with db() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {self.name}")
        self.env = {"BACKEND_DB_CONNINFO": os.environ["BACKEND_DB_CONNINFO"] +
                    f" options='-csearch_path={self.name}{self.path_tail}'"}
        return self

    def ctl(self, *args):
        return ctl(*args, env=self.env)

    def sql(self, statement, params=()):
        with db() as conn, conn.cursor() as cur:
            cur.execute(f"SET search_path = {self.name}, public")
            cur.execute(statement, params or None)
            return cur.fetchall() if cur.description else None

    def __exit__(self, *exc):
        with db() as conn, conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {self.name} CASCADE")
        return False


class Help(unittest.TestCase):
    def test_help_and_version_exit_0(self):
        r = ctl("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("migrate", "set-staff", "users", "check", "config", "flush-expired"):
            self.assertIn(name, r.stdout)
        r = ctl("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^backendctl \d+\.\d+\.\d+")

    def test_command_help_runs_nothing(self):
        with IsolatedSchema() as s:
            # migrate --help must not create a single table
            r = s.ctl("migrate", "--help")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("usage: backendctl migrate", r.stdout)
            self.assertEqual(s.sql("SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                                   (s.name,)), [(0,)])
            r = s.ctl("migrate")
            self.assertEqual(r.returncode, 0, r.stderr)
            # flush-expired --help must not delete the expired row; flush-expired does
            old = str(uuid.uuid4())
            s.sql("INSERT INTO inbox (message_id, caller, command, fingerprint, status, reply, "
                  "created_at) VALUES (%s, 'anon', 'x.y', '\\x00', 200, '\\x00', "
                  "now() - interval '3 days')", (old,))
            r = s.ctl("flush-expired", "--help")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("usage: backendctl flush-expired", r.stdout)
            self.assertEqual(s.sql("SELECT count(*) FROM inbox WHERE message_id = %s", (old,)),
                             [(1,)])
            r = s.ctl("flush-expired")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(s.sql("SELECT count(*) FROM inbox WHERE message_id = %s", (old,)),
                             [(0,)])

    def test_usage_errors_exit_2_with_usage_on_stderr(self):
        for args, message in ((["frobnicate"], "unknown command 'frobnicate'"),
                              (["migrate", "--frob"], "unknown option --frob"),
                              (["--frob"], "unknown option --frob"),
                              (["service-token"], "NAME is missing"),
                              (["service-token", "svc", "--ttl"], "option --ttl needs a value"),
                              (["service-token", "svc", "--ttl", "soon"], "--ttl"),
                              (["set-staff", "a", "b"], "unexpected argument 'b'"),
                              (["createsuperuser", "--username", "x"], "--email is required"),
                              ([], "no command given")):
            with self.subTest(args=args):
                r = ctl(*args)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(message, r.stderr)
                self.assertIn("usage: backendctl", r.stderr)
                self.assertEqual(r.stdout, "")


class Staff(unittest.TestCase):
    def test_set_staff_grants_revokes_and_publishes(self):
        name = unique("op")
        user_id = register(name)["user"]["id"]
        with EventListener(["user.role_changed"]) as events:
            r = ctl("set-staff", name)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("is staff now", r.stdout)
            ev = events.wait_for(lambda e: e["data"]["user_id"] == user_id, timeout=10)
        self.assertIsNotNone(ev, "no user.role_changed event")
        self.assertEqual(ev["data"], {"user_id": user_id, "role": ev["data"]["role"],
                                      "is_staff": True, "by": None,
                                      "changes": {"is_staff": [False, True]}})
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT is_staff FROM users WHERE id = %s", (user_id,))
            self.assertEqual(cur.fetchone(), (True,))
        r = ctl("set-staff", name)  # again: nothing to do
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already", r.stdout)
        r = ctl("set-staff", name, "--off")
        self.assertEqual(r.returncode, 0, r.stderr)
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT is_staff FROM users WHERE id = %s", (user_id,))
            self.assertEqual(cur.fetchone(), (False,))
        r = ctl("set-staff", "nobody_" + uuid.uuid4().hex[:8])
        self.assertEqual(r.returncode, 1)
        self.assertIn("no user named", r.stderr)

    def test_the_last_staff_user_keeps_staff(self):
        with IsolatedSchema() as s:
            self.assertEqual(s.ctl("migrate").returncode, 0)
            s.sql("INSERT INTO users (username, email, password) VALUES "
                  "('alice', 'alice@example.com', 'x'), ('bob', 'bob@example.com', 'x')")
            self.assertEqual(s.ctl("set-staff", "alice").returncode, 0)
            r = s.ctl("set-staff", "alice", "--off")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("last active staff user", r.stderr)
            self.assertEqual(s.sql("SELECT is_staff FROM users WHERE username = 'alice'"),
                             [(True,)])
            self.assertEqual(s.ctl("set-staff", "bob").returncode, 0)
            self.assertEqual(s.ctl("set-staff", "alice", "--off").returncode, 0)
            self.assertEqual(s.sql("SELECT username FROM users WHERE is_staff"), [("bob",)])

    def test_users_lists_and_searches(self):
        with IsolatedSchema() as s:
            self.assertEqual(s.ctl("migrate").returncode, 0)
            s.sql("INSERT INTO users (username, email, password, is_staff) VALUES "
                  "('carol', 'carol@example.com', 'x', true), "
                  "('dave_100%', 'dave@example.org', 'x', false)")
            r = s.ctl("users")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("carol", r.stdout)
            self.assertIn("dave_100%", r.stdout)
            self.assertIn("(2 of 2 users)", r.stdout)
            r = s.ctl("users", "--search", "EXAMPLE.ORG")
            self.assertNotIn("carol", r.stdout)
            self.assertIn("dave_100%", r.stdout)
            r = s.ctl("users", "--search", "%")  # literal, not a LIKE wildcard
            self.assertIn("(1 of 1 user matching", r.stdout)


class Check(unittest.TestCase):
    def test_check_passes_on_the_running_instance(self):
        r = ctl("check")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for what in ("configuration", "broker", "database", "schema", "signing key",
                     "server secret"):
            self.assertRegex(r.stdout, rf"(?m)^{what} +ok")

    def test_check_names_what_is_wrong(self):
        with IsolatedSchema(with_public=False) as s:  # nothing migrated in it
            r = ctl("check", env=dict(s.env, BACKEND_AMQP_PORT="1",
                                      BACKEND_KEY_DIR="/nonexistent/keys"))
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stdout, r"(?m)^broker +FAILED")
        self.assertRegex(r.stdout, r"(?m)^database +ok")
        self.assertRegex(r.stdout, r"(?m)^schema +FAILED: \d+ of \d+ migrations not applied")
        self.assertRegex(r.stdout, r"(?m)^signing key +FAILED: .*backendctl keygen")
        self.assertRegex(r.stdout, r"(?m)^server secret +FAILED: .*backendctl keygen")
        self.assertIn("check: 4 problems", r.stderr)

    def test_config_shows_sources_and_masks_secrets(self):
        r = ctl("config", env={"BACKEND_AMQP_PASSWORD": "s3cret-broker",
                               "BACKEND_LOG_LEVEL": "warn"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("s3cret-broker", r.stdout)
        self.assertNotIn("password=backend", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^amqp_password +=\s+\*\*\* +# environment "
                                   r"BACKEND_AMQP_PASSWORD")
        self.assertRegex(r.stdout, r"(?m)^log_level +=\s+warn +# environment")
        self.assertRegex(r.stdout, r"(?m)^jwt_access_ttl +=\s+1800 +# default")


class StrictConfig(unittest.TestCase):
    """Every process refuses a bad configuration at start, naming the key."""

    def assert_refused(self, binary, env, message, *args):
        r = run(binary, *args, env=env, timeout=30)
        self.assertNotEqual(r.returncode, 0, f"{binary} started with {env}")
        self.assertIn(message, r.stderr)

    def test_bad_values_stop_every_process(self):
        self.assert_refused("bridge", {"BACKEND_HTTP_PORT": "abc"},
                            'config: http_port: "abc" is not a port (1-65535)')
        self.assert_refused("order-worker", {"BACKEND_MAX_DELIVERIES": "0"},
                            "config: max_deliveries: 0 is out of range (1-1000)")
        self.assert_refused("auth-worker", {"BACKEND_LOG_LEVEL": "loud"},
                            'config: log_level: "loud" is not one of')
        self.assert_refused("profile-worker", {"BACKEND_HTTP_MAX_INFLIGHT": "many"},
                            'config: http_max_inflight: "many" is not a whole number')
        self.assert_refused("backendctl", {"BACKEND_PUBLIC_BASE_URL": "example.com"},
                            'config: public_base_url: "example.com" is not an http(s) URL',
                            "config")

    def test_unknown_names_are_refused_with_a_hint(self):
        self.assert_refused("payment-worker", {"BACKEND_HTTP_PROT": "8000"},
                            "config: unknown variable BACKEND_HTTP_PROT (did you mean "
                            "BACKEND_HTTP_PORT?)")
        path = os.path.join(os.environ.get("BK_RUN_DIR", "/tmp"), "bad-" + unique("c") + ".conf")
        with open(path, "w") as f:
            f.write("# a typo\nmax_delivries = 3\n")
        try:
            self.assert_refused("bridge", {"BACKEND_CONFIG": path},
                                f'config: {path}:2: unknown key "max_delivries" (did you mean '
                                '"max_deliveries"?)')
        finally:
            os.unlink(path)


if __name__ == "__main__":
    unittest.main()
