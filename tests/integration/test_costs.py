"""What the runtime's shortcuts (issue 13) must not change.

- A read checks its caller's is_active / is_staff / role in its own first
  statement, on every request: a user deactivated, deleted, demoted or
  promoted a moment ago is treated as the database says on the next read,
  even with a token every copy has cached and for a read that runs no
  statement at all.
- A verified token is cached until its exp, but the cache is dropped when
  the key folder changes: a removed verification key still revokes its
  tokens (within the folder check's second)."""
import glob
import json
import os
import shutil
import subprocess
import time
import unittest

import jwt as pyjwt

from helpers import BIN_DIR, KEY_DIR, REPO, db, http, login, register_and_login

COPIES = 4  # enough requests that each worker copy has seen (and cached) the token


def warm(token, path="/api/orders/"):
    for _ in range(COPIES):
        status, _, body = http("GET", path, token=token)
        assert status == 200, (status, body)


def set_user(uid, **cols):
    with db() as conn, conn.cursor() as cur:
        for k, v in cols.items():
            cur.execute(f"UPDATE users SET {k} = %s WHERE id = %s", (v, uid))


class Freshness(unittest.TestCase):
    def test_deactivated_user_is_refused_on_the_next_read(self):
        token, body = register_and_login("fresh")
        uid = body["user"]["id"]
        warm(token)
        set_user(uid, is_active=False)
        for path in ("/api/orders/", "/api/orders/1/", "/api/orders/nonsense/", "/api/profile/",
                     f"/api/users/{uid}/", "/api/payments/"):
            status, _, out = http("GET", path, token=token)
            self.assertEqual((status, out.get("code")), (401, "user_inactive"), path)
        set_user(uid, is_active=True)
        warm(token)

    def test_deleted_user_is_refused_on_the_next_read(self):
        token, body = register_and_login("gone")
        uid = body["user"]["id"]
        warm(token)
        with db() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM users WHERE id = %s", (uid,))
        for path in ("/api/orders/", "/api/orders/nonsense/"):
            status, _, out = http("GET", path, token=token)
            self.assertEqual((status, out.get("code")), (401, "user_not_found"), path)

    def test_staff_rights_follow_the_database_not_the_token(self):
        other, _ = register_and_login("other")
        status, _, _ = http("POST", "/api/orders/",
                            {"product_name": "Someone's", "quantity": 1, "price": "1.00"},
                            token=other)
        self.assertEqual(status, 201)
        token, body = register_and_login("climber")
        uid = body["user"]["id"]
        warm(token)
        # a token minted while not staff: promoted now, the next read runs as staff
        set_user(uid, is_staff=True)
        for _ in range(COPIES):
            status, _, out = http("GET", "/api/orders/?all=1", token=token)
            self.assertEqual(status, 200, out)
            self.assertGreater(out["count"], 0, "a promoted user reads as staff at once")
        # and demoted again: back to their own (no) orders at once
        set_user(uid, is_staff=False)
        for _ in range(COPIES):
            status, _, out = http("GET", "/api/orders/?all=1", token=token)
            self.assertEqual((status, out["count"]), (200, 0), out)
        # a staff-only read refuses the demoted user
        status, _, out = http("GET", "/api/admin/users/", token=token)
        self.assertEqual(status, 403, out)
        set_user(uid, is_staff=True)
        status, _, out = http("GET", "/api/admin/users/", token=token)
        self.assertEqual(status, 200, out)
        set_user(uid, is_staff=False)

    def test_role_change_is_seen_by_the_next_read(self):
        token, body = register_and_login("roles")
        uid = body["user"]["id"]
        warm(token, "/api/profile/")
        set_user(uid, role="alumni")
        for _ in range(COPIES):
            status, _, out = http("GET", "/api/profile/", token=token)
            self.assertEqual((status, out["role"]), (200, "alumni"), out)


class TokenCache(unittest.TestCase):
    def test_removed_key_revokes_cached_tokens(self):
        name_token, body = register_and_login("revoked")
        kid = pyjwt.get_unverified_header(name_token)["kid"]
        warm(name_token)
        # a new signing key, so the old one's .pub can go without stopping logins
        out = subprocess.run([os.path.join(BIN_DIR, "backendctl"), "keygen", "--rotate"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        pub = os.path.join(KEY_DIR, f"{kid}.pub")
        self.assertTrue(os.path.exists(pub), glob.glob(os.path.join(KEY_DIR, "*")))
        aside = pub + ".aside"
        shutil.move(pub, aside)
        try:
            time.sleep(1.5)  # verifiers look at the key folder at most once a second
            for _ in range(COPIES):
                status, _, out = http("GET", "/api/orders/", token=name_token)
                self.assertEqual((status, out.get("code")), (401, "token_not_valid"),
                                 json.dumps(out))
        finally:
            shutil.move(aside, pub)
        time.sleep(1.5)
        status, _, out = http("GET", "/api/orders/", token=name_token)
        self.assertEqual(status, 200, out)
        # the new key's tokens work all along
        fresh = login(body["user"]["username"])["access"]
        self.assertEqual(http("GET", "/api/orders/", token=fresh)[0], 200)


if __name__ == "__main__":
    unittest.main()
