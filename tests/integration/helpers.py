"""Shared helpers for the integration tests (run by tests/integration/run.py).

scripts/test starts a private instance and passes its coordinates:

    BK_HTTP_URL   http://127.0.0.1:<port> of the bridge
    BK_AMQP_PORT  RabbitMQ on 127.0.0.1 (vhost /)
    BK_BROKER_DIR <identity>.password of the broker identities: "admin" (what
                  scripts/lib.sh creates) and "tests", the service account
                  scripts/test creates (publish every command, bind every
                  event but the secret ones)
    BK_DB_DSN     libpq/psycopg2 connection string of the database
    BK_KEY_DIR    the instance's token keys
    BK_RUN_DIR    the instance directory (logs in log/, PIDs in <name>.pid)
    BK_BIN_DIR    the test build's binaries (backendctl, workers)
    BK_REPO       the repository root

and the processes' BACKEND_PUBLIC_BASE_URL (where absolute links in replies
start; http://127.0.0.1:<port> of the bridge).

The defaults below are those of the test instance, so a developer can also run
`/usr/bin/python3 tests/integration/run.py -k NAME` while `scripts/test` or
`scripts/services start test` + workers are up.
"""
import http.client as httpclient
import json
import os
import time
import urllib.parse
import uuid

import msgpack
import pika
import psycopg2
import psycopg2.extensions

REPO = os.environ.get("BK_REPO") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
HTTP_URL = os.environ.get("BK_HTTP_URL", "http://127.0.0.1:8001")
PUBLIC_BASE_URL = os.environ.get("BACKEND_PUBLIC_BASE_URL", HTTP_URL).rstrip("/")
AMQP_HOST = "127.0.0.1"
AMQP_PORT = int(os.environ.get("BK_AMQP_PORT", "5674"))
DB_DSN = os.environ.get("BK_DB_DSN", "host=127.0.0.1 port=5435 user=backend password=backend "
                                     "dbname=backend connect_timeout=5")
RUN_DIR = os.environ.get("BK_RUN_DIR", os.path.join(REPO, ".run", "test"))
KEY_DIR = os.environ.get("BK_KEY_DIR", os.path.join(RUN_DIR, "keys"))
BIN_DIR = os.environ.get("BK_BIN_DIR", os.path.join(REPO, "build", "test", "bin"))
BROKER_DIR = os.environ.get("BK_BROKER_DIR", os.path.join(RUN_DIR, "broker"))

ADMIN = "admin"     # declares the topology, reads every queue (dead letters, events "#")
SERVICE = "tests"   # a service account: publishes commands, as another service would
_ME = object()      # amqp_call's default user_id: the connection's own identity

COMMANDS_EXCHANGE = "backend.commands"
EVENTS_EXCHANGE = "backend.events"
DEAD_QUEUE = "backend.dead"

PASSWORD = "v3ry-Secret-pass"  # passes the password validators

_url = urllib.parse.urlsplit(HTTP_URL)


# ---------------------------------------------------------------- HTTP

def http_raw(method, path, body=None, headers=None, token=None, raw=None, timeout=30):
    """One HTTP request to the bridge. body: a value sent as JSON; raw (or a bytes
    body): bytes sent as they are (set Content-Type in headers). Returns (status, headers with
    lower-case names, body bytes)."""
    hdrs = {"Accept": "application/json"}
    if raw is None and isinstance(body, (bytes, bytearray)):
        body, raw = None, body
    data = None
    if raw is not None:
        data = raw
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    hdrs.update(headers or {})
    conn = httpclient.HTTPConnection(_url.hostname, _url.port or 80, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
    finally:
        conn.close()


def http(method, path, body=None, headers=None, token=None, raw=None, timeout=30):
    """Like http_raw, but the body comes back parsed as JSON (None if empty or not JSON)."""
    status, hdrs, payload = http_raw(method, path, body, headers, token, raw, timeout)
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = None
    return status, hdrs, parsed


# ---------------------------------------------------------------- AMQP

def broker_password(user):
    """The password of a broker identity, from BROKER_DIR/<user>.password."""
    with open(os.path.join(BROKER_DIR, f"{user}.password")) as f:
        return f.read().strip()


def amqp_connection(user=SERVICE, password=None):
    """A new blocking pika connection to the instance's broker as user (close
    it); password defaults to the one in BROKER_DIR."""
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=AMQP_HOST, port=AMQP_PORT, credentials=pika.PlainCredentials(
            user, password if password is not None else broker_password(user)),
        heartbeat=0, blocked_connection_timeout=30, connection_attempts=1))


