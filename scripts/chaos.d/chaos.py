"""scripts/chaos driver: a seeded mixed load over HTTP and AMQP while processes
are SIGKILLed and restarted, then invariants against PostgreSQL, an event tap
and backend.dead (and, on a cluster, the quorum queues' members). Run by
scripts/chaos (which exports the instance's coordinates, and BK_CLUSTER=1 with
the nodes' ports when the broker is the 3-node cluster); exit 0 only when
every invariant holds."""
import argparse
import calendar
import http.client as httpclient
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import msgpack
import pika
import psycopg2

E = os.environ
REPO = E["BK_REPO"]
RUN_DIR = E["BK_RUN_DIR"]
LOG_DIR = os.path.join(RUN_DIR, "log")
BROKER_DIR = E["BK_BROKER_DIR"]
HTTP_PORT = int(E["BK_HTTP_PORT"])
AMQP_PORT = int(E["BK_AMQP_PORT"])
DSN = E["BK_DB_DSN"]
INSTANCE = E["BK_INSTANCE"]
PG_DIR = E["BK_PG_DIR"]
RMQ_DIR = E["BK_RMQ_DIR"]
SERVICE = E.get("BK_CHAOS_SERVICE", "chaos")
CLUSTER = E.get("BK_CLUSTER") == "1"
CLUSTER_DIR = E.get("BK_CLUSTER_DIR", "")
# every node's AMQP port on a cluster (node i at index i - 1), else the one
AMQP_PORTS = [int(p) for p in E.get("BK_CLUSTER_PORTS", "").split()] if CLUSTER else [AMQP_PORT]
STAFF_PASSWORD = "Chaos-staff-pass-9"
PASSWORD = "v3ry-Secret-pass"
WORKERS = ["auth-worker", "profile-worker", "order-worker", "payment-worker"]
PROCS = WORKERS + ["notify-worker", "bridge"]
KINDS = ["worker-copy", "worker", "bridge", "postgres", "rabbitmq", "rabbitmq-node"]
# what the broker of the instance allows: the whole single node, or one node
# of the cluster (the cluster's promise is about losing a minority)
BROKER_KIND = "rabbitmq-node" if CLUSTER else "rabbitmq"
CMD_DEADLINE_S = float(E.get("BK_CHAOS_CMD_DEADLINE_S", "120"))

T0 = time.monotonic()
lock = threading.Lock()


def now():
    return time.monotonic() - T0


def log(msg):
    print(f"[{now():7.2f}s] {msg}", flush=True)


def password(user):
    with open(os.path.join(BROKER_DIR, f"{user}.password")) as f:
        return f.read().strip()


def amqp(user):
    """A connection as user to a node that answers: on a cluster the nodes in
    turn from a random one (a client's failover; one may be down)."""
    start = random.randrange(len(AMQP_PORTS))
    err = None
    for k in range(len(AMQP_PORTS)):
        port = AMQP_PORTS[(start + k) % len(AMQP_PORTS)]
        try:
            return pika.BlockingConnection(pika.ConnectionParameters(
                host="127.0.0.1", port=port, credentials=pika.PlainCredentials(user, password(user)),
                heartbeat=0, blocked_connection_timeout=30, connection_attempts=1,
                socket_timeout=5))
        except pika.exceptions.AMQPConnectionError as e:
            err = e
    raise err


def db():
    c = psycopg2.connect(DSN)
    c.autocommit = True
    return c


