"""System 002, the music institute (../shared/seeds/002_*): register by
email with full_name, log in by email (the tokens plus email, full_name,
is_staff, is_superuser), refresh without rotation (the refresh token stays
valid), logout blacklists the refresh token; the checks its author ran in
Postman, over HTTP."""
import unittest
import uuid

from helpers import PASSWORD, http, http_raw

BASE = "/api/v1/accounts"


def register(full_name="Ada King Lovelace"):
    email = f"s002_{uuid.uuid4().hex[:10]}@example.com"
    status, _, body = http("POST", f"{BASE}/register/", {"email": email, "full_name": full_name,
                                                         "password": PASSWORD})
    assert status == 201, body
    return email, body["user"]


def token(email, password=PASSWORD):
    return http("POST", f"{BASE}/token/", {"email": email, "password": password})


class Accounts(unittest.TestCase):
    def test_register_full_name_and_custom_login_answer(self):
        email, user = register()
        self.assertEqual((user["email"], user["full_name"], user["first_name"],
                          user["last_name"]), (email, "Ada King Lovelace", "Ada", "King Lovelace"))
        status, _, body = token(email)
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body), {"access", "refresh", "email", "full_name", "is_staff",
                                     "is_superuser"})
        self.assertEqual((body["email"], body["full_name"], body["is_staff"],
                          body["is_superuser"]), (email, "Ada King Lovelace", False, False))
        status, _, body = token(email, "wrong-password")
        self.assertEqual((status, body["detail"]),
                         (401, "No active account found with the given credentials"))

    def test_full_name_follows_first_and_last_name(self):
        email, _ = register("Grace Hopper")
        access = token(email)[2]["access"]
        status, _, body = http("PATCH", "/api/profile/", {"first_name": "Amazing"}, token=access)
        self.assertEqual(status, 200, body)
        self.assertEqual(token(email)[2]["full_name"], "Amazing Hopper")
        # and the unified login's user shows the same
        status, _, body = http("POST", "/api/auth/login/", {"email": email, "password": PASSWORD})
        self.assertEqual((body["user"]["full_name"], body["user"]["last_name"]),
                         ("Amazing Hopper", "Hopper"))

    def test_register_errors(self):
        email, _ = register()
        status, _, body = http("POST", f"{BASE}/register/", {"email": email.upper(),
                                                             "full_name": "X", "password": PASSWORD})
        self.assertEqual((status, body), (400, {"email": ["A user with that email already "
                                                          "exists."]}))
        status, _, body = http("POST", f"{BASE}/register/", {"email": "not-an-address",
                                                             "password": PASSWORD})
        self.assertEqual((status, body), (400, {"email": ["Enter a valid email address."]}))

    def test_refresh_keeps_the_refresh_token(self):
        email, _ = register()
        tokens = token(email)[2]
        for _ in range(3):
            status, _, body = http("POST", f"{BASE}/token/refresh/", {"refresh": tokens["refresh"]})
            self.assertEqual((status, set(body)), (200, {"access"}), body)
            self.assertEqual(http("GET", "/api/profile/", token=body["access"])[0], 200)
        status, _, body = http("POST", f"{BASE}/token/refresh/", {"refresh": tokens["access"]})
        self.assertEqual((status, body["code"]), (401, "token_not_valid"))

    def test_logout_blacklists_the_refresh_token(self):
        email, _ = register()
        tokens = token(email)[2]
        # a missing token header fails
        status, _, body = http("POST", f"{BASE}/logout/", {"refresh": tokens["refresh"]})
        self.assertEqual((status, body),
                         (401, {"detail": "Authentication credentials were not provided."}))
        # plain text is refused
        status, _, _ = http_raw("POST", f"{BASE}/logout/", raw=tokens["refresh"].encode(),
                                headers={"Content-Type": "text/plain",
                                         "Authorization": f"Bearer {tokens['access']}"})
        self.assertEqual(status, 415)
        status, _, body = http("POST", f"{BASE}/logout/", {"refresh": tokens["refresh"]},
                               token=tokens["access"])
        self.assertEqual((status, body), (200, {"detail": "Successfully logged out."}))
        # reusing the blacklisted token fails, for logout and for refresh
        for path in ("logout/", "token/refresh/"):
            status, _, body = http("POST", f"{BASE}/{path}", {"refresh": tokens["refresh"]},
                                   token=tokens["access"])
            self.assertEqual((status, body), (401, {"detail": "Token is blacklisted",
                                                    "code": "token_not_valid"}), path)

    def test_invalid_path(self):
        self.assertEqual(http("POST", f"{BASE}/nope/", {})[0], 404)
        self.assertEqual(http("GET", f"{BASE}/token/")[0], 405)


class OpenAPI(unittest.TestCase):
    def test_aliases_are_described_under_the_system(self):
        status, _, doc = http("GET", "/api/openapi.json")
        self.assertEqual(status, 200)
        for method, path in [('post', '/api/v1/accounts/register/'), ('post', '/api/v1/accounts/token/refresh/'), ('post', '/api/v1/accounts/logout/')]:
            op = doc["paths"][path][method]
            self.assertEqual((op["tags"], op["x-system"]), (["system 002"], "002"), path)

    def test_bodies_and_answers_as_declared(self):
        """Register by email (no username, no password2); the login answer's lifted fields."""
        doc = http("GET", "/api/openapi.json")[2]
        reg = doc["paths"]["/api/v1/accounts/register/"]["post"]
        self.assertEqual(reg["x-command"], "auth.register_email")
        ref = reg["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        self.assertTrue({"email", "full_name", "password"} <= set(body["properties"]))
        self.assertFalse({"username", "password2"} & set(body["properties"]))
        login = doc["paths"]["/api/v1/accounts/token/"]["post"]
        answer = login["responses"]["200"]["content"]["application/json"]["schema"]
        self.assertEqual(set(answer["required"]),
                         {"access", "refresh", "email", "full_name", "is_staff", "is_superuser"})


if __name__ == "__main__":
    unittest.main()
