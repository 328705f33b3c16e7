"""Nothing lost when the database goes away (issue 11): an outage holds
commands unsettled and costs them no delivery; a caller gets its answer when
the database returns within its deadline, else 503 with Retry-After; a
failing command is tried again at once, then later through a delay queue,
then moved to backend.dead with the reason."""
import os
import signal
import subprocess
import threading
import time
import unittest
import uuid

import msgpack
import pika

from helpers import (wait, alive, REPO, RUN_DIR, SERVICE, amqp_call, amqp_connection, db, dead_letters, http,
                     register_and_login)

ORDER = {"product_name": "Outage widget", "quantity": 1, "price": "3.50"}


def healthy():
    return http("GET", "/api/health/")[0] == 200


class Database:
    """Stops the test instance's PostgreSQL (fast shutdown) and starts it again
    the way the scripts do."""

    def pid(self):
        with open(os.path.join(RUN_DIR, "pg", "postgres.pid")) as f:
            return int(f.read().split()[0])

    def stop(self):
        pid = self.pid()
        os.kill(pid, signal.SIGINT)
        if not wait(lambda: not alive(pid), 30):
            raise AssertionError("PostgreSQL did not stop")

    def start(self):
        env = dict(os.environ, BK_TEST_DIR=RUN_DIR)
        out = subprocess.run(["bash", "-c", ". scripts/lib.sh && bk_instance test && bk_pg_start"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise AssertionError(out.stdout + out.stderr)

    def ensure_up(self):
        try:
            if alive(self.pid()):
                return
        except (FileNotFoundError, ValueError):
            pass
        self.start()


def publish(command, args, token, message_id, headers=None):
    """Fire-and-forget: no reply_to."""
    conn = amqp_connection()
    try:
        conn.channel().basic_publish(
            "backend.commands", command,
            msgpack.packb({"v": 1, "auth": token, "args": args}, use_bin_type=True),
            pika.BasicProperties(content_type="application/msgpack", delivery_mode=2,
                                 message_id=message_id, user_id=SERVICE, headers=headers))
    finally:
        conn.close()


def orders_named(name):
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders WHERE product_name = %s", (name,))
        return cur.fetchone()[0]


class Outage(unittest.TestCase):
    def setUp(self):
        self.db = Database()
        self.assertTrue(wait(healthy, 60), "not healthy before the test")
        self.token, _ = register_and_login("outage")

    def tearDown(self):
        self.db.ensure_up()
        self.assertTrue(wait(healthy, 60), "health did not come back after PostgreSQL")

    def test_commands_wait_for_the_database_and_run_once(self):
        tag = uuid.uuid4().hex[:8]
        fire = dict(ORDER, product_name=f"fire-{tag}")
        called = dict(ORDER, product_name=f"http-{tag}")
        fire_id = str(uuid.uuid4())
        answer = {}
        self.db.stop()
        try:
            # a fire-and-forget command and a caller over HTTP, both while it is away
            publish("order.place", fire, self.token, fire_id)
            caller = threading.Thread(target=lambda: answer.setdefault(
                "r", http("POST", "/api/orders/", called, token=self.token)))
            caller.start()
            time.sleep(1.0)
        finally:
            self.db.start()
        caller.join(15)
        status, _, body = answer["r"]
        self.assertEqual(status, 201, body)  # answered once the database was back
        self.assertTrue(wait(lambda: orders_named(fire["product_name"]) == 1, 15),
                        "the fire-and-forget command did not run after the outage")
        time.sleep(0.5)
        self.assertEqual(orders_named(fire["product_name"]), 1)
        self.assertEqual(orders_named(called["product_name"]), 1)
        self.assertEqual(dead_letters(lambda p, b: p.message_id == fire_id, timeout=0), [])

    def test_past_the_callers_deadline_it_is_503_and_never_runs(self):
        name = f"late-{uuid.uuid4().hex[:8]}"
        key = str(uuid.uuid4())
        self.db.stop()
        try:
            t0 = time.monotonic()
            status, headers, body = http("POST", "/api/orders/", dict(ORDER, product_name=name),
                                         token=self.token, headers={"Idempotency-Key": key})
            took = time.monotonic() - t0
            self.assertEqual(status, 503, body)
            self.assertIn("retry-after", headers)
            self.assertLess(took, 5.0)  # the worker's answer, before the bridge's timeout
        finally:
            self.db.start()
        self.assertTrue(wait(healthy, 60))
        time.sleep(1.0)
        self.assertEqual(orders_named(name), 0)  # the caller was told it did not happen
        status, _, body = http("POST", "/api/orders/", dict(ORDER, product_name=name),
                               token=self.token, headers={"Idempotency-Key": key})
        self.assertEqual(status, 201, body)
        self.assertEqual(orders_named(name), 1)


class Retries(unittest.TestCase):
    def setUp(self):
        self.token, _ = register_and_login("retry")

    def test_a_failing_command_is_retried_later_and_runs_once(self):
        name = f"retried-{uuid.uuid4().hex[:8]}"
        t0 = time.monotonic()
        # fails 3 times at once, then once more after the 1 s delay queue
        reply = amqp_call("order.place", dict(ORDER, product_name=name), token=self.token,
                          headers={"x-test-fail": 4}, timeout=20)
        self.assertEqual(reply["status"], 201, reply)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertEqual(orders_named(name), 1)

    def test_a_command_that_keeps_failing_moves_aside_with_the_reason(self):
        name = f"aside-{uuid.uuid4().hex[:8]}"
        mid = str(uuid.uuid4())
        # x-bk-delays=3: the delay tiers are spent (a publisher may only make
        # its own command give up sooner), so the next failures move it aside
        reply = amqp_call("order.place", dict(ORDER, product_name=name), token=self.token,
                          message_id=mid, headers={"x-test-fail": 100, "x-bk-delays": 3},
                          timeout=20)
        self.assertEqual(reply, {"status": 500, "body": {"detail": "A server error occurred."}})
        dead = dead_letters(lambda p, b: p.message_id == mid, timeout=10)
        self.assertEqual(len(dead), 1)
        h = dead[0][0].headers
        self.assertEqual(h["x-bk-last-error"], "test hook: x-test-fail")
        self.assertGreaterEqual(h["x-bk-attempts"], 3)
        self.assertLessEqual(h["x-bk-first-failure"], h["x-bk-last-failure"])
        self.assertEqual(h["x-bk-publisher"], SERVICE)
        self.assertEqual(orders_named(name), 0)


if __name__ == "__main__":
    unittest.main()
