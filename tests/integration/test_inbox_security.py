"""Issue 10, findings 1, 5 and 6: a reply the broker refuses never blocks a
command; the inbox answers only its caller; it stores nothing an attacker can
use (keyed fingerprints, replies encrypted at rest). Through raw AMQP (pika),
HTTP and the database."""
import hashlib
import os
import subprocess
import threading
import time
import unittest
import uuid

import msgpack
import pika

from helpers import (SERVICE, BIN_DIR, PASSWORD, REPO, RUN_DIR, amqp_call, amqp_connection, db, dead_letters, http,
                     register, register_and_login, unique)

POISON_REPLY_TO = "amq.rabbitmq.reply-to.x.y"


def log_count(name, needle):
    """How many lines of .run/<instance>/log/<name>.log contain needle."""
    path = os.path.join(RUN_DIR, "log", f"{name}.log")
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if needle.encode() in line)
    except FileNotFoundError:
        return 0


def publish(command, args, token=None, message_id=None, reply_to=None, correlation_id=None):
    """Publishes one command and returns at once (no reply awaited)."""
    conn = amqp_connection()
    try:
        conn.channel().basic_publish(
            "backend.commands", command,
            msgpack.packb({"v": 1, "auth": token, "args": args}, use_bin_type=True),
            pika.BasicProperties(content_type="application/msgpack", delivery_mode=2,
                                 message_id=message_id or str(uuid.uuid4()),
                                 correlation_id=correlation_id or str(uuid.uuid4()),
                                 reply_to=reply_to, user_id=SERVICE))
    finally:
        conn.close()


class PoisonReplyTo(unittest.TestCase):
    """Finding 1: reply_to = amq.rabbitmq.reply-to.x.y made RabbitMQ 3.10 close
    the worker's connection before it settled the command, which then came back
    at once, over and over, while other users' commands failed."""

    def test_poison_reply_to_is_refused_once_and_others_are_served(self):
        token, _ = register_and_login("poison")
        other, _ = register_and_login("bystander")
        lost_before = log_count("order-worker", "broker connection lost")
        mid = str(uuid.uuid4())
        statuses = []
        stop = threading.Event()

        def bystander():
            while not stop.is_set():
                status, _, _ = http("GET", "/api/orders/", token=other, timeout=10)
                statuses.append(status)

        t = threading.Thread(target=bystander)
        t.start()
        try:
            time.sleep(0.3)
            publish("order.place", {"product_name": "poison", "quantity": 1, "price": "1.00"},
                    token=token, message_id=mid, reply_to=POISON_REPLY_TO)
            time.sleep(3)
        finally:
            stop.set()
            t.join()
        self.assertTrue(statuses, "the bystander sent nothing")
        self.assertEqual(set(statuses), {200}, f"the bystander was not served: {statuses}")
        dead = dead_letters(lambda p, b: p.message_id == mid, timeout=10)
        self.assertEqual(len(dead), 1, "the poison command is dead-lettered exactly once")
        time.sleep(1)  # nothing comes after it
        self.assertEqual(dead_letters(lambda p, b: p.message_id == mid, timeout=0), [])
        self.assertEqual(log_count("order-worker", "broker connection lost"), lost_before)
        # refused, not run: a command nobody can be answered about has no effect
        status, _, body = http("GET", "/api/orders/", token=token)
        self.assertEqual((status, body["count"]), (200, 0))

    def test_a_plain_queue_name_is_a_valid_reply_to(self):
        conn = amqp_connection()
        try:
            ch = conn.channel()
            # a service account may name queues after itself only
            q = ch.queue_declare(f"tests.reply-{uuid.uuid4().hex[:8]}", exclusive=True,
                                 auto_delete=True).method.queue
            publish("auth.verify", {"token": "nope"}, reply_to=q, correlation_id="c-1")
            deadline = time.monotonic() + 10
            got = None
            while got is None and time.monotonic() < deadline:
                method, props, payload = ch.basic_get(q, auto_ack=True)
                if method:
                    got = (props.correlation_id, msgpack.unpackb(payload, raw=False))
                else:
                    time.sleep(0.1)
            self.assertIsNotNone(got, "no reply on a plain reply queue")
            self.assertEqual(got[0], "c-1")
            self.assertEqual(got[1]["status"], 401)
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()