def process_env(name):
    """The environment of process name ("payment-worker", "bridge") with its own
    broker identity, as scripts/lib.sh bk_proc_identity exports it."""
    env = dict(os.environ, BACKEND_AMQP_USER=name,
               BACKEND_AMQP_PASSWORD_FILE=os.path.join(BROKER_DIR, f"{name}.password"))
    if name.endswith("-worker"):
        env.update(BACKEND_RELAY_AMQP_USER="relay",
                   BACKEND_RELAY_AMQP_PASSWORD_FILE=os.path.join(BROKER_DIR, "relay.password"))
    if name == "profile-worker":
        env.update(BACKEND_DEAD_LETTERS_AMQP_PASSWORD_FILE=os.path.join(BROKER_DIR,
                                                                        "dead-letters.password"))
    return env


def start_process(name):
    """Starts process name ("payment-worker") as scripts/lib.sh does: its own
    identity and session, appending to its log, its PID file rewritten. Through
    a shell that exits at once, so the process is not our child (a child that
    ends would linger as a zombie and still look alive to kill(pid, 0))."""
    import subprocess
    out = subprocess.run(
        ["/bin/sh", "-c", 'setsid "$0" >>"$1" 2>&1 </dev/null & echo $!',
         os.path.join(BIN_DIR, name), os.path.join(RUN_DIR, "log", f"{name}.log")],
        cwd=REPO, env=process_env(name), capture_output=True, text=True, check=True)
    with open(os.path.join(RUN_DIR, f"{name}.pid"), "w") as f:
        f.write(out.stdout.strip() + "\n")


def service_account(name, publish=None, subscribe=None):
    """backendctl service-account NAME: creates (or updates) it and returns its
    password. Raises AssertionError when backendctl fails."""
    import subprocess
    import tempfile
    args = [os.path.join(BIN_DIR, "backendctl"), "service-account", name]
    if publish is not None:
        args += ["--publish", publish]
    if subscribe is not None:
        args += ["--subscribe", subscribe]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "password")
        out = subprocess.run(args + ["--password-file", path], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"backendctl service-account {name}: {out.stderr}")
        with open(path) as f:
            return f.read().strip()


class Unroutable(Exception):
    """The broker returned a mandatory command: no queue serves its routing key."""


def amqp_call(command, args, token=None, message_id=None, headers=None, timeout=5,
              raw_body=None, expiration=None, correlation_id=None, user=SERVICE, password=None,
              user_id=_ME):
    """Publish a command to backend.commands and wait for its reply (direct
    reply-to). Returns the decoded reply {"status": int, "body": ...}; raises
    TimeoutError when none arrives within timeout seconds, Unroutable at once when
    the broker returns the command (published mandatory, as the contract asks of
    every publisher: no queue serves its routing key).

    raw_body: bytes published instead of the msgpack envelope
    {"v": 1, "auth": token, "args": args}. headers: AMQP headers (e.g.
    {"x-delivery-count": 5}); expiration: the per-message TTL in ms, a string.
    user/password: the broker identity that publishes (the tests' service account);
    user_id: the AMQP user_id property (default: user, as the broker demands; None:
    left out)."""
    corr = correlation_id or str(uuid.uuid4())
    body = raw_body if raw_body is not None else msgpack.packb(
        {"v": 1, "auth": token, "args": args}, use_bin_type=True)
    replies = []
    conn = amqp_connection(user, password)
    try:
        ch = conn.channel()

        def on_reply(_ch, _method, props, payload):
            if props.correlation_id == corr:
                replies.append(payload)

        def on_return(_ch, method, _props, _payload):
            returned.append(f"{method.reply_code} {method.reply_text}")

        returned = []
        ch.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
        ch.add_on_return_callback(on_return)
        ch.basic_publish(COMMANDS_EXCHANGE, command, body, mandatory=True, properties=pika.BasicProperties(
            content_type="application/msgpack", delivery_mode=2,
            message_id=message_id or str(uuid.uuid4()), correlation_id=corr,
            reply_to="amq.rabbitmq.reply-to", headers=headers, expiration=expiration,
            timestamp=int(time.time()), user_id=user if user_id is _ME else user_id))
        deadline = time.monotonic() + timeout
        while not replies:
            if returned:
                raise Unroutable(f"{command}: returned by the broker ({returned[0]})")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to {command} within {timeout}s")
            conn.process_data_events(time_limit=min(left, 0.5))
        return msgpack.unpackb(replies[0], raw=False)
    finally:
        if conn.is_open:
            conn.close()


def _decode(payload):
    try:
        return msgpack.unpackb(payload, raw=False)
    except Exception:  # noqa: BLE001 - anything undecodable comes back as bytes
        return payload


