"""Bounds of the HTTP bridge (issue 10, finding 8): what one client can no
longer do to the others.

- A worker queue at its max-length (overflow reject-publish) makes the broker
  nack the command: the bridge answers 503 with Retry-After at once. A
  command that no queue is bound for comes back (mandatory): 503 at once.

Limits and policies are tried on bridges of their own, started here on free
ports with small limits, in a vhost and with a broker user of their own on
the test broker, with this file's fake worker consuming the queues there: so
the test instance's workers, queues and limits (127.0.0.1 is every test's
address) are never touched."""
import http.client as httpclient
import os
import signal
import socket
import subprocess
import threading
import time
import unittest
import uuid

import msgpack
import pika

from helpers import AMQP_HOST, AMQP_PORT

RUN_DIR = os.environ.get("BK_RUN_DIR", ".run/test")
BIN_DIR = os.environ.get("BK_BIN_DIR", "build/test/bin")
REPO = os.environ.get("BK_REPO", ".")

VHOST = f"bounds-{uuid.uuid4().hex[:8]}"
USER = VHOST
PASSWORD = uuid.uuid4().hex
_broker_ready = False


def rabbitmqctl(*args):
    """rabbitmqctl against the test instance's node, as scripts/lib.sh runs it."""
    env = dict(os.environ, BK_TEST_DIR=RUN_DIR)
    proc = subprocess.run(
        ["bash", "-c", '. scripts/lib.sh && bk_instance test && bk_rabbitmqctl "$@"',
         "rabbitmqctl", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def setUpModule():
    global _broker_ready
    rabbitmqctl("add_user", USER, PASSWORD)
    rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, USER, ".*", ".*", ".*")
    _broker_ready = True


def tearDownModule():
    # deleting the vhost takes its queues, policies and permissions with it
    for args in (("delete_vhost", VHOST), ("delete_user", USER)):
        try:
            rabbitmqctl(*args)
        except AssertionError as e:
            print(f"cleanup: {e}")


def amqp():
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=AMQP_HOST, port=AMQP_PORT, virtual_host=VHOST,
        credentials=pika.PlainCredentials(USER, PASSWORD), heartbeat=0,
        blocked_connection_timeout=30))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = pred()
        if result:
            return result
        time.sleep(step)
    return None


