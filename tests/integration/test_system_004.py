"""System 004, the e-commerce backend (../shared/seeds/004_*): dj-rest-auth's
account routes (/auth/registration/, /auth/login/, /auth/logout/,
/auth/user/, /auth/password/change/, /auth/token/refresh/) with its bodies
and answers, GET/PUT /profile/ with profile_img, and /orders/ and
/payments/ without the /api prefix under the same rules, over HTTP."""
import os
import subprocess
import unittest
import uuid

from helpers import BIN_DIR, PASSWORD, REPO, http, unique
from test_profiles import multipart, png

NEW_PASSWORD = "An0ther-Secret-pass"


def signup():
    name = unique("s004")
    status, _, body = http("POST", "/auth/registration/", {
        "username": name, "email": f"{name}@example.com", "password1": PASSWORD,
        "password2": PASSWORD})
    assert status == 201, body
    return name, body


def staff_token():
    name = "s004adm_" + uuid.uuid4().hex[:8]
    out = subprocess.run([os.path.join(BIN_DIR, "backendctl"), "createsuperuser", "--username",
                          name, "--email", f"{name}@example.com"], cwd=REPO, capture_output=True,
                         text=True, timeout=60,
                         env=dict(os.environ, BACKEND_SUPERUSER_PASSWORD=PASSWORD))
    assert out.returncode == 0, out.stderr
    return http("POST", "/auth/login/", {"username": name, "password": PASSWORD})[2]["access"]


