"""Bounds of the HTTP bridge (issue 10, finding 8): what one client can no
longer do to the others.

- A worker queue at its max-length (overflow reject-publish) makes the broker
  nack the command: the bridge answers 503 with Retry-After at once. A
  command that no queue is bound for comes back (mandatory): 503 at once.
- One client address holds at most http_max_inflight_per_caller commands in
  flight: the next gets 429 with Retry-After, other addresses are served.
- A request with both Content-Length and Transfer-Encoding, with two
  different Content-Lengths or with a transfer coding other than chunked gets
  400 (501 for an unknown coding) and a closed connection: the request
  smuggled behind it is never answered (RFC 9112 section 6.3).
- A connection's request line and headers must arrive within
  http_header_timeout_s (slowloris); one address holds at most
  http_max_connections_per_address connections.

Limits and policies are tried on bridges of their own, started here on free
ports with small limits, in a vhost and with a broker user of their own on
the test broker, with this file's fake worker consuming the queues there: so
the test instance's workers, queues and limits (127.0.0.1 is every test's
address) are never touched. The smuggling tests need no limit and talk to the
test instance's bridge itself."""
import http.client as httpclient
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
import uuid

import msgpack
import pika

from helpers import wait, HTTP_URL, AMQP_HOST, AMQP_PORT

RUN_DIR = os.environ.get("BK_RUN_DIR", ".run/test")
BIN_DIR = os.environ.get("BK_BIN_DIR", "build/test/bin")
REPO = os.environ.get("BK_REPO", ".")
MAIN_PORT = int(HTTP_URL.rsplit(":", 1)[1].strip("/"))

VHOST = f"bounds-{uuid.uuid4().hex[:8]}"
USER = VHOST
PASSWORD = uuid.uuid4().hex


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
    try:
        rabbitmqctl("add_user", USER, PASSWORD)
        rabbitmqctl("add_vhost", VHOST)
        rabbitmqctl("set_permissions", "-p", VHOST, USER, ".*", ".*", ".*")
        declare_topology()
    except Exception:
        tearDownModule()  # unittest skips it when setUpModule fails
        raise


def declare_topology():
    """The contract's exchanges and worker queues in the vhost, declared as
    shared/amqp.c declares them (a bridge that declares them too finds them
    equal; one that leaves the topology to the admin finds it there)."""
    conn = amqp()
    try:
        ch = conn.channel()
        for exchange in ("backend.commands", "backend.events", "backend.dlx"):
            ch.exchange_declare(exchange, "topic", durable=True)
        ch.queue_declare("backend.dead", durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind("backend.dead", "backend.dlx", "#")
        for worker in ("auth", "profile", "order", "payment"):
            ch.queue_declare(f"{worker}.commands", durable=True,
                             arguments={"x-queue-type": "quorum",
                                        "x-dead-letter-exchange": "backend.dlx"})
            ch.queue_bind(f"{worker}.commands", "backend.commands", f"{worker}.#")
    finally:
        conn.close()


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
        # this file's broker user, whatever identity the instance's processes use
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BACKEND_AMQP_", "BACKEND_RELAY_AMQP_"))
               or k in ("BACKEND_AMQP_HOST", "BACKEND_AMQP_PORT")}
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
    """A full queue, an unroutable command and the per-caller limit, on one bridge."""

    @classmethod
    def setUpClass(cls):
        cls.bridge = Bridge("bounds-commands", http_timeout_ms=3000, http_retry_after_s=2,
                            http_max_inflight_per_caller=2)

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
                # the held one: a GET is published again at half its time (a
                # lost read, rpc.h), into the full queue: refused, 503; else 504
                self.assertIn(sent[0].result[0], (503, 504))
                self.assertGreaterEqual(len(sent), 2)
            finally:
                # what still waits in the queue expires first (http_timeout_ms):
                # a quorum queue over its max-length takes publishes again only
                # once something leaves it, policy or not
                time.sleep(3.2)
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

    def test_commands_in_flight_per_caller(self):
        port = self.bridge.port
        with FakeWorker() as worker:
            self.assertTrue(served(port))
            held = [in_thread(request, port, "/api/orders/?hold=1") for _ in range(2)]
            self.assertTrue(wait(lambda: worker.held == 2, 5), "the commands were not held")
            # the third from the same address: refused at once, never published
            status, hdrs, body, took = request(port, "/api/orders/")
            self.assertEqual(status, 429, body)
            self.assertEqual(hdrs.get("retry-after"), "2")
            self.assertEqual(body,
                             b'{"detail":"Request was throttled. Expected available in 2 seconds."}')
            self.assertLess(took, 1.0)
            self.assertEqual(worker.held, 2)
            # another address is not affected
            self.assertEqual(request(port, "/api/orders/", "127.0.0.2")[0], 200)
            for t in held:
                t.join(10)
                self.assertEqual(t.result[0], 504)
            # the slots are free again once the held commands are over
            self.assertEqual(request(port, "/api/orders/")[0], 200)