def inbox_row(message_id):
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT caller, command, key_id, fingerprint, status, reply FROM inbox "
                    "WHERE message_id = %s", (message_id,))
        rows = cur.fetchall()
    assert len(rows) == 1, rows
    caller, command, key_id, fp, status, reply = rows[0]
    return {"caller": caller, "command": command, "key_id": key_id, "fingerprint": bytes(fp),
            "status": status, "reply": bytes(reply)}


def unkeyed_fingerprints(command, args):
    """What the inbox used to store: SHA-256 of the command and the packed args."""
    packed = msgpack.packb(args, use_bin_type=True)
    return {hashlib.sha256(command.encode() + b"\0" + packed).digest(),
            hashlib.sha256(packed).digest()}


def old_message_id(scope, name):
    """The unkeyed derivation of the HTTP message id anybody could compute."""
    h = bytearray(hashlib.sha256(scope.encode() + b"\0" + name.encode()).digest())
    h[6] = (h[6] & 0x0F) | 0x80
    h[8] = (h[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(h[:16])))


def http_from(address, method, path, body, headers):
    """An HTTP request from another loopback source address."""
    import http.client as httpclient
    import json
    import urllib.parse
    url = urllib.parse.urlsplit(os.environ.get("BK_HTTP_URL", "http://127.0.0.1:8001"))
    conn = httpclient.HTTPConnection(url.hostname, url.port, timeout=30,
                                     source_address=(address, 0))
    try:
        conn.request(method, path, body=json.dumps(body).encode(),
                     headers=dict({"Content-Type": "application/json"}, **headers))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


class InboxAnswersOnlyItsCaller(unittest.TestCase):
    """Finding 5."""

    def test_another_caller_reusing_a_message_id_gets_no_stored_reply(self):
        alice, alice_login = register_and_login("alice")
        mallory, mallory_login = register_and_login("mallory")
        args = {"product_name": "secret thing", "quantity": 1, "price": "9.99"}
        mid = str(uuid.uuid4())
        first = amqp_call("order.place", args, token=alice, message_id=mid)
        self.assertEqual(first["status"], 201, first)
        self.assertEqual(first["body"]["user"], alice_login["user"]["id"])
        # the same message id and args with another user's token: their own command
        other = amqp_call("order.place", args, token=mallory, message_id=mid)
        self.assertEqual(other["status"], 201, other)
        self.assertEqual(other["body"]["user"], mallory_login["user"]["id"])
        self.assertNotEqual(other["body"]["id"], first["body"]["id"])
        # and each caller's retry still lands on its own stored reply
        again = amqp_call("order.place", args, token=alice, message_id=mid)
        self.assertEqual(again, first)
        again = amqp_call("order.place", args, token=mallory, message_id=mid)
        self.assertEqual(again, other)

    def test_http_message_id_is_keyed_with_the_server_secret(self):
        token, body = register_and_login("keyed")
        uid = body["user"]["id"]
        key = "k-" + uuid.uuid4().hex
        status, _, order = http("POST", "/api/orders/", {"product_name": "a", "quantity": 1,
                                                         "price": "1.00"},
                                token=token, headers={"Idempotency-Key": key})
        self.assertEqual(status, 201, order)
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT message_id::text FROM inbox WHERE caller = %s", (f"user:{uid}",))
            ids = [r[0] for r in cur.fetchall()]
        self.assertEqual(len(ids), 1)
        self.assertNotEqual(ids[0], old_message_id(f"user:{uid}", f"POST /api/orders\n{key}"))

    def test_anonymous_idempotency_key_is_scoped_to_the_client_address(self):
        name = unique("anon")
        payload = {"username": name, "email": f"{name}@example.com", "password": PASSWORD,
                   "password2": PASSWORD}
        key = {"Idempotency-Key": "anon-" + uuid.uuid4().hex}
        status, first = http_from("127.0.0.1", "POST", "/api/auth/register/", payload, key)
        self.assertEqual(status, 201, first)
        # another client with the same key and body: not the first reply
        status, body = http_from("127.0.0.2", "POST", "/api/auth/register/", payload, key)
        self.assertEqual(status, 400, body)
        self.assertIn("username", body)
        # the first client's retry: its stored reply
        status, again = http_from("127.0.0.1", "POST", "/api/auth/register/", payload, key)
        self.assertEqual((status, again), (201, first))


