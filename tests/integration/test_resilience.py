"""Availability: a worker stopped with SIGTERM finishes and leaves; the bridge
then answers 503 at once for its commands (no consumer), health says so, and
the commands that were published while nobody consumed are executed once the
worker is back (nothing is lost)."""
import os
import signal
import subprocess
import time
import unittest
import uuid

import msgpack
import pika

from helpers import (PASSWORD, SERVICE, amqp_call, amqp_connection, db, http, start_process,
                     register_and_login, unique)

RUN_DIR = os.environ.get("BK_RUN_DIR", ".run/test")
BIN_DIR = os.environ.get("BK_BIN_DIR", "build/test/bin")
REPO = os.environ.get("BK_REPO", ".")
NAME = "payment-worker"


def pid_file():
    return os.path.join(RUN_DIR, f"{NAME}.pid")


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def consumers(queue):
    # health answers 503 (same body) while a worker is missing
    status, _, body = http("GET", "/api/health/")
    return body["queues"][queue]["consumers"] if status in (200, 503) else None


def wait(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


class WorkerDown(unittest.TestCase):
    def start_worker(self):
        start_process(NAME)

    def test_stopped_worker_gives_503_and_nothing_is_lost(self):
        token, _ = register_and_login("down")
        status, _, order = http("POST", "/api/orders/", {"product_name": "lamp", "quantity": 2,
                                                         "price": "4.50"}, token=token)
        self.assertEqual(status, 201, order)
        with open(pid_file()) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, signal.SIGTERM)
        try:
            self.assertTrue(wait(lambda: not alive(pid), 15), "the worker did not stop on SIGTERM")
            self.assertTrue(wait(lambda: consumers("payment.commands") == 0, 10))
            status, _, body = http("GET", "/api/payments/", token=token)
            self.assertEqual((status, body), (503, {"detail": "Service unavailable."}))
            status, _, body = http("GET", "/api/health/")
            self.assertEqual((status, body["checks"]["workers"]["payment"]), (503, "no consumer"))
            # another service publishes a command meanwhile, fire-and-forget
            conn = amqp_connection()
            conn.channel().basic_publish("backend.commands", "payment.initiate", msgpack.packb(
                {"v": 1, "auth": token, "args": {"order": order["id"], "amount": order["total"]}}),
                pika.BasicProperties(content_type="application/msgpack", delivery_mode=2,
                                     message_id=str(uuid.uuid4()), user_id=SERVICE))
            conn.close()
        finally:
            self.start_worker()
        self.assertTrue(wait(lambda: (consumers("payment.commands") or 0) > 0, 20))
        # the command published while the worker was down ran once it came back
        def paid():
            status, _, body = http("GET", "/api/payments/", token=token)
            return status == 200 and body["count"] == 1
        self.assertTrue(wait(paid, 20), "the queued payment.initiate was not executed")
        status, _, body = http("GET", f"/api/orders/{order['id']}/", token=token)
        self.assertEqual(body["payment"]["amount"], "9.00")

class DeadLetterReplay(unittest.TestCase):
    def test_replayed_dead_letter_takes_effect_once(self):
        name = unique("replay")
        args = {"username": name, "email": f"{name}@example.com", "password": PASSWORD,
                "password2": PASSWORD}
        mid = str(uuid.uuid4())
        # as if it had failed five deliveries: 500 and into backend.dead
        reply = amqp_call("auth.register", args, message_id=mid,
                          headers={"x-delivery-count": 5})
        self.assertEqual(reply["status"], 500)
        out = subprocess.run([os.path.join(BIN_DIR, "backendctl"), "replay-dead-letters",
                              "--command", "auth.register"], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("replayed", out.stdout)

        def users():
            with db() as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM users WHERE username = %s", (name,))
                return cur.fetchone()[0]
        self.assertTrue(wait(lambda: users() == 1, 15), "the replayed command did not run")
        # the same message_id again: the stored reply, no second user
        again = amqp_call("auth.register", args, message_id=mid)
        self.assertEqual(again["status"], 201)
        self.assertEqual(users(), 1)


if __name__ == "__main__":
    unittest.main()
