"""Least privilege on the broker, tried through raw AMQP as an outside service
would: each component and each service account (backendctl service-account)
may do what it needs and nothing else, identity comes from the broker (the
AMQP user_id it checks), and the worker queues are bounded by a policy."""
import os
import signal
import subprocess
import time
import unittest
import uuid

import msgpack
import pika
import pika.exceptions

from helpers import (ADMIN, BIN_DIR, BROKER_DIR, REPO, RUN_DIR, SERVICE, EventListener,
                     amqp_call, amqp_connection, dead_letters, http,
                     register, service_account, start_process, unique)

COMMAND = msgpack.packb({"v": 1, "auth": None, "args": {}})
COMPONENTS = ("bridge", "relay", "auth-worker", "profile-worker", "order-worker",
              "payment-worker")


def account(publish=None, subscribe=None):
    """A fresh service account: (name, password)."""
    name = unique("svc").replace("_", "-")
    return name, service_account(name, publish=publish, subscribe=subscribe)


def refused(test, code, fn, *args):
    """fn(*args) must close the channel (or connection) with reply code `code`."""
    with test.assertRaises((pika.exceptions.ChannelClosedByBroker,
                            pika.exceptions.ConnectionClosedByBroker)) as cm:
        fn(*args)
    test.assertEqual(cm.exception.reply_code, code, cm.exception)


def publish(user, password, exchange, key, user_id=None):
    """One publish with confirms as user: the broker's refusal closes the
    channel at once (without confirms it would only be seen later)."""
    conn = amqp_connection(user, password)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, key, COMMAND, pika.BasicProperties(
            message_id=str(uuid.uuid4()), user_id=user if user_id is None else user_id))
    finally:
        if conn.is_open:
            conn.close()


def broker_ctl(*args):
    """The instance's rabbitmqctl (what backendctl service-account runs)."""
    ctl = os.environ.get("BACKEND_BROKER_CTL",
                         os.path.join(RUN_DIR, "rabbitmq", "rabbitmqctl"))
    out = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)}: {out.stderr}")
    return out.stdout


