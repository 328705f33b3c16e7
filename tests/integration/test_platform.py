"""Register and login end to end, and the worker runtime's promises (inbox,
outbox, dead letters, redelivery after a crash), against the live servers
through HTTP and through raw AMQP."""
import time
import unittest
import uuid

import msgpack
import pika

from helpers import (AMQP_PORT, EventListener, amqp_call, db, dead_letters, http, login,
                     register, unique)

PASSWORD = "v3ry-Secret-pass"


def count_users(username):
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM users WHERE username = %s", (username,))
        return cur.fetchone()[0]


class RegisterLogin(unittest.TestCase):
    def test_register_then_login_by_username_and_email(self):
        name = unique("ada")
        status, _, body = http("POST", "/api/auth/register/", {
            "username": name, "email": f"{name}@example.com", "password": PASSWORD,
            "password2": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"})
        self.assertEqual(status, 201, body)
        self.assertEqual(body["detail"], "User registered successfully.")
        me = body["user"]
        self.assertEqual(set(me), {"id", "username", "email", "first_name", "last_name",
                                   "full_name", "role", "is_staff", "is_superuser",
                                   "date_joined"})
        self.assertEqual((me["username"], me["role"], me["is_staff"]), (name, "member", False))
        self.assertTrue(me["date_joined"].endswith("Z"))

        for ident in ({"username": name}, {"email": f"{name.upper()}@EXAMPLE.com"}):
            status, _, body = http("POST", "/api/auth/login/", dict(ident, password=PASSWORD))
            self.assertEqual(status, 200, body)
            self.assertEqual(body["user"]["id"], me["id"])
            self.assertEqual(len(body["access"].split(".")), 3)
            self.assertNotEqual(body["access"], body["refresh"])

    def test_wrong_password_and_unknown_user(self):
        name = unique("bob")
        register(name)
        for creds in ({"username": name, "password": "wrong-password"},
                      {"username": unique("nobody"), "password": PASSWORD},
                      {"email": "nobody@example.com", "password": PASSWORD}):
            status, _, body = http("POST", "/api/auth/login/", creds)
            self.assertEqual(status, 401, body)
            self.assertEqual(body, {"detail": "No active account found with the given credentials",
                                    "code": "no_active_account"})

    def test_login_requires_fields(self):
        status, _, body = http("POST", "/api/auth/login/", {})
        self.assertEqual(status, 400)
        self.assertEqual(body, {"username": ["This field is required."],
                                "password": ["This field is required."]})

    def test_duplicate_username_and_email(self):
        name = unique("dup")
        register(name)
        status, _, body = http("POST", "/api/auth/register/", {
            "username": name, "email": f"{name}@EXAMPLE.COM", "password": PASSWORD,
            "password2": PASSWORD})
        self.assertEqual(status, 400)
        self.assertEqual(body, {"username": ["A user with that username already exists."],
                                "email": ["A user with that email already exists."]})

    def test_field_rules(self):
        status, _, body = http("POST", "/api/auth/register/", {
            "username": "bad name!", "email": "not-an-email", "password": PASSWORD,
            "password2": PASSWORD, "role": "king"})
        self.assertEqual(status, 400)
        self.assertIn("Enter a valid username.", body["username"][0])
        self.assertEqual(body["email"], ["Enter a valid email address."])
        self.assertEqual(body["role"], ['"king" is not a valid choice.'])
        status, _, body = http("POST", "/api/auth/register/", {"username": 42, "email": ["x"]})
        self.assertEqual(status, 400)
        self.assertEqual(body["email"], ["Not a valid string."])
        self.assertEqual(body["password"], ["This field is required."])

    def test_password_mismatch_and_validators(self):
        name = unique("val")
        base = {"username": name, "email": f"{name}@example.com"}
        status, _, body = http("POST", "/api/auth/register/",
                               dict(base, password=PASSWORD, password2=PASSWORD + "x"))
        self.assertEqual((status, body), (400, {"password2": ["The two password fields didn't match."]}))
        status, _, body = http("POST", "/api/auth/register/", dict(base, password="1234", password2="1234"))
        self.assertEqual(status, 400)
        self.assertEqual(body["password"], [
            "This password is too short. It must contain at least 8 characters.",
            "This password is too common.",
            "This password is entirely numeric."])
        status, _, body = http("POST", "/api/auth/register/",
                               dict(base, password=name + "1", password2=name + "1"))
        self.assertEqual(status, 400)
        self.assertEqual(body["password"], ["The password is too similar to the username."])
        self.assertEqual(count_users(name), 0)

    def test_registered_event_is_published(self):
        name = unique("evt")
        with EventListener(["user.registered"]) as events:
            user = register(name)["user"]
            ev = events.wait_for(lambda e: e["data"].get("username") == name, timeout=10)
        self.assertIsNotNone(ev, "no user.registered event")
        self.assertEqual(ev["event"], "user.registered")
        self.assertEqual(ev["v"], 1)
        self.assertEqual(ev["data"], {"user_id": user["id"], "username": name,
                                      "email": f"{name}@example.com"})
        uuid.UUID(ev["id"])
        self.assertTrue(ev["occurred_at"].endswith("Z"))


class Runtime(unittest.TestCase):
    def register_args(self, name):
        return {"username": name, "email": f"{name}@example.com", "password": PASSWORD,
                "password2": PASSWORD}

    def test_same_message_id_twice_has_one_effect_and_one_reply(self):
        name = unique("idem")
        mid = str(uuid.uuid4())
        first = amqp_call("auth.register", self.register_args(name), message_id=mid)
        second = amqp_call("auth.register", self.register_args(name), message_id=mid)
        self.assertEqual(first["status"], 201, first)
        self.assertEqual(first, second)
        self.assertEqual(count_users(name), 1)
        # the same id with other content is refused, not answered with the old reply
        other = amqp_call("auth.register", self.register_args(unique("other")), message_id=mid)
        self.assertEqual(other["status"], 422)

    def test_idempotency_key_over_http(self):
        name = unique("ikey")
        key = {"Idempotency-Key": "key-" + name}
        s1, _, b1 = http("POST", "/api/auth/register/", self.register_args(name), headers=key)
        s2, _, b2 = http("POST", "/api/auth/register/", self.register_args(name), headers=key)
        self.assertEqual((s1, s2), (201, 201), (b1, b2))
        self.assertEqual(b1, b2)
        self.assertEqual(count_users(name), 1)
        # without the key, the retry is a second request: the name is taken
        s3, _, b3 = http("POST", "/api/auth/register/", self.register_args(name))
        self.assertEqual(s3, 400)

    def test_garbage_body_gets_400_and_goes_to_dead_letters(self):
        mid = str(uuid.uuid4())
        reply = amqp_call("auth.register", None, message_id=mid, raw_body=b"\xc1\xff garbage")
        self.assertEqual(reply["status"], 400)
        self.assertTrue(reply["body"]["detail"].startswith("Malformed command"), reply)
        dead = dead_letters(lambda props, body: props.message_id == mid, timeout=10)
        self.assertTrue(dead, "the message did not reach backend.dead")

    def test_wrong_envelope_types_get_400(self):
        for body in ([1, 2], {"v": 2, "args": {}}, {"v": 1, "auth": 5, "args": {}},
                     {"v": 1, "args": "x"}):
            reply = amqp_call("auth.login", None, raw_body=msgpack.packb(body))
            self.assertEqual(reply["status"], 400, body)

    def test_unknown_command(self):
        reply = amqp_call("auth.nope", {})
        self.assertEqual(reply, {"status": 400, "body": {"detail": 'Unknown command "auth.nope".'}})
        for worker in ("profile", "order", "payment"):
            reply = amqp_call(f"{worker}.nope", {})
            self.assertEqual(reply["status"], 400, worker)

    def test_too_many_deliveries_get_500_and_dead_letter(self):
        name = unique("poison")
        mid = str(uuid.uuid4())
        reply = amqp_call("auth.register", self.register_args(name), message_id=mid,
                          headers={"x-delivery-count": 5})
        self.assertEqual(reply, {"status": 500, "body": {"detail": "A server error occurred."}})
        self.assertTrue(dead_letters(lambda p, b: p.message_id == mid, timeout=10))
        self.assertEqual(count_users(name), 0)

    def test_expired_command_is_not_executed(self):
        name = unique("late")
        mid = str(uuid.uuid4())
        sent = int(time.time() * 1000) - 10000
        with self.assertRaises(TimeoutError):
            amqp_call("auth.register", self.register_args(name), message_id=mid, timeout=3,
                      headers={"timestamp_in_ms": sent}, expiration="5000")
        self.assertEqual(count_users(name), 0)

    def test_crash_after_commit_is_recovered_by_redelivery(self):
        name = unique("crash")
        mid = str(uuid.uuid4())
        reply = amqp_call("auth.register", self.register_args(name), message_id=mid, timeout=20,
                          headers={"x-test-crash": "after-commit"})
        self.assertEqual(reply["status"], 201, reply)
        self.assertEqual(reply["body"]["user"]["username"], name)
        self.assertEqual(count_users(name), 1)
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM inbox WHERE message_id = %s", (mid,))
            self.assertEqual(cur.fetchone()[0], 1)


if __name__ == "__main__":
    unittest.main()
