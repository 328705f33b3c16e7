"""Reads do not pay for Raft (issue 13 item 4): read commands travel
<worker>.reads, a classic non-durable queue bound on backend.commands by
name from each worker's command table; writes (and unknown names) reach the
quorum <worker>.commands through backend.commands' alternate exchange
backend.writes. A read the classic queue delivers again is not run (503,
"retry": true), and the bridge publishes a lost GET once more.

Against the live test instance: the broker's own view of queues and
bindings (rabbitmqctl), SIGSTOP/SIGKILL of real worker copies, the worker and
bridge logs."""
import os
import signal
import subprocess
import threading
import time
import unittest

import pika

from helpers import (BIN_DIR, REPO, RUN_DIR, amqp_call, amqp_connection, http,
                     register_and_login, wait)

WORKERS = ("auth", "profile", "order", "payment")


def rabbitmqctl(*args):
    """rabbitmqctl against the test instance's node, as scripts/lib.sh runs it."""
    env = dict(os.environ, BK_TEST_DIR=RUN_DIR)
    proc = subprocess.run(
        ["bash", "-c", '. scripts/lib.sh && bk_instance test && bk_rabbitmqctl "$@"',
         "rabbitmqctl", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def table(*args):
    """rabbitmqctl -q --no-table-headers output as rows of tab-separated fields."""
    out = rabbitmqctl("-q", "--no-table-headers", *args)
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def read_commands(worker):
    out = subprocess.run([os.path.join(BIN_DIR, f"{worker}-worker"), "--read-commands"],
                         capture_output=True, text=True, timeout=10, check=True, env={})
    return set(out.stdout.split())


def queues():
    """{name: {"type", "durable", "consumers", "ready", "unacked"}}"""
    return {r[0]: {"type": r[1], "durable": r[2], "consumers": int(r[3]), "ready": int(r[4]),
                   "unacked": int(r[5])}
            for r in table("list_queues", "name", "type", "durable", "consumers",
                           "messages_ready", "messages_unacknowledged")}


def bindings():
    """[(source, destination, routing_key)] of queue bindings."""
    return [(r[0], r[1], r[2]) for r in table("list_bindings", "source_name", "destination_name",
                                              "routing_key", "destination_kind")
            if r[3] == "queue"]


def copies(worker):
    """PIDs of the worker's copies (children of the supervisor in its PID file)."""
    with open(os.path.join(RUN_DIR, f"{worker}-worker.pid")) as f:
        sup = int(f.read().split()[0])
    out = subprocess.run(["pgrep", "-P", str(sup)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def log_text(name):
    with open(os.path.join(RUN_DIR, "log", f"{name}.log"), errors="replace") as f:
        return f.read()


def order_for_reads():
    """A user's token and the id of an order of theirs."""
    token, _ = register_and_login("reader")
    status, _, body = http("POST", "/api/orders/", {"product_name": "Book", "quantity": 1,
                                                    "price": "9.50"}, token=token)
    assert status == 201, (status, body)
    return token, body["id"]


def wait_reads_consumed(worker, n, timeout=20):
    return wait(lambda: queues().get(f"{worker}.reads", {}).get("consumers", 0) >= n, timeout)


class Topology(unittest.TestCase):
    def test_reads_queue_per_worker_bound_from_the_command_table(self):
        qs, bs = queues(), bindings()
        for w in WORKERS:
            with self.subTest(worker=w):
                reads = read_commands(w)
                self.assertTrue(reads, f"{w} has read commands")
                q = qs.get(f"{w}.reads")
                self.assertIsNotNone(q, f"{w}.reads exists")
                self.assertEqual((q["type"], q["durable"]), ("classic", "false"))
                self.assertEqual(qs[f"{w}.commands"]["type"], "quorum")
                bound = {k for s, d, k in bs if s == "backend.commands" and d == f"{w}.reads"}
                self.assertEqual(bound, reads)
                # the quorum queue takes only what backend.commands does not route
                self.assertEqual([k for s, d, k in bs if s == "backend.commands"
                                  and d == f"{w}.commands"], [])
                self.assertIn(("backend.writes", f"{w}.commands", f"{w}.#"), bs)

    def test_worker_identity_binds_only_its_own_reads(self):
        conn = amqp_connection("order-worker")
        try:
            ch = conn.channel()
            ch.queue_bind("order.reads", "backend.commands", routing_key="order.get")  # its own
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
                ch.queue_bind("order.reads", "backend.commands", routing_key="auth.login")
            self.assertEqual(e.exception.reply_code, 403)
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
                ch.queue_bind("order.reads", "backend.commands", routing_key="order.place")
            self.assertEqual(e.exception.reply_code, 403)  # a write would run twice
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
                ch.queue_declare("auth.reads", arguments={"x-queue-type": "classic"})
            self.assertEqual(e.exception.reply_code, 403)
        finally:
            if conn.is_open:
                conn.close()
        self.assertNotIn(("backend.commands", "order.reads", "auth.login"), bindings())

    def test_writes_and_unknown_names_still_reach_the_quorum_queue(self):
        token, order_id = order_for_reads()
        reply = amqp_call("order.nope", {}, token=token)
        self.assertEqual(reply["status"], 400)
        self.assertEqual(reply["body"], {"detail": 'Unknown command "order.nope".'})
        status, _, body = http("GET", f"/api/orders/{order_id}/", token=token)
        self.assertEqual((status, body["id"]), (200, order_id))


class ReadPath(unittest.TestCase):
    def setUp(self):
        self.token, self.order_id = order_for_reads()
        self.assertTrue(wait_reads_consumed("order", 2), "order.reads has its consumers")

    def test_get_travels_the_reads_queue_and_a_lost_one_is_retried(self):
        """SIGSTOP both order copies, GET: the read waits on order.reads (not on
        order.commands); SIGKILL the copies holding it: the new copy refuses
        the redelivery (503 retry) and the bridge publishes it again: 200."""
        pids = copies("order")
        self.assertEqual(len(pids), 2)
        result = {}

        def get():
            result["r"] = http("GET", f"/api/orders/{self.order_id}/", token=self.token)

        for p in pids:
            os.kill(p, signal.SIGSTOP)
        t = threading.Thread(target=get)
        try:
            t0 = time.monotonic()
            t.start()
            held = wait(lambda: queues()["order.reads"]["unacked"] >= 1, 2, step=0.05)
            self.assertTrue(held, "the GET is held by a stopped copy, on order.reads")
            self.assertEqual(queues()["order.commands"]["unacked"], 0)
        finally:
            for p in pids:
                os.kill(p, signal.SIGKILL)
        t.join(10)
        status, _, body = result["r"]
        self.assertEqual((status, body.get("id")), (200, self.order_id))
        self.assertLess(time.monotonic() - t0, 5.5)  # within http_timeout_ms
        self.assertIn("published again", log_text("bridge"))
        self.assertTrue(wait(lambda: len(copies("order")) == 2, 10))

    def test_poison_read_is_run_once_per_publish(self):
        """A read that kills every copy it reaches: the first copy dies, the
        redelivery is not run but answered 503 with retry: true; no loop."""
        before = log_text("order-worker").count("test hook: SIGKILL every-read")
        reply = amqp_call("order.get", {"id": str(self.order_id)}, token=self.token,
                          headers={"x-test-crash": "every-read"}, timeout=20)
        self.assertEqual(reply["status"], 503)
        self.assertIs(reply.get("retry"), True)
        time.sleep(2)  # a loop would kill the other copies by now
        after = log_text("order-worker")
        self.assertEqual(after.count("test hook: SIGKILL every-read") - before, 1)
        self.assertIn("read delivered again", after)
        self.assertTrue(wait(lambda: len(copies("order")) == 2, 10))

    def test_reads_queue_gone_falls_back_then_is_declared_again(self):
        """The read queue deleted (as when its node dies): reads go on through
        the quorum queue, and the copies (cancelled consumers) reconnect and
        declare it again, bound as before."""
        conn = amqp_connection("admin")
        try:
            conn.channel().queue_delete("order.reads")
        finally:
            conn.close()
        status, _, body = http("GET", f"/api/orders/{self.order_id}/", token=self.token)
        self.assertEqual((status, body.get("id")), (200, self.order_id))
        self.assertTrue(wait_reads_consumed("order", 2), "order.reads declared and consumed again")
        bound = {k for s, d, k in bindings() if s == "backend.commands" and d == "order.reads"}
        self.assertEqual(bound, read_commands("order"))
        status, _, body = http("GET", f"/api/orders/{self.order_id}/", token=self.token)
        self.assertEqual((status, body.get("id")), (200, self.order_id))

if __name__ == "__main__":
    unittest.main()
