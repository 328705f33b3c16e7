"""Operating the HTTP bridge: health that tells the truth (readiness names the
broker, the database and each worker queue; liveness asks nobody), one
request id from HTTP through the worker to the events it caused, CORS for
browser frontends (the test instance allows http://frontend.test), the
browser hardening headers, and the Host check (Django's ALLOWED_HOSTS).

The health tests stop PostgreSQL and a worker of the test instance by their
PIDs and start them again the way scripts/lib.sh does, waiting until health
is 200 again so that later tests find the system whole."""
import json
import os
import re
import signal
import subprocess
import time
import unittest
import uuid

import msgpack
import pika

from helpers import (wait, alive, PASSWORD, SERVICE, EventListener, amqp_connection, http, http_raw,
                     register_and_login, unique)

RUN_DIR = os.environ.get("BK_RUN_DIR", ".run/test")
BIN_DIR = os.environ.get("BK_BIN_DIR", "build/test/bin")
REPO = os.environ.get("BK_REPO", ".")
ALLOWED_ORIGIN = "http://frontend.test"
WORKERS = {"auth", "profile", "order", "payment"}
RID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def health():
    return http("GET", "/api/health/", timeout=10)


def healthy():
    status, _, body = health()
    return status == 200 and body["status"] == "ok"


def log_lines(name, pred):
    """The JSON lines of <run dir>/log/<name>.log for which pred(line) is true."""
    out = []
    with open(os.path.join(RUN_DIR, "log", f"{name}.log"), errors="replace") as f:
        for raw in f:
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a sanitizer report or a partial line
            try:
                if pred(line):
                    out.append(line)
            except (KeyError, TypeError):
                pass
    return out


def wait_log(name, pred, timeout=10, count=1):
    """Waits for at least count matching lines (the access line is written when
    the request is over, which may be just after the client has its answer)."""
    return wait(lambda: (lambda got: got if len(got) >= count else None)(log_lines(name, pred)),
                timeout) or log_lines(name, pred)


class Health(unittest.TestCase):
    def assert_shape(self, body):
        self.assertEqual(set(body), {"status", "checks", "queues"})
        self.assertEqual(set(body["checks"]), {"broker", "database", "workers"})
        self.assertEqual(set(body["checks"]["workers"]), WORKERS)
        self.assertEqual(set(body["queues"]), {f"{w}.commands" for w in WORKERS})

    def test_all_up_is_200(self):
        status, hdrs, body = health()
        self.assertEqual(status, 200, body)
        self.assert_shape(body)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["checks"], {"broker": "ok", "database": "ok",
                                          "workers": {w: "ok" for w in WORKERS}})
        self.assertTrue(hdrs["content-type"].startswith("application/json"))

    def test_live(self):
        status, _, body = http("GET", "/api/health/live")
        self.assertEqual((status, body), (200, {"status": "ok"}))
        self.assertEqual(http("GET", "/api/health/live/")[0], 200)
        # probes connect by address: neither health route checks Host
        for path in ("/api/health/live", "/api/health/"):
            with self.subTest(path=path):
                self.assertEqual(http("GET", path, headers={"Host": "10.1.2.3:8000"})[0], 200)


class HealthWorkerDown(unittest.TestCase):
    NAME = "order-worker"

    def pid_file(self):
        return os.path.join(RUN_DIR, f"{self.NAME}.pid")

    def start_worker(self):
        # as scripts/lib.sh starts it: own session, same log, pid file rewritten, so
        # that scripts/test's cleanup stops this copy by its PID
        with open(os.path.join(RUN_DIR, "log", f"{self.NAME}.log"), "ab") as log:
            proc = subprocess.Popen([os.path.join(BIN_DIR, self.NAME)], cwd=REPO, stdout=log,
                                    stderr=log, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        with open(self.pid_file(), "w") as f:
            f.write(f"{proc.pid}\n")

    def test_stopped_worker_is_503_naming_it(self):
        self.assertTrue(wait(healthy, 30), "not healthy before the test")
        with open(self.pid_file()) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, signal.SIGTERM)
        try:
            self.assertTrue(wait(lambda: not alive(pid), 15), "the worker did not stop")

            # The bridge looks at the consumer counts about every second: until
            # then a probe may still go to the stopped worker and time out
            # ("database": "unknown: ..."). Once it knows, only the worker is down.
            def down():
                status, _, body = health()
                return (status, body) if body["checks"]["workers"]["order"] != "ok" else None
            status, body = wait(down, 10) or (None, None)
            self.assertEqual(status, 503, body)
            self.assertEqual(body["checks"]["workers"]["order"], "no consumer")
            status, _, body = health()
            self.assertEqual(status, 503, body)
            self.assertEqual(body["status"], "unavailable")
            self.assertEqual(body["checks"]["workers"],
                             {"auth": "ok", "profile": "ok", "order": "no consumer",
                              "payment": "ok"})
            self.assertEqual(body["queues"]["order.commands"], {"consumers": 0})
            self.assertEqual(body["checks"]["broker"], "ok")
            self.assertEqual(body["checks"]["database"], "ok")
        finally:
            self.start_worker()
            self.assertTrue(wait(healthy, 30), "health did not come back after the restart")


