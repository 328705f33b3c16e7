"""The auth worker beyond register/login: rotation and reuse detection,
logout, password change and reset, JWKS and key rotation, token hygiene,
throttling, service tokens and backendctl. Through HTTP and raw AMQP."""
import base64
import json
import os
import subprocess
import threading
import time
import unittest
import uuid

import jwt as pyjwt

from helpers import (EventListener, amqp_call, db, http, login, register, service_account,
                     unique)

PASSWORD = "v3ry-Secret-pass"
BIN = os.environ.get("BK_BIN_DIR", "build/test/bin")
BLACKLISTED = {"detail": "Token is blacklisted", "code": "token_not_valid"}
INVALID = {"detail": "Token is invalid or expired", "code": "token_not_valid"}
NOT_VALID = {"detail": "Given token not valid for any token type", "code": "token_not_valid"}


def setUpModule():
    # failed logins of earlier runs from this address must not throttle this one
    with db() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM login_throttle WHERE key LIKE 'ip:%%'")


def new_user(**extra):
    name = unique("u")
    register(name, password=PASSWORD, **extra)
    return name, login(name, password=PASSWORD)


def refresh(token):
    return http("POST", "/api/auth/token/refresh/", {"refresh": token})


def ctl(*args, env=None):
    full = dict(os.environ, **(env or {}))
    return subprocess.run([os.path.join(BIN, "backendctl"), *args], capture_output=True,
                          text=True, env=full, cwd=os.environ.get("BK_REPO", "."), timeout=60)


def b64(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Refresh(unittest.TestCase):
    def test_rotation_and_reuse_revokes_the_family(self):
        _, tokens = new_user()
        status, _, first = refresh(tokens["refresh"])
        self.assertEqual(status, 200, first)
        self.assertEqual(set(first), {"access", "refresh"})
        # the new access token works
        status, _, _ = http("POST", "/api/auth/token/verify/", {"token": first["access"]})
        self.assertEqual(status, 200)
        # the old refresh token was used: presenting it again is reuse...
        status, _, body = refresh(tokens["refresh"])
        self.assertEqual((status, body), (401, BLACKLISTED))
        # ...which revoked the family: the successor is dead too
        status, _, body = refresh(first["refresh"])
        self.assertEqual((status, body), (401, BLACKLISTED))

    def test_concurrent_refresh_exactly_one_wins(self):
        _, tokens = new_user()
        results = []
        barrier = threading.Barrier(2)

        def go():
            barrier.wait()
            results.append(refresh(tokens["refresh"])[0])

        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(results), [200, 401])

    def test_bad_tokens(self):
        _, tokens = new_user()
        for bad in ("", "abc", "a.b.c", tokens["access"]):
            status, _, body = refresh(bad)
            if bad == "":
                self.assertEqual((status, body), (400, {"refresh": ["This field may not be blank."]}))
            else:
                self.assertEqual((status, body), (401, INVALID), bad)
        status, _, body = http("POST", "/api/auth/token/refresh/", {})
        self.assertEqual((status, body), (400, {"refresh": ["This field is required."]}))

    def test_deactivated_user_cannot_refresh(self):
        name, tokens = new_user()
        with db() as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET is_active = false WHERE username = %s", (name,))
        status, _, body = refresh(tokens["refresh"])
        self.assertEqual(status, 401)
        # and the access token is refused at once, not at its expiry
        status, _, body = http("POST", "/api/auth/logout/all/", {}, token=tokens["access"])
        self.assertEqual(status, 401)

    def test_refresh_over_amqp(self):
        _, tokens = new_user()
        reply = amqp_call("auth.refresh", {"refresh": tokens["refresh"]})
        self.assertEqual(reply["status"], 200, reply)
        reply = amqp_call("auth.refresh", {"refresh": tokens["refresh"]})
        self.assertEqual(reply, {"status": 401, "body": BLACKLISTED})


