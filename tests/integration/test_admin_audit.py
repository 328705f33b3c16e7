"""The staff console's backend (issue 15): the audit trail derived from the
events (GET /api/admin/audit/), and the staff actions on users (role, staff,
active, log out everywhere, delete). Over HTTP, and over AMQP where the
channel matters."""
import unittest
import uuid

from helpers import amqp_call, db, http, login, register, unique

FORBIDDEN = {"detail": "You do not have permission to perform this action."}


class User:
    """A registered and logged-in user."""

    def __init__(self, name="aud", staff=False):
        self.username = unique(name)
        self.email = f"{self.username}@example.com"
        register(self.username, email=self.email)
        if staff:
            with db() as conn, conn.cursor() as cur:
                cur.execute("UPDATE users SET is_staff = true WHERE username = %s",
                            (self.username,))
        self.relogin()

    def relogin(self):
        body = login(self.username)
        self.token, self.refresh, self.id = body["access"], body["refresh"], body["user"]["id"]
        return self

    def call(self, method, path, body=None, **kw):
        return http(method, path, body, token=self.token, **kw)


def audit(staff, query):
    status, _, body = staff.call("GET", f"/api/admin/audit/?{query}")
    assert status == 200, (status, body)
    return body


class AuditTrail(unittest.TestCase):
    def test_staff_change_of_a_user_is_recorded_with_before_after_and_request_id(self):
        staff, target = User(staff=True), User()
        rid = f"audit-{uuid.uuid4().hex}"
        status, headers, body = staff.call("PATCH", f"/api/admin/users/{target.id}/",
                                           {"role": "teacher", "is_active": True},
                                           headers={"X-Request-ID": rid})
        self.assertEqual((status, body["role"]), (200, "teacher"))
        page = audit(staff, f"object_type=user&object_id={target.id}&event=user.updated")
        self.assertEqual(page["count"], 1)
        entry = page["results"][0]
        self.assertEqual(entry["before"], {"role": "member"})
        self.assertEqual(entry["after"], {"role": "teacher"})
        self.assertEqual(entry["actor"], {"user_id": staff.id, "service": None,
                                          "username": staff.username})
        self.assertEqual((entry["channel"], entry["request_id"]), ("http", rid))
        self.assertEqual(entry["data"]["changes"], {"role": ["member", "teacher"]})
        # the role change has its own event, audited too
        page = audit(staff, f"object_type=user&object_id={target.id}&event=user.role_changed")
        self.assertEqual(page["count"], 1)
        # every entry of one request: by its id
        page = audit(staff, f"request_id={rid}")
        self.assertEqual({e["event"] for e in page["results"]},
                         {"user.updated", "user.role_changed"})

    def test_a_change_over_amqp_is_recorded_as_amqp(self):
        staff, target = User(staff=True), User()
        reply = amqp_call("admin.update", {"id": str(target.id), "is_staff": True},
                          token=staff.token)
        self.assertEqual((reply["status"], reply["body"]["is_staff"]), (200, True))
        page = audit(staff, f"object_type=user&object_id={target.id}&event=user.updated")
        entry = page["results"][0]
        self.assertEqual((entry["channel"], entry["actor"]["user_id"]), ("amqp", staff.id))
        self.assertEqual((entry["before"], entry["after"]), ({"is_staff": False},
                                                             {"is_staff": True}))

    def test_a_users_own_changes_are_recorded(self):
        staff, u = User(staff=True), User()
        status, _, _ = u.call("PATCH", "/api/profile/", {"first_name": "Ada", "is_student": True})
        self.assertEqual(status, 200)
        entry = audit(staff, f"object_type=user&object_id={u.id}&event=user.updated")["results"][0]
        self.assertEqual(entry["before"], {"first_name": "", "is_student": False})
        self.assertEqual(entry["after"], {"first_name": "Ada", "is_student": True})
        self.assertEqual(entry["actor"]["user_id"], u.id)
        # registration is there too, with the new record and no password
        reg = audit(staff, f"object_type=user&object_id={u.id}&event=user.registered")
        self.assertEqual(reg["results"][0]["after"]["username"], u.username)

    def test_orders_and_payments_have_their_history(self):
        staff, u = User(staff=True), User()
        status, _, order = u.call("POST", "/api/orders/",
                                  {"product_name": "Lamp", "quantity": 2, "price": "10.00"})
        self.assertEqual(status, 201)
        status, _, payment = u.call("POST", "/api/payments/",
                                    {"order": order["id"], "amount": "20.00"})
        self.assertEqual(status, 201)
        status, _, _ = staff.call("PATCH", f"/api/payments/{payment['id']}/",
                                  {"status": "completed"})
        self.assertEqual(status, 200)
        status, _, _ = staff.call("PATCH", f"/api/orders/{order['id']}/", {"status": "shipped"})
        self.assertEqual(status, 200)

        history = audit(staff, f"object_type=order&object_id={order['id']}&ordering=id")
        self.assertEqual([e["event"] for e in history["results"]],
                         ["order.placed", "order.status_changed"])
        placed, shipped = history["results"]
        self.assertEqual((placed["actor"]["user_id"], placed["after"]["total"]), (u.id, "20.00"))
        self.assertEqual((shipped["before"], shipped["after"], shipped["actor"]["user_id"]),
                         ({"status": "pending"}, {"status": "shipped"}, staff.id))
        pay = audit(staff, f"object_type=payment&object_id={payment['id']}&ordering=id")
        self.assertEqual([e["event"] for e in pay["results"]],
                         ["payment.initiated", "payment.completed"])
        self.assertEqual((pay["results"][1]["before"], pay["results"][1]["after"]),
                         ({"status": "pending"}, {"status": "completed"}))

    def test_filters_paging_and_errors(self):
        staff, target = User(staff=True), User()
        for role in ("student", "alumni", "faculty"):
            status, _, _ = staff.call("PATCH", f"/api/admin/users/{target.id}/", {"role": role})
            self.assertEqual(status, 200)
        q = f"object_type=user&object_id={target.id}&event=user.updated"
        page = audit(staff, f"{q}&actor={staff.id}&page_size=2")
        self.assertEqual((page["count"], len(page["results"])), (3, 2))
        self.assertIsNotNone(page["next"])
        # newest first by default; ordering=id oldest first
        self.assertEqual(page["results"][0]["after"], {"role": "faculty"})
        page = audit(staff, f"{q}&ordering=id")
        self.assertEqual(page["results"][0]["after"], {"role": "student"})
        # a date range
        self.assertEqual(audit(staff, f"{q}&occurred_at__gte=2999-01-01")["count"], 0)
        self.assertEqual(audit(staff, f"{q}&occurred_at__lte=2000-01-01")["count"], 0)
        self.assertEqual(audit(staff, f"{q}&occurred_at__gte=2000-01-01T00:00:00Z")["count"], 3)
        # another actor: none
        self.assertEqual(audit(staff, f"{q}&actor={target.id}")["count"], 0)
        # invalid values: 400 naming the parameter, as django-filter
        for bad, field in (("actor=abc", "actor"), ("occurred_at__gte=2024-02-30", "occurred_at__gte"),
                           ("object_type=shoe", "object_type")):
            status, _, body = staff.call("GET", f"/api/admin/audit/?{bad}")
            self.assertEqual(status, 400, bad)
            self.assertIn(field, body)
        # staff only
        status, _, body = target.call("GET", "/api/admin/audit/")
        self.assertEqual((status, body), (403, FORBIDDEN))

    def test_secrets_are_masked(self):
        staff, u = User(staff=True), User()
        status, _, _ = http("POST", "/api/auth/password/reset/", {"email": u.email})
        self.assertEqual(status, 202)
        page = audit(staff, f"object_type=user&object_id={u.id}"
                            "&event=user.password_reset_requested")
        self.assertEqual(page["count"], 1)
        data = page["results"][0]["data"]
        self.assertEqual((data["token"], data["uid"]), ("********", "********"))
        self.assertEqual(data["email"], u.email)