class HealthDatabaseDown(unittest.TestCase):
    def pg_pid(self):
        with open(os.path.join(RUN_DIR, "pg", "postgres.pid")) as f:
            return int(f.read().split()[0])

    def pg_start(self):
        # the way scripts do (bk_pg_start), on this instance: its directory and
        # the ports in its instance.env
        env = dict(os.environ, BK_TEST_DIR=RUN_DIR)
        out = subprocess.run(["bash", "-c", ". scripts/lib.sh && bk_instance test && bk_pg_start"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_database_down_is_503_naming_it(self):
        self.assertTrue(wait(healthy, 30), "not healthy before the test")
        pid = self.pg_pid()
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            self.assertTrue(wait(lambda: not alive(pid), 30), "PostgreSQL did not stop")

            def down():
                status, _, body = health()
                return (status, body) if body["checks"]["database"] != "ok" else None
            status, body = wait(down, 15) or (None, None)
            self.assertEqual(status, 503, body)
            self.assertEqual(body["status"], "unavailable")
            self.assertRegex(body["checks"]["database"], r"^unavailable(: .+)?$")
            self.assertEqual(body["checks"]["broker"], "ok")
            self.assertEqual(body["checks"]["workers"], {w: "ok" for w in WORKERS})
            # liveness does not depend on the database
            self.assertEqual(http("GET", "/api/health/live")[0], 200)
        finally:
            if not alive(pid):
                self.pg_start()
            self.assertTrue(wait(healthy, 60), "health did not come back after PostgreSQL")


class RequestId(unittest.TestCase):
    def test_from_http_to_worker_to_event(self):
        token, login_body = register_and_login("rid")
        user_id = login_body["user"]["id"]
        rid = f"it-{uuid.uuid4().hex}"
        with EventListener(["order.placed"]) as events:
            status, hdrs, order = http("POST", "/api/orders/", {
                "product_name": "lamp", "quantity": 1, "price": "3.00"},
                token=token, headers={"X-Request-ID": rid})
            self.assertEqual(status, 201, order)
            self.assertEqual(hdrs["x-request-id"], rid)
            event = events.wait_for(lambda e: e["data"]["id"] == order["id"], timeout=15)
            self.assertIsNotNone(event, "no order.placed event")
            props = [p for p, b in events.messages if b is event][0]

        access = wait_log("bridge", lambda l: l["request_id"] == rid and l["msg"] == "access")
        self.assertEqual(len(access), 1, access)
        line = access[0]
        self.assertEqual((line["method"], line["route"], line["status"], line["command"]),
                         ("POST", "/api/orders/", 201, "order.place"))
        self.assertEqual(line["user_id"], user_id)
        self.assertEqual(line["client"], "127.0.0.1")
        self.assertGreater(line["bytes"], 0)
        self.assertIsInstance(line["duration_ms"], (int, float))
        self.assertIn("ts", line)

        worker = wait_log("order-worker",
                          lambda l: l["request_id"] == rid and l["msg"] == "command")
        self.assertEqual(len(worker), 1, worker)
        self.assertEqual((worker[0]["command"], worker[0]["status"], worker[0]["user_id"]),
                         ("order.place", 201, user_id))
        message_id = worker[0]["message_id"]
        self.assertEqual(str(uuid.UUID(message_id)), message_id)

        self.assertEqual(event["correlation_id"], rid)
        self.assertEqual(event["causation_id"], message_id)
        self.assertEqual(props.correlation_id, rid)
        self.assertEqual(props.headers["x-request-id"], rid)
        self.assertEqual(props.headers["x-causation-id"], message_id)

    def test_minted_when_absent(self):
        status, hdrs, _ = http("GET", "/api/auth/jwks.json")
        self.assertEqual(status, 200)
        rid = hdrs["x-request-id"]
        self.assertRegex(rid, RID_RE)
        access = wait_log("bridge", lambda l: l["request_id"] == rid and l["msg"] == "access")
        self.assertEqual([(l["route"], l["command"]) for l in access],
                         [("/api/auth/jwks.json", "auth.jwks")])
        # the worker logs the same id
        self.assertTrue(wait_log("auth-worker", lambda l: l["request_id"] == rid))

    def test_invalid_one_is_replaced(self):
        for bad in ("has space", "x" * 65, "a/b", "quote\"d", "caf\u00e9"):
            with self.subTest(bad=bad):
                status, hdrs, _ = http_raw("GET", "/api/auth/jwks.json",
                                           headers={"X-Request-ID": bad.encode("utf-8")})
                self.assertEqual(status, 200)
                self.assertNotEqual(hdrs["x-request-id"], bad)
                self.assertRegex(hdrs["x-request-id"], RID_RE)
        longest = "a" * 64
        self.assertEqual(http("GET", "/api/health/live",
                              headers={"X-Request-ID": longest})[1]["x-request-id"], longest)

    def test_command_from_another_service(self):
        """A command published straight to the broker: its own x-request-id is
        used, else its message_id names the request in logs and events."""
        conn = amqp_connection()
        try:
            ch = conn.channel()
            with EventListener(["user.registered"]) as events:
                cases = []
                for rid in ("svc-" + uuid.uuid4().hex, None, "not valid!"):
                    name = unique("svc")
                    mid = str(uuid.uuid4())
                    body = {"v": 1, "auth": None, "args": {
                        "username": name, "email": f"{name}@example.com",
                        "password": PASSWORD, "password2": PASSWORD}}
                    ch.basic_publish("backend.commands", "auth.register", msgpack.packb(body),
                                     pika.BasicProperties(
                                         content_type="application/msgpack", delivery_mode=2,
                                         message_id=mid, user_id=SERVICE,
                                         headers={"x-request-id": rid} if rid else None))
                    cases.append((name, mid, rid if rid and RID_RE.match(rid) else mid))
                for name, mid, want in cases:
                    with self.subTest(want=want):
                        ev = events.wait_for(lambda e, n=name: e["data"]["username"] == n, 15)
                        self.assertIsNotNone(ev, "no user.registered event")
                        self.assertEqual((ev["correlation_id"], ev["causation_id"]), (want, mid))
                        lines = wait_log("auth-worker", lambda l, w=want: l["request_id"] == w
                                         and l["msg"] == "command")
                        self.assertEqual([l["message_id"] for l in lines], [mid])
        finally:
            conn.close()


class Cors(unittest.TestCase):
    PREFLIGHT = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}

    def cors_headers(self, hdrs):
        return {k: v for k, v in hdrs.items() if k.startswith("access-control-")}

    def test_preflight_from_an_allowed_origin(self):
        status, hdrs, payload = http_raw("OPTIONS", "/api/orders/", headers=self.PREFLIGHT)
        self.assertIn(status, (200, 204))
        self.assertEqual(payload, b"")
        self.assertEqual(hdrs["access-control-allow-origin"], ALLOWED_ORIGIN)
        methods = {m.strip() for m in hdrs["access-control-allow-methods"].split(",")}
        self.assertTrue({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} <= methods)
        allowed = {h.strip().lower() for h in hdrs["access-control-allow-headers"].split(",")}
        self.assertTrue({"authorization", "content-type", "idempotency-key",
                         "x-request-id"} <= allowed, allowed)
        self.assertEqual(hdrs["access-control-max-age"], "86400")
        self.assertIn("origin", hdrs["vary"].lower())
        self.assertEqual(hdrs["allow"], "POST, GET, OPTIONS")

    def test_preflight_from_another_origin_gets_no_cors_headers(self):
        for origin in ("http://evil.test", "https://frontend.test", "http://frontend.test:8080",
                       "null"):
            with self.subTest(origin=origin):
                status, hdrs, _ = http_raw("OPTIONS", "/api/orders/",
                                           headers=dict(self.PREFLIGHT, Origin=origin))
                self.assertIn(status, (200, 204))
                self.assertEqual(self.cors_headers(hdrs), {})

    def test_actual_response_to_an_allowed_origin(self):
        # a refusal from a worker (not a failed login: those are throttled per address)
        status, hdrs, _ = http("POST", "/api/auth/token/verify/", {"token": "x"},
                               headers={"Origin": ALLOWED_ORIGIN})
        self.assertEqual(status, 401)
        self.assertEqual(hdrs["access-control-allow-origin"], ALLOWED_ORIGIN)
        exposed = {h.strip().lower() for h in hdrs["access-control-expose-headers"].split(",")}
        self.assertIn("x-request-id", exposed)
        self.assertIn("origin", hdrs["vary"].lower())
        self.assertNotIn("access-control-allow-methods", hdrs)  # preflight only

        status, hdrs, _ = http("GET", "/api/health/", headers={"Origin": "http://evil.test"})
        self.assertEqual(status, 200)
        self.assertEqual(self.cors_headers(hdrs), {})

    def test_options_answers_allow(self):
        for path, allow in (("/api/orders/5/", "GET, PATCH, OPTIONS"),
                            ("/api/profile", "GET, PUT, PATCH, DELETE, OPTIONS"),
                            ("/api/health/", "GET, OPTIONS")):
            with self.subTest(path=path):
                status, hdrs, body = http("OPTIONS", path)
                self.assertEqual(status, 200, body)
                self.assertEqual(hdrs["allow"], allow)
                self.assertIn("application/json", body["renders"])
                self.assertIsInstance(body["name"], str)
        status, _, body = http("OPTIONS", "/api/profile/picture/")
        self.assertIn("multipart/form-data", body["parses"])
        self.assertEqual(http("OPTIONS", "/api/nope/")[0], 404)


class SecurityHeaders(unittest.TestCase):
    def test_every_response_is_hardened(self):
        for method, path, want in (("GET", "/api/health/", 200), ("GET", "/api/nope/", 404),
                                   ("PUT", "/api/orders/", 405), ("OPTIONS", "/api/orders/", 200),
                                   ("GET", "/api/orders/", 401), ("GET", "/api/docs/", 200)):
            with self.subTest(method=method, path=path):
                status, hdrs, _ = http_raw(method, path)
                self.assertEqual(status, want)
                self.assertEqual(hdrs["x-content-type-options"], "nosniff")
                self.assertEqual(hdrs["referrer-policy"], "same-origin")

    def test_token_answers_are_not_stored(self):
        token, login_body = register_and_login("nostore")
        name = login_body["user"]["username"]
        status, hdrs, _ = http("POST", "/api/auth/login/", {"username": name,
                                                           "password": PASSWORD})
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["cache-control"], "no-store")
        status, hdrs, _ = http("POST", "/api/auth/token/refresh/",
                               {"refresh": login_body["refresh"]})
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["cache-control"], "no-store")
        # a failed login is not cached either; an answer without tokens may be
        self.assertEqual(http("POST", "/api/auth/login/", {"username": name, "password": "no"})
                         [1]["cache-control"], "no-store")
        self.assertNotIn("cache-control", http("GET", "/api/orders/", token=token)[1])


class HostHeader(unittest.TestCase):
    def test_unknown_host_is_400_and_sends_no_command(self):
        rid = f"host-{uuid.uuid4().hex}"
        for host in ("evil.example", "evil.example:8001", "127.0.0.1.evil.example",
                     "bad host", "localhost@evil.example"):
            with self.subTest(host=host):
                status, hdrs, body = http("GET", "/api/auth/jwks.json",
                                          headers={"Host": host, "X-Request-ID": rid})
                self.assertEqual((status, body), (400, {"detail": "Invalid Host header."}))
                self.assertEqual(hdrs["x-request-id"], rid)
        lines = wait_log("bridge", lambda l: l["request_id"] == rid and l["msg"] == "access",
                         count=5)
        self.assertEqual(len(lines), 5)
        self.assertTrue(all(l["status"] == 400 and "command" not in l for l in lines), lines)
        time.sleep(0.5)
        self.assertEqual(log_lines("auth-worker", lambda l: l["request_id"] == rid), [])

    def test_allowed_hosts(self):
        for host in ("127.0.0.1", "localhost:9999", "LOCALHOST", "[::1]:8001"):
            with self.subTest(host=host):
                status, _, _ = http("GET", "/api/auth/jwks.json", headers={"Host": host})
                self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