def request(port, path, source="127.0.0.1", timeout=15, method="GET"):
    """(status, headers with lower-case names, body bytes, seconds taken)."""
    started = time.monotonic()
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                     source_address=(source, 0))
    try:
        conn.request(method, path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        return (resp.status, {k.lower(): v for k, v in resp.getheaders()}, body,
                time.monotonic() - started)
    finally:
        conn.close()


def in_thread(fn, *args, **kwargs):
    """Runs fn in a thread; .join() then .result holds its return value."""
    t = threading.Thread(target=lambda: setattr(t, "result", fn(*args, **kwargs)), daemon=True)
    t.result = None
    t.start()
    return t


class Bridge:
    """A bridge process of its own on a free port, in this file's vhost, with
    the given BACKEND_* overrides; stopped (SIGTERM, by its PID) by stop()."""

    def __init__(self, name, **config):
        self.port = free_port()
        self.log = os.path.join(RUN_DIR, "log", f"bridge-{name}.log")
        env = dict(os.environ)
        env.update({"BACKEND_HTTP_PORT": str(self.port), "BACKEND_AMQP_VHOST": VHOST,
                    "BACKEND_AMQP_USER": USER, "BACKEND_AMQP_PASSWORD": PASSWORD,
                    "BACKEND_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}"})
        env.update({f"BACKEND_{k.upper()}": str(v) for k, v in config.items()})
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([os.path.join(BIN_DIR, "bridge")], cwd=REPO, env=env,
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        ok = wait(lambda: self.proc.poll() is None and self.live(), 15)
        if not ok:
            self.stop()
            raise AssertionError(f"the bridge on port {self.port} did not start: see {self.log}")
        # the AMQP side declares the topology in the vhost when it connects
        if not wait(lambda: "connected to the broker" in self.read_log(), 15):
            self.stop()
            raise AssertionError(f"the bridge did not reach the broker: see {self.log}")

    def live(self):
        try:
            return request(self.port, "/api/health/live", timeout=2)[0] == 200
        except OSError:
            return False

    def read_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # the bridge runs under the sanitizers too: scripts/test only reads its own logs
        text = self.read_log()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error"):
            if bad in text:
                raise AssertionError(f"sanitizer report in {self.log}")


class FakeWorker(threading.Thread):
    """Consumes a worker queue of the vhost in its own thread and connection:
    replies 200 {"ok": true} to each command, except those with the query
    parameter "hold", which it keeps unacked and unanswered (in flight until
    the bridge's timeout)."""

    def __init__(self, queue="order.commands", prefetch=50):
        super().__init__(daemon=True)
        self.queue, self.prefetch = queue, prefetch
        self.held = 0
        self.held_tags = []
        self.stopping = False
        self.ready = threading.Event()

    def run(self):
        conn = amqp()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=self.prefetch)
        ch.basic_consume(self.queue, self.on_command, auto_ack=False)
        self.ready.set()
        while not self.stopping:
            conn.process_data_events(time_limit=0.1)
        for tag in self.held_tags:  # dropped, so that the next fake worker starts afresh
            ch.basic_nack(tag, requeue=False)
        conn.close()

    def on_command(self, ch, method, props, body):
        args = msgpack.unpackb(body, raw=False).get("args") or {}
        if "hold" in args:
            self.held += 1
            self.held_tags.append(method.delivery_tag)
            return
        ch.basic_publish("", props.reply_to,
                         msgpack.packb({"status": 200, "body": {"ok": True}}),
                         pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    def __enter__(self):
        self.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.join(10)
        return False


def served(port, source="127.0.0.1"):
    """True once the bridge has seen the fake worker's consumer and its reply came."""
    return wait(lambda: request(port, "/api/orders/", source)[0] == 200, 10)


class CommandBounds(unittest.TestCase):
    """A full queue and an unroutable command, on one bridge."""

    @classmethod
    def setUpClass(cls):
        cls.bridge = Bridge("bounds-commands", http_timeout_ms=3000, http_retry_after_s=2)

    @classmethod
    def tearDownClass(cls):
        cls.bridge.stop()

    def test_full_queue_is_503_with_retry_after_at_once(self):
        port = self.bridge.port
        with FakeWorker(prefetch=1) as worker:
            self.assertTrue(served(port), "the bridge did not reach the fake worker")
            rabbitmqctl("set_policy", "-p", VHOST, "--apply-to", "queues", "--priority", "100",
                        "bounds-test-full", r"^order\.commands$",
                        '{"max-length": 1, "overflow": "reject-publish"}')
            try:
                # The first is delivered and held, the next wait in the queue until
                # it is over its length (a quorum queue counts the ready ones);
                # then the broker refuses: answered at once. Each from an address
                # of its own (this bridge allows 2 in flight per address).
                sent = []
                for i in range(8):
                    sent.append(in_thread(request, port, "/api/orders/?hold=1", f"127.0.0.{i + 2}"))
                    time.sleep(0.4)
                    if sent[-1].result and sent[-1].result[0] == 503:
                        break
                for t in sent:
                    t.join(10)
                status, hdrs, body, took = sent[-1].result
                self.assertEqual(status, 503, body)
                self.assertEqual(hdrs.get("retry-after"), "2")
                self.assertEqual(
                    body, b'{"detail":"Service busy: too many commands queued. Try again later."}')
                self.assertTrue(hdrs["content-type"].startswith("application/json"))
                self.assertLess(took, 1.5, "a refused command waited for the timeout")
                self.assertEqual(worker.held, 1)
                self.assertEqual(sent[0].result[0], 504)  # the held one
                self.assertGreaterEqual(len(sent), 2)
            finally:
                rabbitmqctl("clear_policy", "-p", VHOST, "bounds-test-full")
        # without the policy, the queue takes commands again
        with FakeWorker():
            self.assertTrue(served(port), "commands still refused after the policy was cleared")

    def test_unroutable_command_is_503_at_once(self):
        port = self.bridge.port
        with FakeWorker():
            self.assertTrue(served(port))
            conn = amqp()
            try:
                ch = conn.channel()
                ch.queue_unbind("order.commands", "backend.commands", "order.#")
                try:
                    # the consumer is there, the binding is not: the broker returns it
                    status, hdrs, body, took = request(port, "/api/orders/")
                    self.assertEqual(status, 503, body)
                    self.assertEqual(body, b'{"detail":"Service unavailable."}')
                    self.assertLess(took, 1.5, "a returned command waited for the timeout")
                finally:
                    ch.queue_bind("order.commands", "backend.commands", "order.#")
            finally:
                conn.close()
            self.assertEqual(request(port, "/api/orders/")[0], 200)


if __name__ == "__main__":
    unittest.main()