class StaffActions(unittest.TestCase):
    def test_staff_edit_and_delete_profile_items_audited(self):
        staff, u, other = User(staff=True), User(), User()
        status, _, edu = u.call("POST", "/api/educations/",
                                {"degree": "BSc", "institution": "Uni", "start_year": 2010})
        self.assertEqual(status, 201)
        status, _, cert = u.call("POST", "/api/certificates/", {"title": "T", "issuer": "I"})
        self.assertEqual(status, 201)
        # another user may not; staff may
        status, _, body = other.call("PATCH", f"/api/educations/{edu['id']}/", {"degree": "X"})
        self.assertEqual((status, body), (403, FORBIDDEN))
        status, _, body = staff.call("PATCH", f"/api/educations/{edu['id']}/",
                                     {"degree": "MSc", "end_year": 2012})
        self.assertEqual((status, body["degree"], body["user"]), (200, "MSc", u.id))
        entry = audit(staff, f"object_type=education&object_id={edu['id']}")["results"][0]
        self.assertEqual((entry["event"], entry["actor"]["user_id"]),
                         ("education.updated", staff.id))
        self.assertEqual((entry["before"], entry["after"]),
                         ({"degree": "BSc", "end_year": None}, {"degree": "MSc", "end_year": 2012}))
        status, _, _ = staff.call("DELETE", f"/api/certificates/{cert['id']}/")
        self.assertEqual(status, 204)
        entry = audit(staff, f"object_type=certificate&object_id={cert['id']}")["results"][0]
        self.assertEqual((entry["event"], entry["before"]["title"], entry["after"]),
                         ("certificate.deleted", "T", None))

    def test_log_a_user_out_everywhere(self):
        staff, u = User(staff=True), User()
        second = login(u.username)["refresh"]
        status, _, body = staff.call("POST", f"/api/admin/users/{u.id}/logout/")
        self.assertEqual((status, body["sessions"]), (200, 2))
        for refresh in (u.refresh, second):
            status, _, body = http("POST", "/api/auth/token/refresh/", {"refresh": refresh})
            self.assertEqual(status, 401)
        entry = audit(staff, f"object_type=user&object_id={u.id}&event=user.sessions_revoked")
        self.assertEqual(entry["results"][0]["actor"]["user_id"], staff.id)
        # not staff: refused; no such user: 404
        status, _, body = u.relogin().call("POST", f"/api/admin/users/{staff.id}/logout/")
        self.assertEqual((status, body), (403, FORBIDDEN))
        status, _, _ = staff.call("POST", "/api/admin/users/999999999/logout/")
        self.assertEqual(status, 404)

    def test_delete_keeps_the_record_in_the_audit(self):
        staff, u = User(staff=True), User()
        status, _, _ = staff.call("DELETE", f"/api/admin/users/{u.id}/")
        self.assertEqual(status, 204)
        entry = audit(staff, f"object_type=user&object_id={u.id}&event=user.deleted")["results"][0]
        self.assertEqual((entry["before"]["username"], entry["after"]), (u.username, None))
        self.assertEqual(entry["actor"]["user_id"], staff.id)

    def test_last_staff_guard_and_a_cli_change_in_the_audit(self):
        staff = User(staff=True)
        with db() as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET is_staff = (id = %s) WHERE is_staff OR id = %s",
                        (staff.id, staff.id))
        try:
            staff.relogin()
            status, _, body = staff.call("PATCH", f"/api/admin/users/{staff.id}/",
                                         {"is_staff": False})
            self.assertEqual(status, 409)
            self.assertIn("last active staff", body["detail"])
            # backendctl's change of a user is audited as the cli's
            other = User()
            import os
            import subprocess
            from helpers import BIN_DIR, REPO, process_env
            out = subprocess.run([os.path.join(BIN_DIR, "backendctl"), "set-staff",
                                  other.username], cwd=REPO, env=process_env("admin"),
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            entry = audit(staff, f"object_type=user&object_id={other.id}"
                                 "&event=user.role_changed")["results"][0]
            self.assertEqual((entry["channel"], entry["actor"]["service"]), ("cli", "backendctl"))
            self.assertEqual((entry["before"], entry["after"]), ({"is_staff": False},
                                                                 {"is_staff": True}))
        finally:
            with db() as conn, conn.cursor() as cur:
                cur.execute("UPDATE users SET is_staff = false WHERE id = %s", (staff.id,))


if __name__ == "__main__":
    unittest.main()