class DjRestAuth(unittest.TestCase):
    def test_registration_logs_in(self):
        name, body = signup()
        self.assertEqual(set(body), {"access", "refresh", "user"})
        user = body["user"]
        self.assertEqual((user["username"], user["email"]), (name, f"{name}@example.com"))
        self.assertIn("pk", user)
        self.assertNotIn("id", user)
        self.assertEqual(http("GET", "/auth/user/", token=body["access"])[2]["pk"], user["pk"])

    def test_registration_errors_name_their_fields(self):
        name, _ = signup()
        status, _, body = http("POST", "/auth/registration/", {
            "username": name, "email": f"new{name}@example.com", "password1": PASSWORD,
            "password2": PASSWORD})
        self.assertEqual((status, body), (400, {"username": ["A user with that username already "
                                                             "exists."]}))
        n = unique("s004")
        status, _, body = http("POST", "/auth/registration/", {
            "username": n, "email": f"{n}@example.com", "password1": "12345678",
            "password2": "12345678"})
        self.assertEqual(status, 400)
        self.assertIn("This password is entirely numeric.", body["password1"])
        self.assertNotIn("password", body)
        status, _, body = http("POST", "/auth/registration/", {
            "username": n, "email": f"{n}@example.com", "password1": PASSWORD,
            "password2": PASSWORD + "x"})
        self.assertEqual((status, body), (400, {"password2": ["The two password fields didn't "
                                                              "match."]}))

    def test_login_user_password_change_refresh_logout(self):
        name, _ = signup()
        status, _, body = http("POST", "/auth/login/", {"username": name, "password": PASSWORD})
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body), {"access", "refresh", "user"})
        self.assertEqual(body["user"]["username"], name)
        access, refresh = body["access"], body["refresh"]
        status, _, body = http("POST", "/auth/login/", {"email": f"{name}@example.com",
                                                        "password": PASSWORD})
        self.assertEqual(status, 200, body)

        status, _, user = http("PATCH", "/auth/user/", {"first_name": "Ada",
                                                        "last_name": "Lovelace"}, token=access)
        self.assertEqual((status, user["first_name"], user["last_name"]),
                         (200, "Ada", "Lovelace"), user)
        self.assertIn("pk", user)
        renamed = unique("s004r")
        status, _, user = http("PUT", "/auth/user/", {"username": renamed,
                                                      "email": f"{name}@example.com",
                                                      "first_name": "Ada"}, token=access)
        self.assertEqual((status, user["username"]), (200, renamed), user)

        status, _, body = http("POST", "/auth/token/refresh/", {"refresh": refresh})
        self.assertEqual((status, set(body)), (200, {"access", "refresh"}), body)
        refresh = body["refresh"]

        status, _, body = http("POST", "/auth/password/change/", {
            "old_password": PASSWORD, "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD}, token=access)
        self.assertEqual(status, 200, body)
        self.assertIn("detail", body)
        status, _, body = http("POST", "/auth/password/change/", {
            "old_password": NEW_PASSWORD, "new_password1": "short", "new_password2": "short"},
            token=access)
        self.assertEqual(status, 400)
        self.assertIn("new_password1", body)
        self.assertEqual(http("POST", "/auth/login/", {"username": renamed,
                                                       "password": PASSWORD})[0], 401)
        status, _, body = http("POST", "/auth/login/", {"username": renamed,
                                                        "password": NEW_PASSWORD})
        self.assertEqual(status, 200, body)
        status, _, out = http("POST", "/auth/logout/", {"refresh": body["refresh"]},
                              token=body["access"])
        self.assertEqual((status, out), (200, {"detail": "Successfully logged out."}))
        self.assertEqual(http("POST", "/auth/token/refresh/", {"refresh": body["refresh"]})[0],
                         401)
        self.assertEqual(http("GET", "/auth/user/")[0], 401)


class ProfileOrdersPayments(unittest.TestCase):
    def test_profile_with_profile_img(self):
        name, body = signup()
        access = body["access"]
        status, _, profile = http("GET", "/profile/", token=access)
        self.assertEqual(status, 200, profile)
        self.assertIn("profile_img", profile)
        self.assertNotIn("profile_picture", profile)
        self.assertIsNone(profile["profile_img"])
        status, _, profile = http("PUT", "/profile/", {
            "first_name": "Ada", "last_name": "Lovelace", "email": f"{name}@example.com",
            "phone_no": "+44 20 1234", "address": "12 St James's Square"}, token=access)
        self.assertEqual(status, 200, profile)
        self.assertEqual((profile["phone_no"], profile["address"], profile["first_name"]),
                         ("+44 20 1234", "12 St James's Square", "Ada"))
        raw, headers = multipart({"email": f"{name}@example.com", "first_name": "Ada"},
                                 {"profile_img": ("me.png", "image/png", png())})
        status, _, profile = http("PUT", "/profile/", headers=headers, token=access, raw=raw)
        self.assertEqual(status, 200, profile)
        self.assertTrue(profile["profile_img"].startswith("http"), profile)
        status, _, profile = http("PUT", "/profile/", {"phone_no": "call me"}, token=access)
        self.assertEqual(status, 400)
        self.assertEqual(profile["phone_no"], ["Enter a valid phone number."])
        self.assertEqual(http("GET", "/profile/")[0], 401)

    def test_orders_and_payments_without_api_prefix(self):
        _, body = signup()
        access = body["access"]
        _, other = signup()
        status, _, order = http("POST", "/orders/", {"product_name": "Lamp", "quantity": 2,
                                                     "price": "19.99"}, token=access)
        self.assertEqual(status, 201, order)
        self.assertEqual((order["total"], order["status"]), ("39.98", "pending"))
        status, _, page = http("GET", "/orders/", token=access)
        self.assertEqual((status, [o["id"] for o in page["results"]]), (200, [order["id"]]))
        self.assertEqual(http("GET", f"/orders/{order['id']}/", token=access)[2]["id"],
                         order["id"])
        self.assertEqual(http("GET", f"/orders/{order['id']}/", token=other["access"])[0], 404)
        self.assertEqual(http("POST", "/orders/", {"product_name": "Lamp", "quantity": 0,
                                                   "price": "1.00"}, token=access)[0], 400)
        self.assertEqual(http("GET", "/orders/")[0], 401)

        status, _, pay = http("POST", "/payments/", {"order": order["id"], "amount": "39.98"},
                              token=access)
        self.assertEqual((status, pay["status"]), (201, "pending"), pay)
        status, _, body = http("POST", "/payments/", {"order": order["id"], "amount": "39.98"},
                               token=access)
        self.assertEqual((status, body), (400, {"order": ["payment with this order already "
                                                          "exists."]}))
        self.assertEqual(http("PUT", f"/payments/{pay['id']}/", {"status": "completed"},
                              token=access)[0], 403)
        status, _, body = http("PUT", f"/payments/{pay['id']}/", {"status": "completed"},
                               token=staff_token())
        self.assertEqual((status, body["status"]), (200, "completed"), body)
        self.assertEqual(http("GET", f"/orders/{order['id']}/", token=access)[2]["payment"]
                         ["status"], "completed")


class OpenAPI(unittest.TestCase):
    def test_aliases_are_described_under_the_system(self):
        status, _, doc = http("GET", "/api/openapi.json")
        self.assertEqual(status, 200)
        for method, path in [('get', '/profile/'), ('post', '/auth/registration/'), ('put', '/payments/{id}/')]:
            op = doc["paths"][path][method]
            self.assertEqual((op["tags"], op["x-system"]), (["system 004"], "004"), path)

    def test_bodies_and_answers_under_its_names(self):
        """The variant's renames are in the document: profile_img, password1, pk."""
        doc = http("GET", "/api/openapi.json")[2]
        put = doc["paths"]["/profile/"]["put"]
        form = put["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
        self.assertIn("profile_img", form)
        self.assertNotIn("profile_picture", form)
        answer = put["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
        self.assertIn("profile_img", answer)
        reg = doc["paths"]["/auth/registration/"]["post"]
        body = reg["requestBody"]["content"]["application/json"]["schema"]
        self.assertIn("password1", body["properties"])
        self.assertIn("password1", body["required"])
        user = reg["responses"]["201"]["content"]["application/json"]["schema"]["properties"]["user"]
        self.assertIn("pk", user["properties"])
        self.assertNotIn("id", user["properties"])
        ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
        self.assertEqual(len(ids), len(set(ids)))


if __name__ == "__main__":
    unittest.main()
