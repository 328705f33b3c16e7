"""Issue 10, findings 1, 5 and 6: a reply the broker refuses never blocks a
command; the inbox answers only its caller; it stores nothing an attacker can
use (keyed fingerprints, replies encrypted at rest). Through raw AMQP (pika),
HTTP and the database."""
import hashlib
import os
import threading
import time
import unittest
import uuid

import msgpack
import pika

from helpers import (PASSWORD, RUN_DIR, amqp_call, amqp_connection, db, dead_letters, http,
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
                                 reply_to=reply_to))
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
            q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
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