class EventListener:
    """Collects events from backend.events in an exclusive auto-delete queue.

        with EventListener(["user.registered"]) as events:
            ...cause the event...
            ev = events.wait_for(lambda e: e["data"]["username"] == name, timeout=10)

    Routing keys may use topic wildcards ("user.*", "#"). Each received event is
    kept in .events (decoded bodies) and .messages ((properties, decoded body)).
    It listens as the admin identity (any binding); user/password: as another."""

    def __init__(self, routing_keys=("#",), user=ADMIN, password=None, queue=""):
        if isinstance(routing_keys, str):
            routing_keys = [routing_keys]
        self.routing_keys = list(routing_keys)
        self.user, self.password, self.queue = user, password, queue
        self.messages = []
        self.conn = None
        self.ch = None

    @property
    def events(self):
        return [body for _, body in self.messages]

    def __enter__(self):
        self.conn = amqp_connection(self.user, self.password)
        self.ch = self.conn.channel()
        q = self.ch.queue_declare(self.queue, exclusive=True, auto_delete=True).method.queue
        for key in self.routing_keys:
            self.ch.queue_bind(q, EVENTS_EXCHANGE, routing_key=key)
        self.ch.basic_consume(q, self._on_message, auto_ack=True)
        return self

    def _on_message(self, _ch, method, props, payload):
        self.messages.append((props, _decode(payload)))

    def wait_for(self, pred=lambda e: True, timeout=10):
        """The first event (decoded body) for which pred(event) is true, waiting up
        to timeout seconds for it; None if none came."""
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            for _, body in self.messages[seen:]:
                try:
                    if pred(body):
                        return body
                except (KeyError, TypeError, AttributeError):
                    pass
            seen = len(self.messages)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.conn.process_data_events(time_limit=min(left, 0.2))

    def __exit__(self, *exc):
        if self.conn and self.conn.is_open:
            self.conn.close()
        return False


def dead_letters(pred=lambda props, body: True, timeout=10):
    """Messages in backend.dead for which pred(properties, body) is true, waiting
    up to timeout seconds for at least one. Matching messages are removed from
    the queue, the others stay. body is the decoded msgpack, or the raw bytes.
    Returns a list of (properties, body)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        conn = amqp_connection(ADMIN)
        try:
            ch = conn.channel()
            while True:
                method, props, payload = ch.basic_get(DEAD_QUEUE, auto_ack=False)
                if method is None:
                    break
                body = _decode(payload)
                try:
                    match = pred(props, body)
                except (KeyError, TypeError, AttributeError):
                    match = False
                if match:
                    ch.basic_ack(method.delivery_tag)
                    found.append((props, body))
            # closing the channel requeues the messages we did not ack
        finally:
            if conn.is_open:
                conn.close()
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


# ---------------------------------------------------------------- database

class _Connection(psycopg2.extensions.connection):
    """Closes itself at the end of a with block (psycopg2's own only commits)."""

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self.close()


def db():
    """A new autocommit psycopg2 connection to the instance's database;
    `with db() as conn, conn.cursor() as cur:` closes it afterwards."""
    conn = psycopg2.connect(DB_DSN, connection_factory=_Connection)
    conn.autocommit = True
    return conn


# ---------------------------------------------------------------- accounts

_counter = 0


def unique(name="user"):
    """A username-ish string nobody used before: name + "_" + a random suffix
    (lower case, letters/digits/underscore, at most 30 characters)."""
    global _counter
    _counter += 1
    return f"{name[:15]}_{uuid.uuid4().hex[:8]}{_counter}"


def register(username=None, password=PASSWORD, email=None, **fields):
    """POST /api/auth/register/; returns the parsed body ({"detail", "user"}).
    Raises AssertionError unless the answer is 201."""
    username = username or unique()
    body = dict(username=username, email=email or f"{username}@example.com",
                password=password, password2=password, **fields)
    status, _, parsed = http("POST", "/api/auth/register/", body)
    if status != 201:
        raise AssertionError(f"register {username}: {status} {parsed}")
    return parsed


def login(username=None, password=PASSWORD, email=None):
    """POST /api/auth/login/ by username (or email); returns the parsed body
    ({"refresh", "access", "user"}). Raises AssertionError unless 200."""
    body = {"password": password}
    if username is not None:
        body["username"] = username
    if email is not None:
        body["email"] = email
    status, _, parsed = http("POST", "/api/auth/login/", body)
    if status != 200:
        raise AssertionError(f"login {username or email}: {status} {parsed}")
    return parsed


def register_and_login(name="user", **fields):
    """A new account; returns (access token, the login body)."""
    username = unique(name)
    register(username, **fields)
    body = login(username)
    return body["access"], body


# ---------------------------------------------------------------- processes


def wait(pred, timeout, step=0.2):
    """Calls pred until it returns something true (returned) or timeout
    seconds have passed (then its last, false, result)."""
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(step)


def alive(pid):
    """Whether pid is a live process (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