class VerifyLogout(unittest.TestCase):
    def test_verify(self):
        _, tokens = new_user()
        self.assertEqual(http("POST", "/api/auth/token/verify/", {"token": tokens["access"]})[::2],
                         (200, {}))
        self.assertEqual(http("POST", "/api/auth/token/verify/", {"token": tokens["refresh"]})[::2],
                         (200, {}))
        self.assertEqual(http("POST", "/api/auth/token/verify/", {"token": "x.y.z"})[::2],
                         (401, INVALID))
        refresh(tokens["refresh"])
        self.assertEqual(http("POST", "/api/auth/token/verify/", {"token": tokens["refresh"]})[::2],
                         (401, BLACKLISTED))

    def test_logout(self):
        _, tokens = new_user()
        status, _, body = http("POST", "/api/auth/logout/", {"refresh": tokens["refresh"]},
                               token=tokens["access"])
        self.assertEqual((status, body), (200, {"detail": "Successfully logged out."}))
        self.assertEqual(refresh(tokens["refresh"])[::2], (401, BLACKLISTED))
        # without credentials
        status, headers, body = http("POST", "/api/auth/logout/", {"refresh": tokens["refresh"]})
        self.assertEqual(status, 401)
        self.assertEqual(body, {"detail": "Authentication credentials were not provided."})
        self.assertEqual(headers.get("www-authenticate"), 'Bearer realm="api"')

    def test_logout_someone_elses_token(self):
        _, mine = new_user()
        _, theirs = new_user()
        status, _, body = http("POST", "/api/auth/logout/", {"refresh": theirs["refresh"]},
                               token=mine["access"])
        self.assertEqual((status, body), (400, {"refresh": ["Token does not belong to this user."]}))
        self.assertEqual(refresh(theirs["refresh"])[0], 200)

    def test_logout_all(self):
        name, first = new_user()
        second = login(name, password=PASSWORD)
        status, _, body = http("POST", "/api/auth/logout/all/", {}, token=first["access"])
        self.assertEqual((status, body), (200, {"detail": "Successfully logged out of all sessions."}))
        for t in (first, second):
            self.assertEqual(refresh(t["refresh"])[::2], (401, BLACKLISTED))


class Passwords(unittest.TestCase):
    def test_change_password(self):
        name, tokens = new_user()
        other_session = login(name, password=PASSWORD)
        url = "/api/auth/password/change/"
        status, _, body = http("POST", url, {"old_password": "nope", "new_password": "An0ther-pass!",
                                             "new_password2": "An0ther-pass!"}, token=tokens["access"])
        self.assertEqual((status, body), (400, {"old_password": [
            "Your old password was entered incorrectly. Please enter it again."]}))
        status, _, body = http("POST", url, {"old_password": PASSWORD, "new_password": "short",
                                             "new_password2": "short"}, token=tokens["access"])
        self.assertEqual(status, 400)
        self.assertIn("This password is too short. It must contain at least 8 characters.",
                      body["new_password"])
        with EventListener(["user.password_changed"]) as events:
            status, _, body = http("POST", url, {"old_password": PASSWORD,
                                                 "new_password": "An0ther-pass!",
                                                 "new_password2": "An0ther-pass!"},
                                   token=tokens["access"])
            self.assertEqual(status, 200, body)
            self.assertEqual(body["detail"], "Password changed successfully.")
            user_id = pyjwt.decode(body["access"], options={"verify_signature": False})["user_id"]
            ev = events.wait_for(lambda e: e["data"]["user_id"] == user_id, timeout=10)
        self.assertEqual(ev["data"], {"user_id": user_id, "how": "change"})
        # every other session ends; the fresh pair works
        self.assertEqual(refresh(other_session["refresh"])[::2], (401, BLACKLISTED))
        self.assertEqual(refresh(tokens["refresh"])[::2], (401, BLACKLISTED))
        self.assertEqual(refresh(body["refresh"])[0], 200)
        self.assertEqual(http("POST", "/api/auth/login/", {"username": name, "password": PASSWORD})[0], 401)
        login(name, password="An0ther-pass!")

    def test_reset_flow(self):
        name, tokens = new_user()
        email = f"{name}@example.com"
        with EventListener(["user.password_reset_requested"]) as events:
            status, _, unknown = http("POST", "/api/auth/password/reset/", {"email": "nobody-" + email})
            self.assertEqual(status, 202)
            status, _, known = http("POST", "/api/auth/password/reset/", {"email": email.upper()})
            self.assertEqual(status, 202)
            self.assertEqual(unknown, known)
            ev = events.wait_for(lambda e: e["data"]["email"] == email, timeout=10)
        self.assertIsNotNone(ev)
        data = ev["data"]
        self.assertEqual(set(data), {"user_id", "email", "uid", "token", "expires_at"})
        with db() as conn, conn.cursor() as cur:  # only a hash is stored
            cur.execute("SELECT count(*) FROM password_resets WHERE token_hash = %s",
                        (data["token"].encode(),))
            self.assertEqual(cur.fetchone()[0], 0)
        confirm = {"uid": data["uid"], "token": data["token"], "new_password": "Res3t-pass-word",
                   "new_password2": "Res3t-pass-word"}
        bad = dict(confirm, token="x" + data["token"])
        self.assertEqual(http("POST", "/api/auth/password/reset/confirm/", bad)[::2],
                         (400, {"token": ["Invalid token for given user."]}))
        status, _, body = http("POST", "/api/auth/password/reset/confirm/", confirm)
        self.assertEqual(status, 200, body)
        # single use
        self.assertEqual(http("POST", "/api/auth/password/reset/confirm/", confirm)[::2],
                         (400, {"token": ["Invalid token for given user."]}))
        self.assertEqual(refresh(tokens["refresh"])[::2], (401, BLACKLISTED))
        login(name, password="Res3t-pass-word")


