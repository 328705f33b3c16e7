"""A 3-node RabbitMQ cluster: the worker queues are quorum queues with a member
on every node, the processes spread their connections over the nodes, and a
node killed with SIGKILL under load loses nothing.

Runs only against a cluster (`scripts/test cluster`, or the last step of
`scripts/test`), which passes BK_CLUSTER_DIR (nodes, rabbitmqctl) and
BK_AMQP_NODES; skipped otherwise. It leaves one node killed.

A third kills the node holding order.reads (a classic queue lives on one
node) under GET load: every GET is answered 200 (retried by the client on a
5xx, counted), and order.reads is declared again on a live node.

Two load tests place orders over HTTP from several clients, each order with
its own Idempotency-Key, retried with that key on a 5xx or a broken
connection (a 503 while the bridge fails over, a 504 for a reply lost with a
node), while a node is killed with SIGKILL: first the leader of
order.commands, then (after scripts/cluster start brought it back) the node
the bridge's connection is on. Then: every order was answered 201, with a
bounded pause; each exists exactly once in PostgreSQL, with the id of its
answer; health is 200 again within a bounded time; the order.placed event of
every committed order reached a durable quorum queue bound (as admin) before
the load. The last line of each says what happened (pause, retries, events,
dead letters).
"""
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest
import uuid

import msgpack
import pika

from helpers import ADMIN, EVENTS_EXCHANGE, REPO, broker_password, db, http, register_and_login

CLUSTER_DIR = os.environ.get("BK_CLUSTER_DIR", "")
AMQP_NODES = os.environ.get("BK_AMQP_NODES", "")
WORKER_QUEUES = ("auth.commands", "profile.commands", "order.commands", "payment.commands")

ORDERS = int(os.environ.get("BK_CLUSTER_ORDERS", "300"))
CLIENTS = int(os.environ.get("BK_CLUSTER_CLIENTS", "6"))
MAX_PAUSE_S = 30       # no order completes for at most this long around the kill
MAX_HEALTH_S = 30      # health answers 200 again within this after the kill
ORDER_DEADLINE_S = 90  # one order is retried for at most this long


def nodes():
    """[(index, name, amqp_port, pid_file)] from <cluster>/nodes."""
    out = []
    with open(os.path.join(CLUSTER_DIR, "nodes")) as f:
        for line in f:
            i, name, amqp, _dist, d = line.split()
            out.append((int(i), name, int(amqp), os.path.join(d, "rabbit.pid")))
    return out


def pid_alive(pid_file):
    try:
        with open(pid_file) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return pid if f.read().rsplit(")", 1)[1].split()[0] != "Z" else None
    except (OSError, ValueError, IndexError):
        return None


def cluster_up():
    return bool(CLUSTER_DIR) and os.path.exists(os.path.join(CLUSTER_DIR, "nodes")) and \
        all(pid_alive(p) for _, _, _, p in nodes())


def rabbitmqctl(*args):
    out = subprocess.run([os.path.join(CLUSTER_DIR, "rabbitmqctl"), *args], capture_output=True,
                         text=True, timeout=90)
    if out.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)}: {out.stderr or out.stdout}")
    return out.stdout


def queues():
    """{name: {type, leader, members}} of every queue."""
    rows = json.loads(rabbitmqctl("list_queues", "name", "type", "leader", "members",
                                  "--formatter", "json"))
    return {r["name"]: r for r in rows}


def admin_connection():
    """pika as admin to the first node that answers."""
    last = None
    for _, _, port, pid_file in nodes():
        if not pid_alive(pid_file):
            continue
        try:
            return pika.BlockingConnection(pika.ConnectionParameters(
                host="127.0.0.1", port=port,
                credentials=pika.PlainCredentials(ADMIN, broker_password(ADMIN)),
                heartbeat=0, blocked_connection_timeout=30, connection_attempts=1))
        except pika.exceptions.AMQPError as e:
            last = e
    raise AssertionError(f"no cluster node accepts an AMQP connection: {last}")


def dead_letters_of(ch, marker):
    """How many messages in backend.dead contain marker; all stay there."""
    n, tags = 0, []
    while True:
        method, _, body = ch.basic_get("backend.dead", auto_ack=False)
        if method is None:
            break
        tags.append(method.delivery_tag)
        n += marker in body
    if tags:
        ch.basic_nack(tags[-1], multiple=True, requeue=True)
    return n


