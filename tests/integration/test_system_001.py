"""System 001, account management (../shared/seeds/001_*): user/ with
action=register / action=login (query parameter or body field), user/<id>/
for one's own account, AdminUser/ for staff (list, change a role, delete; an
admin may downgrade itself and is then refused there), with and without the
/api prefix, over HTTP as its frontend would."""
import os
import subprocess
import unittest
import uuid

from helpers import BIN_DIR, PASSWORD, REPO, db, http

FORBIDDEN = {"detail": "You do not have permission to perform this action."}


def new_email(local=None):
    return f"{local or 's001_' + uuid.uuid4().hex[:10]}@example.com"


def register(prefix="", email=None, **extra):
    email = email or new_email()
    body = {"email": email, "password": PASSWORD, "role": "student", "designation": "Engineer",
            "company": "Acme", "first_name": "Ada", "last_name": "Lovelace", **extra}
    status, _, reply = http("POST", f"{prefix}/user/?action=register", body)
    assert status == 201, reply
    return email, reply["user"]


def login(email, prefix=""):
    status, _, body = http("POST", f"{prefix}/user/", {"action": "login", "email": email,
                                                       "password": PASSWORD})
    assert status == 200, body
    return body["access"]


def superuser():
    """An admin made as 001's author made one (createsuperuser); its token."""
    name = "s001adm_" + uuid.uuid4().hex[:8]
    out = subprocess.run([os.path.join(BIN_DIR, "backendctl"), "createsuperuser", "--username",
                          name, "--email", f"{name}@example.com"], cwd=REPO, capture_output=True,
                         text=True, timeout=60,
                         env=dict(os.environ, BACKEND_SUPERUSER_PASSWORD=PASSWORD))
    assert out.returncode == 0, out.stderr
    return login(f"{name}@example.com")


def only_these_staff(*tokens):
    """Test setup: the admins of these tokens are the only active staff
    (other tests leave staff behind), so the last-staff guard can be seen."""
    ids = [http("GET", "/api/profile/", token=t)[2]["id"] for t in tokens]
    with db() as conn, conn.cursor() as cur:
        cur.execute("UPDATE users SET is_staff = (id = ANY(%s)) WHERE is_staff OR id = ANY(%s)",
                    (ids, ids))
    return ids


class UserActions(unittest.TestCase):
    def test_get_names_the_two_actions(self):
        for prefix in ("", "/api"):
            status, _, body = http("GET", f"{prefix}/user/")
            self.assertEqual((status, body), (200, {"register": "action=register",
                                                    "login": "action=login"}))

    def test_register_by_email_then_login(self):
        for prefix in ("", "/api"):
            email, user = register(prefix)
            self.assertEqual((user["email"], user["role"], user["first_name"]),
                             (email, "student", "Ada"))
            # the username is the address's local part
            self.assertEqual(user["username"], email.split("@")[0])
            # login: the action as a body field or as a query parameter
            status, _, body = http("POST", f"{prefix}/user/", {
                "action": "login", "email": email, "password": PASSWORD})
            self.assertEqual((status, set(body)), (200, {"refresh", "access"}), body)
            status, _, body = http("POST", f"{prefix}/user/?action=login", {
                "email": email, "password": PASSWORD})
            self.assertEqual(status, 200, body)
            status, _, body = http("POST", f"{prefix}/user/?action=login", {
                "email": email, "password": "wrong-password"})
            self.assertEqual(status, 401)

    def test_derived_usernames_stay_unique(self):
        local = "s001_" + uuid.uuid4().hex[:10]
        _, first = register(email=f"{local}@example.com")
        _, second = register(email=f"{local}@example.org")
        _, third = register(email=f"{local}@example.net")
        self.assertEqual((first["username"], second["username"], third["username"]),
                         (local, local + "2", local + "3"))

    def test_register_errors(self):
        email, _ = register()
        status, _, body = http("POST", "/user/?action=register", {
            "email": email, "password": PASSWORD})
        self.assertEqual((status, body), (400, {"email": ["A user with that email already "
                                                          "exists."]}))
        status, _, body = http("POST", "/user/?action=register", {
            "email": new_email(), "password": "123"})
        self.assertEqual(status, 400)
        self.assertIn("This password is too short. It must contain at least 8 characters.",
                      body["password"])
        self.assertEqual(http("POST", "/user/", {"email": email})[:3:2],
                         (400, {"action": ["This field is required."]}))
        self.assertEqual(http("POST", "/user/?action=dance", {})[:3:2],
                         (400, {"action": ['"dance" is not a valid choice.']}))