class Identities(unittest.TestCase):
    def test_guest_has_no_access(self):
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError):
            amqp_connection("guest", "guest")
        self.assertNotIn("guest", broker_ctl("list_users").split())

    def test_password_files_are_private(self):
        self.assertEqual(os.stat(BROKER_DIR).st_mode & 0o777, 0o700)
        for name in (ADMIN,) + COMPONENTS:
            self.assertEqual(os.stat(os.path.join(BROKER_DIR, f"{name}.password")).st_mode
                             & 0o777, 0o600, name)

    def test_nobody_binds_to_the_commands_exchange(self):
        """Binding a queue to backend.commands (and so reading every login's
        password) is refused to services and components alike."""
        name, pw = account(publish="#", subscribe="#")
        for key in ("auth.login", "#"):
            conn = amqp_connection(name, pw)
            try:
                ch = conn.channel()
                q = ch.queue_declare(f"{name}.spy", exclusive=True).method.queue
                refused(self, 403, ch.queue_bind, q, "backend.commands", key)
            finally:
                conn.close()

    def test_worker_queues_are_read_by_their_worker_only(self):
        name, pw = account(publish="#", subscribe="#")
        for user, password in ((name, pw), ("bridge", None), ("profile-worker", None)):
            conn = amqp_connection(user, password)
            try:
                refused(self, 403, conn.channel().basic_consume, "auth.commands",
                        lambda *a: None)
                refused(self, 403, conn.channel().basic_get, "auth.commands")
            finally:
                conn.close()

    def test_events_bind_only_as_granted(self):
        name, pw = account(subscribe="order.*,user.*")
        conn = amqp_connection(name, pw)
        try:
            q = conn.channel().queue_declare(f"{name}.events", exclusive=True).method.queue
            # concrete names within the grant: allowed
            for key in ("order.placed", "user.registered"):
                conn.channel().queue_bind(q, "backend.events", key)
            # everything, a wildcard binding (it would match secrets), a secret
            # event a wildcard grant does not name, another family: refused
            for key in ("#", "order.*", "user.*", "user.password_reset_requested",
                        "payment.completed"):
                with self.subTest(key=key):
                    refused(self, 403, conn.channel().queue_bind, q, "backend.events", key)
            # the commands exchange stays closed to it
            refused(self, 403, conn.channel().queue_bind, q, "backend.commands", "auth.login")
        finally:
            conn.close()
        # granted by its name, the secret event may be bound
        name, pw = account(subscribe="user.password_reset_requested")
        conn = amqp_connection(name, pw)
        try:
            ch = conn.channel()
            q = ch.queue_declare(f"{name}.resets", exclusive=True).method.queue
            ch.queue_bind(q, "backend.events", "user.password_reset_requested")
        finally:
            conn.close()

    def test_queues_of_another_name_are_refused(self):
        name, pw = account(subscribe="order.placed")
        conn = amqp_connection(name, pw)
        try:
            refused(self, 403, conn.channel().queue_declare, "other.events")
            refused(self, 403, conn.channel().queue_declare, "")  # amq.gen-…: not its name
        finally:
            conn.close()

    def test_only_the_relay_publishes_events(self):
        name, pw = account(publish="#", subscribe="#")
        for user, password in ((name, pw), ("bridge", None), ("payment-worker", None)):
            with self.subTest(user=user):
                refused(self, 403, publish, user, password, "backend.events", "payment.completed")

    def test_events_come_from_the_relay(self):
        """A subscriber checks user_id: RabbitMQ vouches that the relay published."""
        name, pw = account(subscribe="user.registered")
        with EventListener(["user.registered"], user=name, password=pw,
                           queue=f"{name}.registered") as events:
            username = unique("relay")
            register(username)
            ev = events.wait_for(lambda e: e["data"]["username"] == username, 15)
            self.assertIsNotNone(ev)
            props = [p for p, b in events.messages if b is ev][0]
            self.assertEqual(props.user_id, "relay")

    def test_commands_outside_the_grant_are_refused(self):
        name, pw = account(publish="order.*,payment.get")
        reply = amqp_call("order.list", {}, user=name, password=pw)
        self.assertEqual(reply["status"], 401)  # reached the worker: no token
        for command in ("auth.login", "payment.list", "profile.me"):
            with self.subTest(command=command):
                refused(self, 403, publish, name, pw, "backend.commands", command)

    def test_a_forged_user_id_is_refused_by_the_broker(self):
        refused(self, 406, publish, SERVICE, None, "backend.commands", "auth.login", "bridge")

    def test_a_command_without_user_id_is_refused_and_dead_lettered(self):
        mid = str(uuid.uuid4())
        reply = amqp_call("auth.login", {"username": "x", "password": "y"}, message_id=mid,
                          user_id=None)
        self.assertEqual(reply, {"status": 400, "body": {
            "detail": "Malformed command: the user_id property is missing."}})
        self.assertTrue(dead_letters(lambda p, b: p.message_id == mid, timeout=10))

    def test_replies_carry_the_worker_identity(self):
        conn = amqp_connection()
        replies = []
        try:
            ch = conn.channel()
            ch.basic_consume("amq.rabbitmq.reply-to",
                             lambda _c, _m, props, body: replies.append(props), auto_ack=True)
            ch.basic_publish("backend.commands", "order.list", COMMAND, pika.BasicProperties(
                message_id=str(uuid.uuid4()), reply_to="amq.rabbitmq.reply-to",
                user_id=SERVICE))
            deadline = time.monotonic() + 5
            while not replies and time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.2)
        finally:
            conn.close()
        self.assertEqual(replies[0].user_id, "order-worker")

    def test_service_account_usage_errors(self):
        ctl = os.path.join(BIN_DIR, "backendctl")
        for args in (["service-account", "bridge", "--publish", "#"],
                     ["service-account", "x", "--publish", "a..b"],
                     ["service-account", "x", "--subscribe", "#.user"],
                     ["service-account", "x"]):
            with self.subTest(args=args):
                out = subprocess.run([ctl, *args], cwd=REPO, capture_output=True, text=True,
                                     timeout=30)
                self.assertEqual(out.returncode, 2, out)
        # without --password-file the password is printed once, and it works
        name = unique("svc").replace("_", "-")
        out = subprocess.run([ctl, "service-account", name, "--publish", "order.list"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(amqp_call("order.list", {}, user=name,
                                   password=out.stdout.strip())["status"], 401)


class QueueBounds(unittest.TestCase):
    NAME = "payment-worker"

    def test_worker_queues_have_the_policy(self):
        rows = [l.split("\t") for l in broker_ctl(
            "list_queues", "name", "policy", "--no-table-headers").splitlines()]
        policies = {r[0]: r[1] for r in rows if len(r) == 2}
        for q in ("auth.commands", "profile.commands", "order.commands", "payment.commands"):
            self.assertEqual(policies.get(q), "backend-worker-queues", q)
        text = broker_ctl("list_policies", "--no-table-headers")
        self.assertIn('"overflow":"reject-publish"', text)
        self.assertIn('"delivery-limit":20', text)
        self.assertIn('"max-length":', text)

    def test_a_full_queue_refuses_publishes(self):
        """With nobody consuming and a (tiny, for the test) max-length, the
        broker refuses the publish: a publisher with confirms gets a nack."""
        pid_file = os.path.join(RUN_DIR, f"{self.NAME}.pid")
        with open(pid_file) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, signal.SIGTERM)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                    time.sleep(0.2)
                except ProcessLookupError:
                    break
            broker_ctl("set_policy", "--apply-to", "queues", "--priority", "10",
                       "test-full-payment", r"^payment\.commands$",
                       '{"max-length": 2, "overflow": "reject-publish", "delivery-limit": 20}')
            time.sleep(0.5)
            conn = amqp_connection()
            try:
                ch = conn.channel()
                ch.confirm_delivery()
                nacked = 0
                for _ in range(6):
                    try:
                        # fire-and-forget health checks: no effect when they run later
                        ch.basic_publish("backend.commands", "payment.health", COMMAND,
                                         pika.BasicProperties(message_id=str(uuid.uuid4()),
                                                              user_id=SERVICE))
                    except pika.exceptions.NackError:
                        nacked += 1
                self.assertGreater(nacked, 0, "no publish was refused")
            finally:
                conn.close()
        finally:
            broker_ctl("clear_policy", "test-full-payment")
            start_process(self.NAME)

        def consumed():
            status, _, body = http("GET", "/api/health/")
            return (body or {}).get("queues", {}).get("payment.commands", {}).get("consumers", 0)
        deadline = time.monotonic() + 20
        while not consumed() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertTrue(consumed(), "the payment worker did not come back")


if __name__ == "__main__":
    unittest.main()