def restart_killed_nodes():
    """scripts/cluster start for this instance: starts the nodes that do not
    run, and returns once every worker queue has all its members online."""
    if not all(pid_alive(p) for _, _, _, p in nodes()):
        env = dict(os.environ, BK_TEST_DIR=os.environ.get("BK_RUN_DIR", ".run/test"))
        out = subprocess.run([os.path.join(REPO, "scripts", "cluster"), "start", "test"], env=env,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise AssertionError(f"scripts/cluster start test: {out.stdout}{out.stderr}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = json.loads(rabbitmqctl("list_queues", "name", "online", "--formatter", "json"))
        if all(len(r["online"]) == len(nodes()) for r in rows if r["name"] in WORKER_QUEUES):
            return
        time.sleep(0.5)
    raise AssertionError(f"worker queues without every member online: {rows}")


@unittest.skipUnless(cluster_up(), "no RabbitMQ cluster (scripts/test cluster starts one)")
class Cluster(unittest.TestCase):
    def test_quorum_queues_have_a_member_on_every_node(self):
        names = sorted(n for _, n, _, _ in nodes())
        qs = queues()
        for q in WORKER_QUEUES + ("backend.dead",):
            self.assertIn(q, qs)
            self.assertEqual(qs[q]["type"], "quorum", q)
        # and every other quorum queue broker-setup declares (delays, subscribers)
        for q, row in sorted(qs.items()):
            if row["type"] == "quorum" and not q.startswith("cluster-tap."):
                with self.subTest(queue=q):
                    self.assertEqual(sorted(row["members"]), names)

    def test_processes_take_every_node(self):
        # amqp_nodes reaches the processes: the bridge and every worker log
        # which node each of their connections landed on
        log_dir = os.path.join(os.environ.get("BK_RUN_DIR", ".run/test"), "log")
        ports = {str(p) for _, _, p, _ in nodes()}
        used = set()
        for name in ("bridge", "auth-worker", "profile-worker", "order-worker", "payment-worker",
                     "notify-worker"):
            with open(os.path.join(log_dir, f"{name}.log"), errors="replace") as f:
                lines = [ln for ln in f if "amqp: " in ln and " connected to 127.0.0.1:" in ln]
            self.assertTrue(lines, f"{name} logged no cluster connection")
            used |= {re.search(r" connected to 127\.0\.0\.1:(\d+)", ln).group(1) for ln in lines}
        self.assertTrue(used <= ports, (used, ports))
        self.assertGreaterEqual(len(used), 2, "copies did not spread over the nodes")

    # these two run last (unittest sorts by name): they kill nodes
    def test_z1_order_leader_killed_under_load_loses_nothing(self):
        leader = queues()["order.commands"]["leader"]
        self.load_and_kill(leader, "the leader of order.commands")

    def test_z2_bridge_node_killed_under_load_loses_nothing(self):
        # the node z1 killed comes back and catches up first
        restart_killed_nodes()
        conns = json.loads(rabbitmqctl("list_connections", "user", "port", "--formatter", "json"))
        port = next(c["port"] for c in conns if c["user"] == "bridge")
        victim = next(n[1] for n in nodes() if n[2] == port)
        self.load_and_kill(victim, "the node of the bridge's connection")

    def test_z3_read_queue_node_killed_reads_recover(self):
        """order.reads is a classic queue on one node: SIGKILL that node under
        GET load. Reads fall through to order.commands (quorum) at once, lost ones are
        published again by the bridge, and the copies declare order.reads
        again on a live node."""
        restart_killed_nodes()

        def reads_queue():
            # the text form names the node in the process id ("<node.1.2.3>"); JSON does not
            rows = [ln.split("\t") for ln in rabbitmqctl(
                "-q", "--no-table-headers", "list_queues", "name", "pid", "consumers").splitlines()]
            q = next(({"name": r[0], "pid": r[1], "consumers": int(r[2])} for r in rows
                      if len(r) == 3 and r[0] == "order.reads"), None)
            if q:
                q["node"] = next((n for _, n, _, _ in nodes() if f"<{n}." in q["pid"]), q["pid"])
            return q

        deadline = time.monotonic() + 30
        while not ((q := reads_queue()) and q["consumers"] >= 1) and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertTrue(q and q["consumers"] >= 1, f"order.reads not consumed: {q}")
        victim = next((n for n in nodes() if n[1] == q["node"]), None)
        self.assertIsNotNone(victim, f"order.reads on no node we know: {q}")
        victim_pid = pid_alive(victim[3])
        token, _ = register_and_login("cluster-reader")
        status, _, order = http("POST", "/api/orders/", {"product_name": "cluster read",
                                                         "quantity": 1, "price": "1.00"},
                                token=token)
        self.assertEqual(status, 201)
        total = ORDERS
        lock = threading.Lock()
        answered, failures, statuses, retries = [], [], {}, [0]
        next_i = iter(range(total))

        def client():
            while True:
                with lock:
                    i = next(next_i, None)
                if i is None:
                    return
                until = time.monotonic() + ORDER_DEADLINE_S
                while time.monotonic() < until:
                    try:
                        st, _, body = http("GET", f"/api/orders/{order['id']}/", token=token,
                                           timeout=15)
                    except OSError:
                        st, body = None, None
                    with lock:
                        statuses[st] = statuses.get(st, 0) + 1
                    if st == 200 and body["id"] == order["id"]:
                        with lock:
                            answered.append(time.monotonic())
                        break
                    if st is None or st >= 500:
                        with lock:
                            retries[0] += 1
                        time.sleep(0.2)
                        continue
                    with lock:
                        failures.append((st, body))
                    break

        threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        while len(answered) < total // 3 and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        os.kill(victim_pid, signal.SIGKILL)
        killed = time.monotonic()
        for t in threads:
            t.join(ORDER_DEADLINE_S + 30)
        back = None
        while time.monotonic() - killed < 30:
            try:
                q = reads_queue()
            except AssertionError:  # rabbitmqctl asked the dead node
                q = None
            if q and q["node"] != victim[1] and q["consumers"] >= 1:
                back = time.monotonic() - killed
                break
            time.sleep(0.2)
        done = sorted(answered)
        gaps = [b - a for a, b in zip(done, done[1:]) if b > killed]
        pause = max(gaps or [0.0])
        print(f"\ncluster reads: {total} GETs from {CLIENTS} clients; killed {victim[1]} (the "
              f"node of order.reads) after {total // 3}; statuses {statuses}; client retries "
              f"{retries[0]}; longest pause {pause:.2f}s; order.reads on "
              f"{q['node'] if q else None} with {q['consumers'] if q else 0} consumers "
              f"{back if back is None else f'{back:.1f}s'} after the kill", flush=True)
        self.assertEqual(failures, [])
        self.assertEqual(len(answered), total)
        self.assertLess(pause, MAX_PAUSE_S)
        self.assertIsNotNone(back, "order.reads was not declared again on a live node")

    def load_and_kill(self, victim_name, why):
        """Places ORDERS orders from CLIENTS clients, SIGKILLs node victim_name
        after a third of them, and checks that nothing was lost."""
        run = uuid.uuid4().hex[:8]
        tap = f"cluster-tap.{run}"
        conn = admin_connection()
        ch = conn.channel()
        ch.queue_declare(tap, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(tap, EVENTS_EXCHANGE, routing_key="order.placed")
        conn.close()
        token, _ = register_and_login("cluster")

        victim = next(n for n in nodes() if n[1] == victim_name)
        victim_pid = pid_alive(victim[3])
        self.assertTrue(victim_pid, f"{victim_name} ({why}) does not run")
        leader = queues()["order.commands"]["leader"]
        bridge_on = {c["port"] for c in json.loads(rabbitmqctl(
            "list_connections", "user", "port", "--formatter", "json")) if c["user"] == "bridge"}

        lock = threading.Lock()
        answered = {}  # key -> (order id, time answered)
        failures = []
        retries = {"5xx": 0, "conn": 0}
        statuses = {}
        started = time.monotonic()
        next_i = iter(range(ORDERS))

        def place(i):
            key = f"cl-{run}-{i}"
            body = {"product_name": key, "quantity": 1, "price": "2.50"}
            until = time.monotonic() + ORDER_DEADLINE_S
            while time.monotonic() < until:
                try:
                    status, _, reply = http("POST", "/api/orders/", body, token=token,
                                            headers={"Idempotency-Key": key}, timeout=15)
                except OSError:
                    with lock:
                        retries["conn"] += 1
                    time.sleep(0.2)
                    continue
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                if status == 201:
                    with lock:
                        answered[key] = (reply["id"], time.monotonic())
                    return
                if status >= 500:
                    with lock:
                        retries["5xx"] += 1
                    time.sleep(0.2)
                    continue
                with lock:
                    failures.append((key, status, reply))
                return
            with lock:
                failures.append((key, "no answer", ORDER_DEADLINE_S))

        def client():
            while True:
                with lock:
                    i = next(next_i, None)
                if i is None:
                    return
                place(i)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        # kill the leader once a third of the orders is in
        while len(answered) < ORDERS // 3 and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        os.kill(victim_pid, signal.SIGKILL)
        killed = time.monotonic()
        # health: 200 again after the kill (0 when it never left 200 in the
        # 5 s the components need to notice)
        health_ok = None
        saw_unhealthy = False
        while time.monotonic() - killed < MAX_HEALTH_S + 30:
            try:
                status, _, _ = http("GET", "/api/health/", timeout=5)
            except OSError:
                status = None
            if status != 200:
                saw_unhealthy = True
            elif saw_unhealthy:
                health_ok = time.monotonic() - killed
                break
            elif time.monotonic() - killed > 5:
                health_ok = 0.0
                break
            time.sleep(0.1)
        for t in threads:
            t.join(ORDER_DEADLINE_S + 30)
        took = time.monotonic() - started

        # the longest time around the kill in which no order completed
        done = sorted(t for _, t in answered.values())
        before = [t for t in done if t <= killed]
        after = [t for t in done if t > killed]
        pause = (after[0] if after else time.monotonic()) - (before[-1] if before else killed)
        gaps = [b - a for a, b in zip(done, done[1:]) if b > killed]
        pause = max([pause] + gaps)

        # PostgreSQL: every answered order exactly once, with the answered id
        with db() as c, c.cursor() as cur:
            cur.execute("SELECT product_name, count(*), min(id) FROM orders "
                        "WHERE product_name LIKE %s GROUP BY product_name", (f"cl-{run}-%",))
            rows = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        twice = {k: n for k, (n, _) in rows.items() if n != 1}
        wrong = {k: (rows.get(k), v[0]) for k, v in answered.items()
                 if k not in rows or rows[k][1] != v[0]}

        # every committed order's event reached the tap, bound before the load
        want = {v[0] for v in answered.values()}
        seen, events, dups = set(), 0, 0
        ids = set()
        deadline = time.monotonic() + 60
        conn = admin_connection()
        ch = conn.channel()
        try:
            while not want <= seen and time.monotonic() < deadline:
                method, _, payload = ch.basic_get(tap, auto_ack=True)
                if method is None:
                    time.sleep(0.2)
                    continue
                ev = msgpack.unpackb(payload, raw=False)
                events += 1
                dups += ev["id"] in ids
                ids.add(ev["id"])
                seen.add(ev["data"]["id"])
            ch.queue_delete(tap)
            dead = dead_letters_of(ch, f"cl-{run}-".encode())
        finally:
            conn.close()
        missing = want - seen
        health = (f"health 200 again {health_ok:.2f}s after the kill" if health_ok and saw_unhealthy
                  else "health stayed 200" if health_ok is not None else "health never 200 again")
        print(f"\ncluster: {ORDERS} orders from {CLIENTS} clients in {took:.1f}s; killed "
              f"{victim_name} ({why}; pid {victim_pid}; order.commands leader {leader}; "
              f"bridge {'on it' if victim[2] in bridge_on else 'elsewhere'}) after {len(before)}; "
              f"retries {retries['5xx']} on 5xx + {retries['conn']} on a broken connection "
              f"(statuses {dict(sorted(statuses.items()))}); longest pause {pause:.2f}s; "
              f"{health}; order.commands leader now {queues()['order.commands']['leader']}; "
              f"{events} order.placed events on the tap ({dups} published twice), "
              f"{len(missing)} missing; {dead} of its commands in backend.dead", flush=True)
        self.assertEqual(failures, [])
        self.assertEqual(len(answered), ORDERS)
        self.assertLess(pause, MAX_PAUSE_S)
        self.assertIsNotNone(health_ok, f"health not 200 within {MAX_HEALTH_S}s of the kill")
        self.assertLess(health_ok, MAX_HEALTH_S)
        self.assertEqual(twice, {}, "orders stored more than once")
        self.assertEqual(wrong, {}, "answered orders missing or with another id")
        self.assertEqual(missing, set(), "committed orders whose event never arrived")


if __name__ == "__main__":
    unittest.main()