def http(method, path, body=None, token=None, key=None, rid=None, timeout=15):
    hdrs = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    if key:
        hdrs["Idempotency-Key"] = key
    if rid:
        hdrs["X-Request-ID"] = rid
    conn = httpclient.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return r.status, parsed
    finally:
        conn.close()


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def pid_in(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def lib(snippet, timeout=180):
    """Runs snippet after sourcing scripts/lib.sh for this instance."""
    env = dict(E, BK_TEST_DIR=RUN_DIR) if INSTANCE == "test" else dict(E)
    # on a cluster every process started here is told its nodes
    cluster = "bk_cluster_export_env && " if CLUSTER else ""
    out = subprocess.run(["bash", "-c", f". scripts/lib.sh && bk_instance {INSTANCE} && "
                          f"bk_cluster_init && bk_export_backend_env && {cluster}{snippet}"],
                         cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{snippet}: {out.stdout}{out.stderr}")
    return out.stdout


def gone(pid, kids=()):
    """Waits until pid and kids are dead; SIGKILLs kids that outlive their parent."""
    wait(lambda: not alive(pid), 10, 0.05)
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass
    wait(lambda: not any(alive(k) for k in kids), 10, 0.05)


# On a cluster: start the nodes that are down and wait until they are
# members again (bk_cluster_start skips the running ones).
RMQ_UP = ("{ (for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do bk_cluster_node_alive $i || exit 1; "
          "done) || "
          "bk_cluster_start >/dev/null; }") if CLUSTER else \
    "{ bk_rmq_alive || { bk_rmq_start && bk_broker_setup && bk_ctl broker-setup >/dev/null; }; }"


def restore():
    """Brings back whatever a failed fault left down, as the scripts start it."""
    snippet = ("{ bk_pg_alive || { rm -f \"$(readlink -f \"$BK_PG_DIR\")/data/postmaster.pid\" "
               "\"$(readlink -f \"$BK_PG_DIR\")/sock/.s.PGSQL.$BK_PG_PORT.lock\"; "
               f"bk_pg_start; }}; }} && {RMQ_UP} && bk_start_procs")
    lib(snippet, 300)


def quorum_queues():
    """[(name, members, online)] of the cluster's quorum queues, via the
    rabbitmqctl of a running node."""
    out = subprocess.run([os.path.join(CLUSTER_DIR, "rabbitmqctl"), "list_queues", "name", "type",
                          "members", "online", "--formatter", "json"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"rabbitmqctl list_queues: {out.stderr.strip()}")
    return [(q["name"], q.get("members") or [], q.get("online") or [])
            for q in json.loads(out.stdout) if q.get("type") == "quorum"]


def replicated():
    """True when every quorum queue has a member on each node, all online."""
    try:
        qs = quorum_queues()
    except (RuntimeError, ValueError, subprocess.TimeoutExpired):
        return False
    return bool(qs) and all(len(m) == len(AMQP_PORTS) and sorted(o) == sorted(m)
                            for _, m, o in qs)


def healthy():
    try:
        return http("GET", "/api/health/", timeout=5)[0] == 200
    except OSError:
        return False


def wait(pred, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    return None


# ---------------------------------------------------------------- the load

class Run:
    def __init__(self, a):
        self.a = a
        self.tag = f"c{a.seed}x{uuid.uuid4().hex[:6]}"
        self.records = []          # every command issued
        self.successes = []        # times of successful answers
        self.retries = {"5xx": 0, "conn": 0, "429": 0, "amqp-timeout": 0, "amqp-error": 0}
        self.issued = 0
        self.done = 0
        self.users = []            # (user id, username) of every registered user, for follows
        self.faults = []           # (t, kind, target, pid, restart seconds)
        self.statuses = {}
        self.abort = False

    def next_index(self):
        with lock:
            if self.issued >= self.a.commands or self.abort:
                return None
            self.issued += 1
            return self.issued - 1

    def record(self, rec):
        with lock:
            self.records.append(rec)

    def note_success(self):
        with lock:
            self.successes.append(now())

    # -- transports, each retrying with the same key / message id
    def call_http(self, rec, method, path, body, token):
        key = f"{self.tag}-{rec['i']}"
        rec["via"], rec["key"] = "http", key
        until = time.monotonic() + CMD_DEADLINE_S
        attempt = 0
        while time.monotonic() < until and not self.abort:
            attempt += 1
            try:
                status, reply = http(method, path, body, token=token, key=key,
                                     rid=f"{key}-{attempt}")
            except OSError:
                with lock:
                    self.retries["conn"] += 1
                time.sleep(0.3)
                continue
            with lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if status >= 500:
                with lock:
                    self.retries["5xx"] += 1
                time.sleep(0.3)
                continue
            if status == 429:
                with lock:
                    self.retries["429"] += 1
                time.sleep(1.0)
                continue
            rec["status"], rec["reply"] = status, reply
            self.note_success()
            return status, reply
        return None, None

    def call_amqp(self, rec, command, args, token, fire=False):
        mid = str(uuid.uuid4())
        rec["via"], rec["mid"] = ("amqp-ff" if fire else "amqp"), mid
        body = msgpack.packb({"v": 1, "auth": token, "args": args}, use_bin_type=True)
        until = time.monotonic() + CMD_DEADLINE_S
        while time.monotonic() < until and not self.abort:
            conn = None
            try:
                conn = amqp(SERVICE)
                ch = conn.channel()
                replies = []
                corr = str(uuid.uuid4())
                props = dict(content_type="application/msgpack", delivery_mode=2, message_id=mid,
                             user_id=SERVICE, timestamp=int(time.time()),
                             headers={"x-request-id": f"{self.tag}-{rec['i']}"})
                if fire:
                    ch.confirm_delivery()
                    ch.basic_publish("backend.commands", command, body,
                                     pika.BasicProperties(**props), mandatory=True)
                    rec["status"] = "confirmed"
                    return "confirmed", None
                ch.basic_consume("amq.rabbitmq.reply-to",
                                 lambda _c, _m, p, b: replies.append(b)
                                 if p.correlation_id == corr else None, auto_ack=True)
                ch.basic_publish("backend.commands", command, body, pika.BasicProperties(
                    correlation_id=corr, reply_to="amq.rabbitmq.reply-to", **props))
                deadline = time.monotonic() + 10
                while not replies and time.monotonic() < deadline:
                    conn.process_data_events(time_limit=0.5)
                if not replies:
                    with lock:
                        self.retries["amqp-timeout"] += 1
                    continue
                reply = msgpack.unpackb(replies[0], raw=False)
                status = reply.get("status")
                with lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                if status >= 500 or status == 429:
                    with lock:
                        self.retries["5xx" if status >= 500 else "429"] += 1
                    time.sleep(0.3)
                    continue
                rec["status"], rec["reply"] = status, reply.get("body")
                self.note_success()
                return status, rec["reply"]
            except (pika.exceptions.AMQPError, OSError, ConnectionError):
                with lock:
                    self.retries["amqp-error"] += 1
                time.sleep(0.5)
            finally:
                try:
                    if conn is not None and conn.is_open:
                        conn.close()
                except Exception:  # noqa: BLE001
                    pass
        return None, None

    # -- one client
    def client(self, cid):
        rnd = random.Random(self.a.seed * 1000 + cid)
        me = []        # [user id, username, token]
        unpaid = []    # (order id, total, token) pending orders without payment
        pending = []   # payment ids pending
        paid = []      # order ids with a completed payment
        while True:
            if self.a.think_ms:
                time.sleep(rnd.uniform(0, 2 * self.a.think_ms) / 1000)
            i = self.next_index()
            if i is None:
                return
            rec = {"i": i, "client": cid, "t": now()}
            choices = [("register", 8 if me else 100), ("login", 8), ("order", 25),
                       ("follow", 10), ("update", 10)]
            if unpaid:
                choices += [("pay", 15), ("cancel", 4)]
            if pending:
                choices.append(("payment_status", 12))
            if paid:
                choices.append(("ship", 6))
            if not me:
                choices = [("register", 1)]
            kind = rnd.choices([c for c, _ in choices], [w for _, w in choices])[0]
            via = rnd.random()
            fire = rnd.random() < 0.35
            rec["kind"] = kind
            self.record(rec)
            if kind == "register":
                name = f"{self.tag}_{i}"
                rec["username"] = name
                st, r = self.call_http(rec, "POST", "/api/auth/register/", {
                    "username": name, "email": f"{name}@example.com", "password": PASSWORD,
                    "password2": PASSWORD}, None)
                if st == 201:
                    uid = r["user"]["id"]
                    st2, r2 = self.login(rec, rnd, name, uid, first=True)
                    if st2 == 200:
                        me.append([uid, name, r2["access"]])
                        with lock:
                            self.users.append((uid, name))
                continue
            u = rnd.choice(me)
            if kind == "login":
                st, r = self.login(rec, rnd, u[1], u[0])
                if st == 200:
                    u[2] = r["access"]
            elif kind == "order":
                q, price = rnd.randint(1, 5), f"{rnd.randint(100, 9999) / 100:.2f}"
                args = {"product_name": f"{self.tag}-o{i}", "quantity": q, "price": price}
                rec["product_name"], rec["user"] = args["product_name"], u[0]
                if via < 0.3:
                    st, r = self.call_amqp(rec, "order.place", args, u[2], fire=fire)
                else:
                    st, r = self.call_http(rec, "POST", "/api/orders/", args, u[2])
                if st == 201:
                    unpaid.append((r["id"], r["total"], u[2]))
            elif kind == "pay":
                oid, total, tok = unpaid.pop(rnd.randrange(len(unpaid)))
                rec["order"] = oid
                st, r = self.call_http(rec, "POST", "/api/payments/",
                                       {"order": oid, "amount": total}, tok)
                if st == 201:
                    pending.append((r["id"], oid))
            elif kind == "cancel":
                oid, _, tok = unpaid.pop(rnd.randrange(len(unpaid)))
                rec["order"], rec["to"] = oid, "cancelled"
                self.call_http(rec, "PATCH", f"/api/orders/{oid}/", {"status": "cancelled"}, tok)
            elif kind == "payment_status":
                pid, oid = pending.pop(rnd.randrange(len(pending)))
                to = "completed" if rnd.random() < 0.8 else "failed"
                rec["payment"], rec["to"] = pid, to
                st, r = self.call_http(rec, "PATCH", f"/api/payments/{pid}/", {"status": to},
                                       self.staff_token)
                if st == 200 and to == "completed":
                    paid.append(oid)
            elif kind == "ship":
                oid = paid.pop(rnd.randrange(len(paid)))
                rec["order"], rec["to"] = oid, "shipped"
                self.call_http(rec, "PATCH", f"/api/orders/{oid}/", {"status": "shipped"},
                               self.staff_token)
            elif kind == "follow":
                with lock:
                    others = [x for x in self.users if x[0] != u[0]]
                if not others:
                    rec["kind"] = "skipped"
                    continue
                target = rnd.choice(others)[0]
                rec["follower"], rec["followee"] = u[0], target
                if via < 0.4:
                    self.call_amqp(rec, "profile.follow", {"id": target}, u[2], fire=fire)
                else:
                    self.call_http(rec, "POST", f"/api/users/{target}/follow/", None, u[2])
            elif kind == "update":
                about = f"{self.tag} about {i}"
                rec["user"], rec["about"] = u[0], about
                if via < 0.4:
                    self.call_amqp(rec, "profile.update", {"about": about}, u[2], fire=fire)
                else:
                    self.call_http(rec, "PATCH", "/api/profile/", {"about": about}, u[2])

    def login(self, rec, rnd, name, uid, first=False):
        lrec = rec
        if first:  # the login after a registration is a command of its own
            lrec = {"i": f"{rec['i']}L", "client": rec["client"], "t": now(), "kind": "login"}
            self.record(lrec)
        lrec["user"] = uid
        args = {"username": name, "password": PASSWORD}
        if not first and rnd.random() < 0.3:
            return self.call_amqp(lrec, "auth.login", args, None)
        return self.call_http(lrec, "POST", "/api/auth/login/", args, None)

    # ------------------------------------------------------------ faults

    def fault_plan(self):
        rnd = random.Random(self.a.seed * 7919 + 1)
        kinds = self.a.faults
        n = self.a.fault_count
        seq = []
        while len(seq) < n:
            k = list(kinds)
            rnd.shuffle(k)
            seq += k
        seq = seq[:n]
        points = sorted(rnd.uniform(0.1, 0.85) * self.a.commands for _ in range(n))
        return [(int(p), k, rnd.random(), rnd.uniform(0.3, 2.0)) for p, k in zip(points, seq)]

    def faulter(self, plan):
        for point, kind, pick, downtime in plan:
            while True:
                with lock:
                    done = self.issued
                if done >= point or self.load_over:
                    break
                time.sleep(0.05)
            if self.load_over:
                self.skipped_faults.append(kind)
                continue
            try:
                self.inject(kind, pick, downtime)
            except Exception as e:  # noqa: BLE001
                self.fault_errors.append(f"{kind}: {str(e).strip().splitlines()[-1:]}")
                self.faults.append((now(), kind, "FAILED", 0, 0.0))
                log(f"fault {kind} failed: {e}")
                try:
                    restore()
                except Exception as e2:  # noqa: BLE001
                    self.fault_errors.append(f"restoring after {kind}: {e2}")
            # the next fault only once everything is back
            if not wait(healthy, 90):
                self.fault_errors.append(f"not healthy within 90 s after {kind}")

    def inject(self, kind, pick, downtime):
        t = now()
        if kind == "worker-copy":
            name = WORKERS[int(pick * len(WORKERS))]
            sup = pid_in(os.path.join(RUN_DIR, f"{name}.pid"))
            kids = children(sup) if sup else []
            if not kids:
                raise RuntimeError(f"{name} (pid {sup}) has no copies")
            victim = kids[int(pick * 1000) % len(kids)]
            os.kill(victim, signal.SIGKILL)
            self.copy_kills[name] = self.copy_kills.get(name, 0) + 1
            ok = wait(lambda: len(children(sup)) >= len(kids) and victim not in children(sup), 30)
            self.faults.append((t, kind, f"{name} copy", victim, now() - t))
            if not ok:
                raise RuntimeError(f"{name} did not restart its copy")
        elif kind in ("worker", "bridge"):
            name = "bridge" if kind == "bridge" else WORKERS[int(pick * len(WORKERS))]
            sup = pid_in(os.path.join(RUN_DIR, f"{name}.pid"))
            if not sup or not alive(sup):
                raise RuntimeError(f"{name} does not run")
            os.killpg(sup, signal.SIGKILL)
            wait(lambda: not alive(sup), 10, 0.05)
            lib("bk_start_procs")
            self.faults.append((t, kind, name, sup, now() - t))
        elif kind == "postgres":
            real = os.path.realpath(PG_DIR)
            pm = pid_in(os.path.join(real, "postgres.pid"))
            if not pm or not alive(pm):
                raise RuntimeError("PostgreSQL does not run")
            kids = children(pm)
            os.kill(pm, signal.SIGKILL)
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
            gone(pm, kids)
            # a dead postmaster's lock files stop the next one while its PID
            # exists: kill(pid, 0) succeeds on a zombie that init has not
            # reaped yet (here that takes seconds)
            wait(lambda: not os.path.exists(f"/proc/{pm}"), 3, 0.05)
            for lock_file in (os.path.join(real, "data", "postmaster.pid"),
                              os.path.join(real, "sock", f".s.PGSQL.{E['BK_PG_PORT']}.lock")):
                try:
                    os.unlink(lock_file)
                except OSError:
                    pass
            time.sleep(downtime)
            lib("bk_pg_start")
            self.faults.append((t, kind, "postgres", pm, now() - t))
        elif kind == "rabbitmq":
            pid = pid_in(os.path.join(RMQ_DIR, "rabbit.pid"))
            if not pid or not alive(pid):
                raise RuntimeError("RabbitMQ does not run")
            kids = children(pid)
            os.kill(pid, signal.SIGKILL)
            gone(pid, kids)
            time.sleep(downtime)
            lib("bk_rmq_start && bk_broker_setup && bk_ctl broker-setup >/dev/null", 300)
            self.faults.append((t, kind, "rabbitmq", pid, now() - t))
        elif kind == "rabbitmq-node":
            # a node's loss is a minority only when the other two hold every
            # queue (after an earlier kill, or test_cluster.py's, they catch up)
            if not wait(replicated, 120, 0.5):
                raise RuntimeError("not every quorum queue has its three members online")
            t = now()
            node = 1 + int(pick * len(AMQP_PORTS))
            pid = pid_in(os.path.join(CLUSTER_DIR, f"node{node}", "rabbit.pid"))
            if not pid or not alive(pid):
                raise RuntimeError(f"cluster node {node} does not run")
            kids = children(pid)
            os.kill(pid, signal.SIGKILL)
            gone(pid, kids)
            time.sleep(downtime)
            # it boots and rejoins the two others by itself; then each
            # quorum queue's member on it catches up (the next fault waits
            # for that: two nodes down at once is beyond the promise)
            lib(RMQ_UP, 300)
            back = now() - t
            if not wait(replicated, 120, 0.5):
                raise RuntimeError(f"node {node} restarted, but not every quorum queue has its "
                                   "three members online within 120 s")
            self.faults.append((t, kind, f"node {node} (in sync {now() - t:.1f}s)", pid, back))
        log(f"fault {kind}: {self.faults[-1][2]} pid {self.faults[-1][3]}, back after "
            f"{self.faults[-1][4]:.1f}s")


# ---------------------------------------------------------------- checks

def log_sizes():
    out = {}
    for name in PROCS:
        p = os.path.join(LOG_DIR, f"{name}.log")
        out[name] = os.path.getsize(p) if os.path.exists(p) else 0
    return out


def log_since(name, offset):
    p = os.path.join(LOG_DIR, f"{name}.log")
    try:
        with open(p, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def caller_gone(h, props):
    """How a dead letter met its caller's deadline: "expired" (the broker
    expired it), "held" (a worker held it through a database outage and
    dead-lettered it unrun at the deadline), or None (it died otherwise)."""
    if "x-bk-last-error" in h:
        return None  # a failure of the command itself, retried and given up
    reason = h.get("x-first-death-reason")
    if reason == "expired":
        return "expired"
    deaths = h.get("x-death") or []
    exp = deaths[0].get("original-expiration") if deaths else None
    when = deaths[0].get("time") if deaths else None
    sent = h.get("timestamp_in_ms") or (props.timestamp or 0) * 1000
    if reason != "rejected" or exp is None or when is None or not sent:
        return None
    # the worker gives up 500 ms before the deadline; x-death's time has
    # whole seconds
    died_ms = (calendar.timegm(when.timetuple()) + 1) * 1000
    return "held" if died_ms >= int(sent) + int(exp) - 500 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--commands", type=int, default=300)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--faults", default="worker-copy,worker,bridge,postgres")
    ap.add_argument("--fault-count", type=int, default=0)
    ap.add_argument("--think-ms", type=float, default=300)
    a = ap.parse_args()
    a.faults = [k for k in a.faults.split(",") if k and k != "none"]
    for k in a.faults:
        if k not in KINDS:
            sys.exit(f"chaos: unknown fault kind {k!r} (known: {', '.join(KINDS)}, none)")
        if k in ("rabbitmq", "rabbitmq-node") and k != BROKER_KIND:
            sys.exit(f"chaos: {k} needs {'a single node' if CLUSTER else 'the cluster'}; this "
                     f"instance runs {'the cluster' if CLUSTER else 'a single node'}: use "
                     f"{BROKER_KIND}")
    if not a.fault_count:
        a.fault_count = max(len(a.faults), a.commands // 150) if a.faults else 0
    if not a.faults:
        a.fault_count = 0

    run = Run(a)
    run.load_over = False
    run.skipped_faults, run.fault_errors, run.copy_kills = [], [], {}
    log(f"chaos run {run.tag}: seed {a.seed}, {a.commands} commands, {a.clients} clients, "
        f"{a.fault_count} faults of {','.join(a.faults) or 'none'}, RabbitMQ "
        f"{'cluster on ' + ','.join(map(str, AMQP_PORTS)) if CLUSTER else 'single node'}")
    if not wait(healthy, 60):
        sys.exit("chaos: the system is not healthy (GET /api/health/ != 200)")
    sizes = log_sizes()
    pids0 = {n: pid_in(os.path.join(RUN_DIR, f"{n}.pid")) for n in PROCS}

    # the event tap, bound before the load
    tap = f"chaos-tap.{run.tag}"
    conn = amqp("admin")
    ch = conn.channel()
    ch.queue_declare(tap, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_bind(tap, "backend.events", routing_key="#")
    conn.close()

    # a staff user for payment and shipping status changes
    staff = f"{run.tag}_staff"
    out = subprocess.run([os.path.join(E["BK_BIN_DIR"], "backendctl"), "createsuperuser",
                          "--username", staff, "--email", f"{staff}@example.com"], cwd=REPO,
                         env=dict(E, BACKEND_SUPERUSER_PASSWORD=STAFF_PASSWORD),
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"chaos: createsuperuser: {out.stderr}")
    st, r = http("POST", "/api/auth/login/", {"username": staff, "password": STAFF_PASSWORD})
    if st != 200:
        sys.exit(f"chaos: staff login: {st} {r}")
    run.staff_token = r["access"]

    plan = run.fault_plan()
    started = now()
    threads = [threading.Thread(target=run.client, args=(c,), daemon=True)
               for c in range(a.clients)]
    for t in threads:
        t.start()
    ft = threading.Thread(target=run.faulter, args=(plan,), daemon=True)
    ft.start()
    stall = float(E.get("BK_CHAOS_STALL_S", "180"))
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        with lock:
            last = run.successes[-1] if run.successes else started
        if now() - last > stall and not run.abort:
            run.abort = True
            log(f"no successful answer for {stall:.0f}s: stopping the load")
    for t in threads:
        t.join()
    load_s = now() - started
    run.load_over = True
    ft.join(400)
    log(f"load done in {load_s:.1f}s; waiting for every process and the outbox")

    # ---- everything back, outbox drained
    problems = {}

    def fail(inv, msg):
        problems.setdefault(inv, []).append(msg)

    if not healthy():
        try:
            restore()
        except Exception as e:  # noqa: BLE001
            fail(6, f"restoring after the load: {e}")
    if not wait(healthy, 90):
        fail(6, "health not 200 within 90 s after the load")
    with db() as c, c.cursor() as cur:
        def outbox():
            cur.execute("SELECT count(*) FROM outbox")
            return cur.fetchone()[0]
        if wait(lambda: outbox() == 0, 60) is None and outbox() != 0:
            fail(4, f"outbox holds {outbox()} rows 60 s after the load")

    recs = run.records
    by_kind = {}
    for r in recs:
        by_kind.setdefault(r["kind"], []).append(r)
    answered = [r for r in recs if isinstance(r.get("status"), int)]
    ff = [r for r in recs if r.get("status") == "confirmed"]
    unanswered = [r for r in recs if r["kind"] != "skipped" and "status" not in r]

    # fire-and-forget commands run once the system is back: give them time
    with db() as c, c.cursor() as cur:
        names = [r["product_name"] for r in ff if r["kind"] == "order"]

        def ff_orders_in():
            if not names:
                return True
            cur.execute("SELECT count(DISTINCT product_name) FROM orders WHERE product_name = ANY(%s)",
                        (names,))
            return cur.fetchone()[0] == len(set(names))
        wait(ff_orders_in, 30)
        time.sleep(1.0)
        wait(lambda: (cur.execute("SELECT count(*) FROM outbox"), cur.fetchone()[0])[1] == 0, 30)

        # (1)/(2) effects
        cur.execute("SELECT username, id FROM users WHERE username LIKE %s", (run.tag + "\\_%",))
        users = {}
        for name, uid in cur.fetchall():
            if name != f"{run.tag}_staff":  # backendctl createsuperuser: no event
                users.setdefault(name, []).append(uid)
        cur.execute("SELECT product_name, id FROM orders WHERE product_name LIKE %s",
                    (run.tag + "-o%",))
        orders = {}
        for name, oid in cur.fetchall():
            orders.setdefault(name, []).append(oid)
        run_user_ids = [u for ids in users.values() for u in ids]
        cur.execute("SELECT id, order_id, status FROM payments WHERE order_id IN "
                    "(SELECT id FROM orders WHERE product_name LIKE %s)", (run.tag + "-o%",))
        payments = {}
        for pid, oid, st in cur.fetchall():
            payments.setdefault(oid, []).append((pid, st))
        cur.execute("SELECT id, status FROM orders WHERE product_name LIKE %s", (run.tag + "-o%",))
        order_status = dict(cur.fetchall())
        cur.execute("SELECT follower_id, followee_id FROM follows WHERE follower_id = ANY(%s)",
                    (run_user_ids,))
        follows = set(cur.fetchall())

    checked = {"exact": 0, "at-most-once": 0}
    for r in by_kind.get("register", []):
        n = len(users.get(r["username"], []))
        if r.get("status") == 201:
            checked["exact"] += 1
            if n != 1:
                fail(1, f"register {r['username']} answered 201, {n} users")
            elif users[r["username"]][0] != r["reply"]["user"]["id"]:
                fail(1, f"register {r['username']}: answered id {r['reply']['user']['id']}, "
                        f"stored {users[r['username']]}")
        elif "status" not in r:
            checked["at-most-once"] += 1
            if n > 1:
                fail(2, f"unanswered register {r['username']}: {n} users")
        elif n:
            fail(1, f"register {r['username']} answered {r['status']} yet stored")
    for r in by_kind.get("order", []):
        n = len(orders.get(r["product_name"], []))
        if r.get("status") == 201 or r.get("status") == "confirmed":
            checked["exact"] += 1
            if n != 1:
                fail(1, f"order.place {r['product_name']} ({r['via']}, {r['status']}): {n} orders")
            elif r.get("reply") and orders[r["product_name"]][0] != r["reply"]["id"]:
                fail(1, f"order.place {r['product_name']}: answered id {r['reply']['id']}, "
                        f"stored {orders[r['product_name']]}")
        elif "status" not in r:
            checked["at-most-once"] += 1
            if n > 1:
                fail(2, f"unanswered order.place {r['product_name']}: {n} orders")
        elif n:
            fail(1, f"order.place {r['product_name']} answered {r['status']} yet stored")
    for r in by_kind.get("pay", []):
        n = len(payments.get(r["order"], []))
        if r.get("status") == 201:
            checked["exact"] += 1
            if n != 1 or payments[r["order"]][0][0] != r["reply"]["id"]:
                fail(1, f"payment.initiate order {r['order']}: answered {r['reply']['id']}, "
                        f"stored {payments.get(r['order'])}")
        elif "status" not in r:
            checked["at-most-once"] += 1
            if n > 1:
                fail(2, f"unanswered payment.initiate order {r['order']}: {n} payments")
    for r in by_kind.get("payment_status", []):
        if r.get("status") == 200:
            checked["exact"] += 1
            got = [st for pays in payments.values() for pid, st in pays if pid == r["payment"]]
            if got != [r["to"]]:
                fail(1, f"payment.set_status {r['payment']} -> {r['to']} answered, stored {got}")
    for r in by_kind.get("cancel", []) + by_kind.get("ship", []):
        if r.get("status") == 200:
            checked["exact"] += 1
            if order_status.get(r["order"]) != r["to"]:
                fail(1, f"order.set_status {r['order']} -> {r['to']} answered, stored "
                        f"{order_status.get(r['order'])}")
    for r in by_kind.get("follow", []):
        if r.get("status") in (200, 201, "confirmed"):
            checked["exact"] += 1
            if (r["follower"], r["followee"]) not in follows:
                fail(1, f"profile.follow {r['follower']}->{r['followee']} ({r['via']}, "
                        f"{r['status']}): no row")

    # ---- the tap: every event of the run
    events, dups, seen_ids = [], 0, set()
    conn = amqp("admin")
    ch = conn.channel()
    quiet = time.monotonic()
    while time.monotonic() - quiet < 3:
        method, props, payload = ch.basic_get(tap, auto_ack=True)
        if method is None:
            time.sleep(0.2)
            continue
        quiet = time.monotonic()
        try:
            ev = msgpack.unpackb(payload, raw=False)
        except Exception:  # noqa: BLE001
            continue
        if ev.get("id") in seen_ids:
            dups += 1
            continue
        seen_ids.add(ev.get("id"))
        events.append(ev)
    ch.queue_delete(tap)

    # (5) dead letters of the run (they stay in backend.dead)
    mids = {r["mid"] for r in recs if "mid" in r}
    http_recs = {r["key"]: r for r in recs if r.get("via") == "http"}
    dead, tags, expired, gave_up = [], [], [], []
    while True:
        method, props, payload = ch.basic_get("backend.dead", auto_ack=False)
        if method is None:
            break
        tags.append(method.delivery_tag)
        h = props.headers or {}
        rid = str(h.get("x-request-id", ""))
        if props.message_id in mids or rid.startswith(run.tag) or run.tag.encode() in payload:
            late = caller_gone(h, props)
            rec = http_recs.get(rid.rsplit("-", 1)[0]) if rid.startswith(run.tag) else None
            if late and rec is not None and isinstance(rec.get("status"), int):
                # An HTTP attempt whose caller's deadline (the bridge's
                # expiration) passed before it could run: expired in the
                # queue (typically redelivered after RabbitMQ died before
                # the worker's ack), or held by a worker through a database
                # outage longer than the deadline and dead-lettered unrun
                # with a 503 at it (by design: see "An outage costs a
                # command nothing"). Its caller retried with the same key
                # and was answered; the command itself is checked above.
                (expired if late == "expired" else gave_up).append(rid)
                ch.basic_ack(method.delivery_tag)
                tags.pop()
                continue
            dead.append((props.message_id, rid, h.get("x-bk-last-error") or
                         h.get("x-first-death-reason")))
    if tags:
        ch.basic_nack(tags[-1], multiple=True, requeue=True)
    conn.close()
    for d in dead:
        fail(5, f"in backend.dead: message_id {d[0]} request {d[1]} ({d[2]})")

    # (3) every committed effect's event
    ev_by = {}
    for ev in events:
        ev_by.setdefault(ev.get("event"), []).append(ev.get("data") or {})
    reg = {d.get("user_id") for d in ev_by.get("user.registered", [])}
    placed = {d.get("id") for d in ev_by.get("order.placed", [])}
    initiated = {d.get("id") for d in ev_by.get("payment.initiated", [])}
    pay_ev = {(d.get("id"), e) for e in ("payment.completed", "payment.failed")
              for d in ev_by.get(e, [])}
    changed = {(d.get("order_id"), d.get("to")) for d in ev_by.get("order.status_changed", [])}
    followed = {(d.get("follower_id"), d.get("followee_id")) for d in ev_by.get("user.followed", [])}
    events_checked = 0
    for uid in run_user_ids:
        events_checked += 1
        if uid not in reg:
            fail(3, f"user {uid}: no user.registered")
    for ids in orders.values():
        for oid in ids:
            events_checked += 1
            if oid not in placed:
                fail(3, f"order {oid}: no order.placed")
    for pays in payments.values():
        for pid, _ in pays:
            events_checked += 1
            if pid not in initiated:
                fail(3, f"payment {pid}: no payment.initiated")
    for r in by_kind.get("payment_status", []):
        if r.get("status") == 200:
            events_checked += 1
            if (r["payment"], f"payment.{r['to']}") not in pay_ev:
                fail(3, f"payment {r['payment']} -> {r['to']}: no event")
    for r in by_kind.get("cancel", []) + by_kind.get("ship", []):
        if r.get("status") == 200:
            events_checked += 1
            if (r["order"], r["to"]) not in changed:
                fail(3, f"order {r['order']} -> {r['to']}: no order.status_changed")
    for f in follows:
        events_checked += 1
        if f not in followed:
            fail(3, f"follow {f[0]}->{f[1]}: no user.followed")
    # updates and logins: each has one event per execution, so the events of a
    # user lie between its answered (+ confirmed) commands and all it issued
    for kind, event, pred in (("update", "user.updated", lambda d: "about" in (d.get("fields") or [])),
                              ("login", "user.logged_in", lambda d: True)):
        cnt = {}
        for d in ev_by.get(event, []):
            if pred(d):
                cnt[d.get("user_id")] = cnt.get(d.get("user_id"), 0) + 1
        lo, hi = {}, {}
        for r in by_kind.get(kind, []):
            if "user" not in r:
                continue
            hi[r["user"]] = hi.get(r["user"], 0) + 1
            if r.get("status") in (200, "confirmed"):
                lo[r["user"]] = lo.get(r["user"], 0) + 1
        for uid in hi:
            events_checked += 1
            n = cnt.get(uid, 0)
            if n < lo.get(uid, 0):
                fail(1 if kind == "update" else 3,
                     f"user {uid}: {n} {event} events, {lo.get(uid, 0)} {kind}s answered")
            if n > hi[uid]:
                fail(2, f"user {uid}: {n} {event} events, only {hi[uid]} {kind}s issued")

    # (6) crashes we did not cause
    for name in PROCS:
        text = log_since(name, sizes[name])
        for pat in ("AddressSanitizer", "LeakSanitizer", "runtime error"):
            if pat in text:
                fail(6, f"{name}.log: {pat}")
        ended = text.count("ended (signal") + text.count("ended (status")
        if name in WORKERS and ended != run.copy_kills.get(name, 0):
            fail(6, f"{name}: {ended} copies ended, {run.copy_kills.get(name, 0)} killed by us")
    killed = {f[3] for f in run.faults}
    for name in PROCS:
        pid = pid_in(os.path.join(RUN_DIR, f"{name}.pid"))
        if not pid or not alive(pid):
            fail(6, f"{name} does not run at the end")
        elif pid != pids0[name] and pids0[name] not in killed:
            fail(6, f"{name}: pid {pids0[name]} was replaced by {pid}, not by us")
    for e in run.fault_errors:
        fail(6, f"fault: {e}")

    # (7) a cluster ends as it began: each quorum queue (the worker queues,
    # backend.dead, ...) with a member on every node, all online
    queues_checked = 0
    if CLUSTER:
        if not wait(replicated, 60, 0.5):
            try:
                for name, m, o in quorum_queues():
                    if len(m) != len(AMQP_PORTS) or sorted(o) != sorted(m):
                        fail(7, f"quorum queue {name}: members {m}, online {o}")
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                fail(7, f"cannot list the quorum queues: {e}")
        else:
            queues_checked = len(quorum_queues())
    if run.abort:
        fail(6, f"the load stopped: no successful answer for {stall:.0f}s")

    # ---- the report
    successes = sorted([started] + run.successes + [started + load_s])
    pause, at = 0.0, 0.0
    for x, y in zip(successes, successes[1:]):
        if y - x > pause:
            pause, at = y - x, x
    kinds = {}
    for r in recs:
        k = kinds.setdefault(r["kind"], [0, 0, 0])
        k[0] += 1
        if isinstance(r.get("status"), int):
            k[1] += 1
        elif r.get("status") == "confirmed":
            k[2] += 1
    vias = {}
    for r in recs:
        if "via" in r:
            vias[r["via"]] = vias.get(r["via"], 0) + 1
    fk = {}
    for f in run.faults:
        fk[f[1]] = fk.get(f[1], 0) + 1
    print("\n==== chaos report ====")
    print(f"run {run.tag}  seed {a.seed}  clients {a.clients}  load {load_s:.1f}s")
    print(f"commands {len(recs)}: " + ", ".join(
        f"{k} {v[0]} ({v[1]} answered{f', {v[2]} fire-and-forget' if v[2] else ''})"
        for k, v in sorted(kinds.items())))
    print(f"transport: {dict(sorted(vias.items()))}")
    print(f"answered {len(answered)}, fire-and-forget confirmed {len(ff)}, unanswered "
          f"{len(unanswered)}")
    print(f"retries: {sum(run.retries.values())} {run.retries}; statuses seen "
          f"{dict(sorted(run.statuses.items(), key=lambda kv: str(kv[0])))}")
    print(f"faults {len(run.faults)}: {fk}" + (f"; not injected (load over): {run.skipped_faults}"
                                               if run.skipped_faults else ""))
    for f in run.faults:
        print(f"  at {f[0] - started:6.2f}s  {f[1]:<11} {f[2]:<22} pid {f[3]:<8} back after {f[4]:.1f}s")
    print(f"longest pause without a successful answer: {pause:.2f}s (from {at - started:.2f}s)")
    print(f"effects checked: {checked['exact']} exactly once, {checked['at-most-once']} at most once")
    print(f"backend.dead: {len(dead)} commands of the run; HTTP attempts past their caller's "
          f"deadline, retried by their client with the same key and answered (removed): "
          f"{len(expired)} expired in the queue, {len(gave_up)} held through a database outage "
          f"longer than the deadline (503)")
    print(f"events on the tap: {len(events)} distinct, {dups} duplicates; {events_checked} "
          f"expected events checked")
    names = {1: "answered commands' effects exactly once", 2: "unanswered at most one effect",
             3: "every committed effect's event published", 4: "outbox empty",
             5: "no command of the run in backend.dead", 6: "no crash we did not cause",
             7: f"every quorum queue on all {len(AMQP_PORTS)} nodes, online "
                f"({queues_checked} queues)"}
    for inv in range(1, 8 if CLUSTER else 7):
        msgs = problems.get(inv, [])
        print(f"  ({inv}) {names[inv]}: {'ok' if not msgs else f'FAILED ({len(msgs)})'}")
        for m in msgs[:10]:
            print(f"        - {m}")
    print("CHAOS " + ("PASSED" if not problems else "FAILED"))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