class Keys(unittest.TestCase):
    def test_jwks_verifies_with_a_standard_library(self):
        _, tokens = new_user()
        status, headers, jwks = http("GET", "/api/auth/jwks.json")
        self.assertEqual(status, 200)
        self.assertIn("max-age", headers.get("cache-control", ""))
        header = pyjwt.get_unverified_header(tokens["access"])
        self.assertEqual(header["alg"], "EdDSA")
        key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        self.assertEqual((key["kty"], key["crv"]), ("OKP", "Ed25519"))
        claims = pyjwt.decode(tokens["access"], pyjwt.PyJWK(key).key, algorithms=["EdDSA"])
        self.assertEqual(claims["token_type"], "access")
        self.assertIn("user_id", claims)
        self.assertIn("role", claims)

    def test_rotation_keeps_old_tokens_valid(self):
        name, before = new_user()
        out = ctl("keygen", "--rotate")
        self.assertEqual(out.returncode, 0, out.stderr)
        time.sleep(1.5)  # verifiers look at the key folder at most once a second
        after = login(name, password=PASSWORD)
        self.assertNotEqual(pyjwt.get_unverified_header(before["access"])["kid"],
                            pyjwt.get_unverified_header(after["access"])["kid"])
        kids = {k["kid"] for k in http("GET", "/api/auth/jwks.json")[2]["keys"]}
        for t in (before, after):
            self.assertIn(pyjwt.get_unverified_header(t["access"])["kid"], kids)
            status, _, body = http("POST", "/api/auth/logout/", {"refresh": t["refresh"]},
                                   token=t["access"])
            self.assertEqual(status, 200, body)