def exchange(data, port=MAIN_PORT, timeout=10):
    """Sends data in one write and reads until the server closes (or timeout).
    Returns (everything read, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return b"", True
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return got, False
            except ConnectionResetError:
                return got, True
            if not chunk:
                return got, True
            got += chunk
        return got, False


def statuses(raw):
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


SMUGGLED = b"GET /api/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
LIVE_CLOSE = b"GET /api/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def post(headers, body):
    return (b"POST /api/auth/token/verify/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n" + headers + b"\r\n" + body)


class Smuggling(unittest.TestCase):
    """RFC 9112 section 6.3 on the test instance's bridge: raw sockets, the
    smuggled request in the same write as the one hiding it."""

    def assert_refused(self, data, status, detail=None):
        raw, closed = exchange(data)
        self.assertTrue(closed, f"the connection stayed open after {raw!r}")
        self.assertEqual(statuses(raw), [status], raw)  # the smuggled one got no answer
        self.assertIn(b"\r\nConnection: close\r\n", raw)
        self.assertNotIn(b'{"status":"ok"}', raw)
        if detail:
            self.assertIn(detail, raw)

    def test_content_length_with_transfer_encoding(self):
        self.assert_refused(post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                                 b"0\r\n\r\n" + SMUGGLED), 400,
                            b"Content-Length and Transfer-Encoding together")
        self.assert_refused(post(b"Transfer-Encoding: chunked\r\nContent-Length: 48\r\n",
                                 b"0\r\n\r\n" + SMUGGLED), 400)

    def test_two_different_content_lengths(self):
        self.assert_refused(post(b"Content-Length: 2\r\nContent-Length: 60\r\n",
                                 b"{}" + SMUGGLED), 400, b"conflicting Content-Length")
        self.assert_refused(post(b"Content-Length: 60\r\nContent-Length: 2\r\n",
                                 b"{}" + SMUGGLED), 400)

    def test_content_length_list_of_different_values(self):
        # libmicrohttpd refuses this one itself (before the bridge sees it), with
        # its own HTML page, sent twice by 0.9.75; what matters: nothing else
        raw, closed = exchange(post(b"Content-Length: 2, 60\r\n", b"{}" + SMUGGLED))
        self.assertTrue(closed)
        self.assertEqual(set(statuses(raw)), {400}, raw)
        self.assertNotIn(b'{"status":"ok"}', raw)

    def test_transfer_coding_other_than_chunked(self):
        # libmicrohttpd would read this body until the connection ends
        self.assert_refused(post(b"Transfer-Encoding: gzip\r\n", b"x" + SMUGGLED), 400,
                            b"does not end with chunked")
        self.assert_refused(post(b"Transfer-Encoding: gzip, chunked\r\n",
                                 b"0\r\n\r\n" + SMUGGLED), 501)
        self.assert_refused(post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                 b"0\r\n\r\n" + SMUGGLED), 501)

    def test_unambiguous_requests_still_pipeline(self):
        """The controls: two equal Content-Lengths and a plain chunked body are
        fine, and the next request on the connection is answered."""
        for headers, body in ((b"Content-Length: 2\r\nContent-Length: 2\r\n", b"{}"),
                              (b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"),
                              (b"Content-Length: 2\r\n", b"{}")):
            with self.subTest(headers=headers):
                raw, closed = exchange(post(headers, body) + LIVE_CLOSE)
                self.assertTrue(closed)
                self.assertEqual(statuses(raw), [400, 200], raw)  # 400: no "token" field
                self.assertIn(b'{"token":', raw)


class SlowSenders(unittest.TestCase):
    """Header deadline and per-address connection cap, on a bridge of their own."""

    TIMEOUT_S = 2
    CAP = 3

    @classmethod
    def setUpClass(cls):
        cls.bridge = Bridge("bounds-connections", http_header_timeout_s=cls.TIMEOUT_S,
                            http_max_connections_per_address=cls.CAP)

    @classmethod
    def tearDownClass(cls):
        cls.bridge.stop()

    def drip(self, prefix, step=0.5, limit=15):
        """Sends prefix, then one header byte every step seconds until the server
        closes; returns the seconds that took (None: still open after limit)."""
        with socket.create_connection(("127.0.0.1", self.bridge.port), timeout=limit) as s:
            started = time.monotonic()
            s.sendall(prefix)
            s.settimeout(step)
            while time.monotonic() - started < limit:
                try:
                    if s.recv(4096) == b"":
                        return time.monotonic() - started
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    return time.monotonic() - started
                try:
                    s.sendall(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - started
            return None

    def test_slowloris_headers_are_cut_off(self):
        took = self.drip(b"GET /api/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        self.assertIsNotNone(took, "a header sent a byte a second kept the connection open")
        self.assertLess(took, self.TIMEOUT_S + 2)
        self.assertGreaterEqual(took, self.TIMEOUT_S - 0.5)

    def test_slow_request_line_is_cut_off(self):
        took = self.drip(b"G")
        self.assertIsNotNone(took)
        self.assertLess(took, self.TIMEOUT_S + 2)

    def test_keep_alive_and_prompt_requests_are_served(self):
        conn = httpclient.HTTPConnection("127.0.0.1", self.bridge.port, timeout=10)
        try:
            for _ in range(2):
                conn.request("GET", "/api/health/live")
                resp = conn.getresponse()
                self.assertEqual((resp.status, resp.read()), (200, b'{"status":"ok"}'))
                # silence between requests is the idle timeout's business, not this one
                time.sleep(self.TIMEOUT_S + 0.5)
        finally:
            conn.close()

    def test_connections_per_address(self):
        port = self.bridge.port
        held = []
        try:
            for _ in range(self.CAP):
                conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/health/live")
                self.assertEqual(conn.getresponse().read(), b'{"status":"ok"}')
                held.append(conn)  # kept open (keep-alive)
            # one more from the same address is closed without an answer
            raw, closed = exchange(LIVE_CLOSE, port, timeout=5)
            self.assertTrue(closed)
            self.assertEqual(raw, b"")
            # another address still gets in
            self.assertEqual(request(port, "/api/health/live", "127.0.0.2")[0], 200)
            # and this one again once one of its connections is gone
            held.pop().close()
            self.assertTrue(wait(lambda: statuses(exchange(LIVE_CLOSE, port, timeout=5)[0])
                                 == [200], 5))
        finally:
            for conn in held:
                conn.close()


if __name__ == "__main__":
    unittest.main()