class InboxStoresNothingUsable(unittest.TestCase):
    """Finding 6."""

    def test_login_and_password_change_rows_hold_no_secret(self):
        name = unique("rest")
        register(name)
        args = {"username": name, "password": PASSWORD}
        mid = str(uuid.uuid4())
        login = amqp_call("auth.login", args, message_id=mid)
        self.assertEqual(login["status"], 200, login)
        row = inbox_row(mid)
        # anonymous, scoped by the publisher's broker identity (helpers publish as "tests")
        self.assertEqual((row["caller"], row["status"]), ("anon@tests", 200))
        self.assertIsNotNone(row["key_id"])
        for secret in (login["body"]["access"], login["body"]["refresh"]):
            for part in secret.split("."):
                self.assertNotIn(part.encode(), row["reply"])
        self.assertNotIn(b"refresh", row["reply"])
        self.assertNotIn(PASSWORD.encode(), row["reply"])
        self.assertNotIn(row["fingerprint"], unkeyed_fingerprints("auth.login", args))

        new = PASSWORD + "-2"
        change = {"old_password": PASSWORD, "new_password": new, "new_password2": new}
        mid2 = str(uuid.uuid4())
        changed = amqp_call("auth.change_password", change, token=login["body"]["access"],
                            message_id=mid2)
        self.assertEqual(changed["status"], 200, changed)
        row = inbox_row(mid2)
        self.assertEqual(row["caller"], f"user:{login['body']['user']['id']}")
        for secret in (changed["body"]["access"], changed["body"]["refresh"]):
            for part in secret.split("."):
                self.assertNotIn(part.encode(), row["reply"])
        self.assertNotIn(b"access", row["reply"])
        self.assertNotIn(row["fingerprint"], unkeyed_fingerprints("auth.change_password", change))

    def test_retried_login_answers_the_same_and_other_args_are_refused(self):
        name = unique("retry")
        register(name)
        mid = str(uuid.uuid4())
        first = amqp_call("auth.login", {"username": name, "password": PASSWORD}, message_id=mid)
        self.assertEqual(first["status"], 200, first)
        again = amqp_call("auth.login", {"username": name, "password": PASSWORD}, message_id=mid)
        self.assertEqual(again, first)
        guess = amqp_call("auth.login", {"username": name, "password": "guess"}, message_id=mid)
        self.assertEqual(guess["status"], 422)
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM token_families f JOIN users u ON u.id = f.user_id "
                        "WHERE u.username = %s", (name,))
            self.assertEqual(cur.fetchone()[0], 1, "the retry logged in a second time")

    def test_a_reply_stored_before_a_rotation_still_answers(self):
        name = unique("rotate")
        register(name)
        mid = str(uuid.uuid4())
        args = {"username": name, "password": PASSWORD}
        first = amqp_call("auth.login", args, message_id=mid)
        self.assertEqual(first["status"], 200, first)
        kid_before = inbox_row(mid)["key_id"]
        out = subprocess.run([os.path.join(BIN_DIR, "backendctl"), "keygen", "--rotate"],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("server key", out.stdout)
        time.sleep(1.5)  # users of the key file look at it at most once a second
        mid2 = str(uuid.uuid4())
        self.assertEqual(amqp_call("auth.login", args, message_id=mid2)["status"], 200)
        self.assertNotEqual(inbox_row(mid2)["key_id"], kid_before, "new rows use the new key")
        self.assertEqual(amqp_call("auth.login", args, message_id=mid), first)

    def test_a_row_from_before_the_migration_is_answered_409_without_effect(self):
        name = unique("legacy")
        mid = str(uuid.uuid4())
        with db() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO inbox (message_id, caller, command, key_id, fingerprint, "
                        "status, reply) VALUES (%s, '', 'auth.register', NULL, '', 201, '')",
                        (mid,))
        reply = amqp_call("auth.register", {"username": name, "email": f"{name}@example.com",
                                            "password": PASSWORD, "password2": PASSWORD},
                          message_id=mid)
        self.assertEqual(reply["status"], 409, reply)
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM users WHERE username = %s", (name,))
            self.assertEqual(cur.fetchone()[0], 0)