class SingleUser(unittest.TestCase):
    def test_view_update_delete_own_account(self):
        email, user = register()
        token = login(email)
        status, _, body = http("GET", f"/user/{user['id']}/", token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["email"], body["designation"], body["company"], body["role"]),
                         (email, "Engineer", "Acme", "student"))
        status, _, body = http("PATCH", f"/user/{user['id']}/", {
            "first_name": "Grace", "role": "teacher", "company": "Navy"}, token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["first_name"], body["role"], body["company"]),
                         ("Grace", "teacher", "Navy"))
        status, _, body = http("PUT", f"/api/user/{user['id']}/", {
            "email": email, "first_name": "Grace", "last_name": "Hopper",
            "designation": "Admiral", "company": "Navy", "role": "faculty"}, token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["last_name"], body["designation"]), ("Hopper", "Admiral"))
        self.assertEqual(http("PATCH", f"/user/{user['id']}/", {"role": "boss"},
                              token=token)[2], {"role": ['"boss" is not a valid choice.']})
        self.assertEqual(http("DELETE", f"/user/{user['id']}/", token=token)[0], 204)
        self.assertEqual(http("POST", "/user/?action=login",
                              {"email": email, "password": PASSWORD})[0], 401)

    def test_not_someone_elses(self):
        _, owner = register()
        email, _ = register()
        token = login(email)
        for method in ("PUT", "PATCH", "DELETE"):
            status, _, body = http(method, f"/user/{owner['id']}/", {"first_name": "x"},
                                   token=token)
            self.assertEqual((status, body), (403, FORBIDDEN))
        self.assertEqual(http("GET", f"/user/{owner['id']}/")[0], 401)


class AdminUser(unittest.TestCase):
    def test_staff_list_change_role_delete(self):
        admin = superuser()
        email, user = register()
        token = login(email)
        self.assertEqual(http("GET", "/AdminUser/", token=token)[:3:2], (403, FORBIDDEN))
        status, _, body = http("GET", "/AdminUser/?search=" + user["username"], token=admin)
        self.assertEqual(status, 200, body)
        self.assertEqual([u["id"] for u in body["results"]], [user["id"]])
        status, _, body = http("PATCH", "/AdminUser/", {"id": user["id"], "role": "alumni"},
                               token=admin)
        self.assertEqual((status, body["role"], body["is_staff"]), (200, "alumni", False), body)
        # "admin" is a role there: it makes the user staff
        status, _, body = http("PUT", "/api/AdminUser/", {"id": user["id"], "role": "admin"},
                               token=admin)
        self.assertEqual((status, body["id"], body["is_staff"]), (200, user["id"], True), body)
        self.assertEqual(http("GET", "/AdminUser/", token=token)[0], 200)
        self.assertEqual(http("PATCH", "/AdminUser/", {"id": user["id"], "role": "king"},
                              token=admin)[0], 400)
        self.assertEqual(http("PATCH", "/AdminUser/", {"id": 999999999, "role": "member"},
                              token=admin)[0], 404)
        status, _, body = http("DELETE", "/AdminUser/", {"id": user["id"]}, token=admin)
        self.assertEqual((status, body), (204, None))
        self.assertEqual(http("POST", "/user/?action=login",
                              {"email": email, "password": PASSWORD})[0], 401)

    def test_admin_downgrades_itself_and_the_last_staff_guard(self):
        a, b = superuser(), superuser()
        a_id, b_id = only_these_staff(a, b)
        status, _, body = http("PATCH", "/AdminUser/", {"id": a_id, "role": "member"}, token=a)
        self.assertEqual((status, body["is_staff"]), (200, False), body)
        # downgraded: AdminUser/ is closed to it at once, its token notwithstanding
        self.assertEqual(http("GET", "/AdminUser/", token=a)[:3:2], (403, FORBIDDEN))
        # b is the last admin now: it cannot downgrade or delete itself
        status, _, body = http("PATCH", "/AdminUser/", {"id": b_id, "role": "member"}, token=b)
        self.assertEqual(status, 409, body)
        status, _, body = http("DELETE", "/AdminUser/", {"id": b_id}, token=b)
        self.assertEqual(status, 409, body)
        self.assertEqual(http("DELETE", f"/user/{b_id}/", token=b)[0], 409)


class OpenAPI(unittest.TestCase):
    def test_aliases_are_described_under_the_system(self):
        status, _, doc = http("GET", "/api/openapi.json")
        self.assertEqual(status, 200)
        for method, path in [('get', '/user/'), ('post', '/api/user/'), ('patch', '/AdminUser/')]:
            op = doc["paths"][path][method]
            self.assertEqual((op["tags"], op["x-system"]), (["system 001"], "001"), path)


if __name__ == "__main__":
    unittest.main()
