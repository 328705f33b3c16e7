"""docs/amqp.md says what a service author does over AMQP: these tests run its
pika example (docs/examples/place_order.py) against the test instance and
check the claims it makes (bare token, unroutable commands, idempotency,
the event envelope a subscriber sees)."""
import json
import os
import re
import subprocess
import sys
import urllib.parse
import uuid

import unittest

import msgpack
import pika

from helpers import (AMQP_HOST, AMQP_PORT, COMMANDS_EXCHANGE, PASSWORD, REPO,
                     EventListener, amqp_call, amqp_connection, http, register,
                     register_and_login, service_account, unique)

DOC = os.path.join(REPO, "docs", "amqp.md")
EXAMPLE = os.path.join(REPO, "docs", "examples", "place_order.py")
SERVICE = "shopdemo"  # the doc's "billing", with just what the example needs


class AmqpDoc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.password = service_account(SERVICE, publish="auth.login,order.place",
                                       subscribe="order.placed")

    def test_the_doc_shows_the_example_as_it_is(self):
        with open(DOC) as f:
            doc = f.read()
        with open(EXAMPLE) as f:
            example = f.read()
        blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
        self.assertIn(example, blocks)
        for ref in ("/api/openapi.json", "/api/asyncapi.json", "backendctl service-account"):
            self.assertIn(ref, doc)

    def test_the_example_places_an_order(self):
        name = unique("amqpdoc")
        user = register(name)["user"]
        url = (f"amqp://{SERVICE}:{urllib.parse.quote(self.password, safe='')}"
               f"@{AMQP_HOST}:{AMQP_PORT}/%2F")
        env = dict(os.environ, BK_AMQP_URL=url, BK_USERNAME=name, BK_PASSWORD=PASSWORD)
        with EventListener(["order.placed"], user=SERVICE, password=self.password,
                           queue=f"{SERVICE}.events-{uuid.uuid4().hex[:8]}") as events:
            out = subprocess.run([sys.executable, EXAMPLE], env=env, capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            order = json.loads(out.stdout)
            self.assertEqual((order["user"], order["product_name"], order["quantity"],
                              order["price"], order["total"], order["status"]),
                             (user["id"], "Notebook", 2, "19.99", "39.98", "pending"))
            # what the doc says a subscriber gets
            ev = events.wait_for(lambda e: e["data"]["id"] == order["id"], timeout=10)
        self.assertIsNotNone(ev, "no order.placed event")
        props = next(p for p, b in events.messages if b is ev)
        self.assertEqual((props.user_id, props.type, props.content_type, props.message_id),
                         ("relay", "order.placed", "application/msgpack", ev["id"]))
        self.assertEqual((ev["v"], ev["event"]), (1, "order.placed"))
        self.assertIn("occurred_at", ev)
        self.assertIn("x-causation-id", props.headers)
        # the order exists
        token, _ = register_and_login("amqpdoc2")
        status = http("GET", f"/api/orders/{order['id']}/", token=token)[0]
        self.assertEqual(status, 404)  # another user does not see it...
        ok = amqp_call("order.get", {"id": order["id"]}, token=self._token(name))
        self.assertEqual((ok["status"], ok["body"]["id"]), (200, order["id"]))  # ...its owner does

    def _token(self, name):
        reply = amqp_call("auth.login", {"username": name, "password": PASSWORD})
        self.assertEqual(reply["status"], 200)
        return reply["body"]["access"]

    def test_bearer_prefix_is_refused(self):
        token, _ = register_and_login("amqpdoc")
        args = {"product_name": "Notebook", "quantity": 1, "price": "1.00"}
        self.assertEqual(amqp_call("order.place", args, token=f"Bearer {token}")["status"], 401)

    def test_same_message_id_same_reply_one_effect(self):
        token, _ = register_and_login("amqpdoc")
        args = {"product_name": unique("idem"), "quantity": 1, "price": "1.00"}
        mid = str(uuid.uuid4())
        first = amqp_call("order.place", args, token=token, message_id=mid)
        again = amqp_call("order.place", args, token=token, message_id=mid)
        self.assertEqual(first["status"], 201)
        self.assertEqual(again, first)
        other = amqp_call("order.place", dict(args, quantity=2), token=token, message_id=mid)
        self.assertEqual(other["status"], 422)

    def test_unroutable_and_unknown_commands(self):
        conn = amqp_connection()
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            body = msgpack.packb({"v": 1, "auth": None, "args": {}})
            props = pika.BasicProperties(content_type="application/msgpack", delivery_mode=2,
                                         message_id=str(uuid.uuid4()), user_id="tests")
            with self.assertRaises(pika.exceptions.UnroutableError):
                ch.basic_publish(COMMANDS_EXCHANGE, "ordr.place", body, props, mandatory=True)
        finally:
            if conn.is_open:
                conn.close()
        reply = amqp_call("order.nope", {})
        self.assertEqual(reply, {"status": 400,
                                 "body": {"detail": 'Unknown command "order.nope".'}})

    def test_publish_outside_the_grant_is_refused(self):
        conn = amqp_connection(SERVICE, self.password)
        try:
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.basic_publish(COMMANDS_EXCHANGE, "payment.set_status",
                                 msgpack.packb({"v": 1, "auth": None, "args": {}}),
                                 pika.BasicProperties(message_id=str(uuid.uuid4()),
                                                      user_id=SERVICE))
                ch.queue_declare(f"{SERVICE}.probe", exclusive=True)  # the close arrives
            self.assertEqual(cm.exception.reply_code, 403)
        finally:
            if conn.is_open:
                conn.close()


if __name__ == "__main__":
    unittest.main()