class Hygiene(unittest.TestCase):
    def forged(self, tokens, header):
        _, payload, sig = tokens["access"].split(".")
        return f"{b64(header)}.{payload}.{sig}"

    def test_forged_tokens_are_refused(self):
        _, tokens = new_user()
        kid = pyjwt.get_unverified_header(tokens["access"])["kid"]
        head, payload, sig = tokens["access"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["is_staff"] = True
        cases = {
            "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
            "HS256": pyjwt.encode(claims, "secret", algorithm="HS256", headers={"kid": kid}),
            "unknown kid": self.forged(tokens, {"alg": "EdDSA", "typ": "JWT", "kid": "nope"}),
            "bad signature": f"{head}.{b64(claims)}.{sig}",
            "refresh as access": tokens["refresh"],
            "garbage": "not a token",
        }
        for what, token in cases.items():
            status, headers, body = http("POST", "/api/auth/logout/all/", {}, token=token)
            self.assertEqual((status, body), (401, NOT_VALID), what)
            self.assertEqual(headers.get("www-authenticate"), 'Bearer realm="api"')
            reply = amqp_call("auth.logout_all", {}, token=token)
            self.assertEqual(reply["status"], 401, what)
        # an access token is not a refresh token
        self.assertEqual(refresh(tokens["access"])[::2], (401, INVALID))

    def sign(self, claims):
        """A token signed with the instance's real key, as shared/jwt.c does."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        key_dir = os.environ.get("BK_KEY_DIR", ".run/test/keys")
        with open(os.path.join(key_dir, "signing.key")) as f:
            secret_hex, kid = f.read().split()[:2]
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret_hex)[:32])
        signing_input = f"{b64({'alg': 'EdDSA', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}"
        sig = base64.urlsafe_b64encode(key.sign(signing_input.encode())).rstrip(b"=").decode()
        return f"{signing_input}.{sig}"

    def test_expired_and_claimless_tokens_are_refused(self):
        _, tokens = new_user()
        claims = pyjwt.decode(tokens["access"], options={"verify_signature": False})
        # the signing helper is right: a fresh copy of the claims is accepted
        fresh = self.sign(claims)
        self.assertEqual(http("POST", "/api/auth/token/verify/", {"token": fresh})[0], 200)
        now = int(time.time())
        for what, bad in {
            "expired": dict(claims, iat=now - 7200, exp=now - 3600),
            "no exp": {k: v for k, v in claims.items() if k != "exp"},
            "exp as text": dict(claims, exp=str(now + 600)),
            "unknown token type": dict(claims, token_type="id"),
        }.items():
            token = self.sign(bad)
            status, _, body = http("POST", "/api/auth/logout/all/", {}, token=token)
            self.assertEqual((status, body), (401, NOT_VALID), what)
            self.assertEqual(http("POST", "/api/auth/token/verify/", {"token": token})[::2],
                             (401, INVALID), what)

    def test_service_token_refused_where_not_allowed(self):
        out = ctl("service-token", "billing", "--ttl", "60")
        self.assertEqual(out.returncode, 0, out.stderr)
        token = out.stdout.strip()
        claims = pyjwt.decode(token, options={"verify_signature": False})
        self.assertEqual(claims["service"], "billing")
        self.assertNotIn("user_id", claims)
        status, _, body = http("POST", "/api/auth/logout/all/", {}, token=token)
        self.assertEqual((status, body), (403, {"detail": "You do not have permission to perform this action."}))


def login_service():
    """A service account of its own that may publish auth.login: its failures
    count against it alone. Returns (name, password)."""
    name = unique("login")
    return name, service_account(name, publish="auth.login")


class Throttling(unittest.TestCase):
    def test_account_throttled_after_five_failures_and_reset_by_success(self):
        name, _ = new_user()
        svc, pw = login_service()
        call = lambda args: amqp_call("auth.login", args, user=svc, password=pw)["status"]
        wrong = {"username": name, "password": "wrong-one"}
        right = {"username": name, "password": PASSWORD}
        for _ in range(4):
            self.assertEqual(call(wrong), 401)
        self.assertEqual(call(right), 200)  # resets
        for _ in range(5):
            self.assertEqual(call(wrong), 401)
        reply = amqp_call("auth.login", right, user=svc, password=pw)
        self.assertEqual(reply["status"], 429, reply)
        self.assertTrue(reply["body"]["detail"].startswith("Request was throttled."))
        retry = int(reply["headers"]["Retry-After"])
        self.assertTrue(0 < retry <= 900)
        # through HTTP the header reaches the client
        status, headers, _ = http("POST", "/api/auth/login/", right)
        self.assertEqual(status, 429)
        self.assertIn("retry-after", headers)

    def test_address_of_a_service_is_its_identity_not_its_x_client_ip(self):
        """x-client-ip counts only from the bridge: a service that claims a
        victim's address (here 127.0.0.1, where HTTP clients come from) does not
        lock the victim out, and a fresh address per try does not escape the
        limit: the failures count against the service's own identity."""
        svc, pw = login_service()
        claimed = []
        for i in range(50):
            ip = "127.0.0.1" if i % 2 else f"10.{uuid.uuid4().int % 250}.{i}.{i + 1}"
            claimed.append(f"ip:{ip}")
            creds = {"username": unique("ghost"), "password": "whatever"}
            reply = amqp_call("auth.login", creds, user=svc, password=pw,
                              headers={"x-client-ip": ip})
            self.assertEqual(reply["status"], 401, reply)
        name, _ = new_user()
        right = {"username": name, "password": PASSWORD}
        reply = amqp_call("auth.login", right, user=svc, password=pw,
                          headers={"x-client-ip": "10.250.250.250"})
        self.assertEqual(reply["status"], 429, "a new x-client-ip escaped the limit")
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT failures FROM login_throttle WHERE key = %s", (f"svc:{svc}",))
            self.assertEqual(cur.fetchone()[0], 50)
            cur.execute("SELECT count(*) FROM login_throttle WHERE key = ANY(%s)",
                        ([c for c in claimed if c != "ip:127.0.0.1"],))
            self.assertEqual(cur.fetchone()[0], 0)
        # the victim's address (through the bridge) and other services are not affected
        self.assertEqual(http("POST", "/api/auth/login/", right)[0], 200)
        other, other_pw = login_service()
        self.assertEqual(amqp_call("auth.login", right, user=other, password=other_pw)["status"],
                         200)


class Ctl(unittest.TestCase):
    def test_createsuperuser(self):
        name = unique("root")
        out = ctl("createsuperuser", "--username", name, "--email", f"{name}@example.com",
                  env={"BACKEND_SUPERUSER_PASSWORD": "short"})
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("too short", out.stderr)
        out = ctl("createsuperuser", "--username", name, "--email", f"{name}@example.com",
                  env={"BACKEND_SUPERUSER_PASSWORD": PASSWORD})
        self.assertEqual(out.returncode, 0, out.stderr)
        me = login(name, password=PASSWORD)["user"]
        self.assertTrue(me["is_staff"])
        self.assertTrue(me["is_superuser"])

    def test_flush_expired(self):
        name, _ = new_user()
        fam = str(uuid.uuid4())
        with db() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO token_families (id, user_id, expires_at) SELECT %s, id, "
                        "now() - interval '2 days' FROM users WHERE username = %s", (fam, name))
        out = ctl("flush-expired")
        self.assertEqual(out.returncode, 0, out.stderr)
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM token_families WHERE id = %s", (fam,))
            self.assertEqual(cur.fetchone()[0], 0)


if __name__ == "__main__":
    unittest.main()
