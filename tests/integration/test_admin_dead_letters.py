"""The staff's dead letters (issue 15 item 5): list backend.dead with secrets
masked, replay a selection, discard with a reason; each step in the audit
trail. The commands are dead-lettered for real: a worker refuses a command
delivered too often (x-delivery-count), as after crashes."""
import time
import unittest
import uuid

from helpers import amqp_call, db, http, login, register, unique, wait

FORBIDDEN = {"detail": "You do not have permission to perform this action."}


class User:
    def __init__(self, name="dl", staff=False):
        self.username = unique(name)
        register(self.username)
        if staff:
            with db() as conn, conn.cursor() as cur:
                cur.execute("UPDATE users SET is_staff = true WHERE username = %s",
                            (self.username,))
        body = login(self.username)
        self.token, self.id = body["access"], body["user"]["id"]

    def call(self, method, path, body=None, **kw):
        return http(method, path, body, token=self.token, **kw)


def dead_letter(user, first_name):
    """A profile.update of user's first name with a password among its args,
    dead-lettered by the worker unrun. Returns its message id."""
    mid = str(uuid.uuid4())
    reply = amqp_call("profile.update", {"first_name": first_name, "password": "hunter2-secret",
                                         "nested": {"refresh": "r-token"}},
                      token=user.token, message_id=mid, headers={"x-delivery-count": 50})
    assert reply["status"] == 500, reply
    return mid


def first_name(user_id):
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT first_name FROM users WHERE id = %s", (user_id,))
        return cur.fetchone()[0]


class DeadLetters(unittest.TestCase):
    def listed(self, staff, mid):
        def find():
            status, _, page = staff.call("GET",
                                         "/api/admin/dead-letters/?command=profile.&page_size=100")
            self.assertEqual(status, 200)
            return [d for d in page["results"] if d["message_id"] == mid]
        return wait(find, 10)

    def test_list_masks_secrets_replay_runs_the_command_once(self):
        staff, u = User(staff=True), User()
        mid = dead_letter(u, "Replayed")
        found = self.listed(staff, mid)
        self.assertEqual(len(found), 1)
        d = found[0]
        self.assertEqual(d["command"], "profile.update")
        self.assertEqual(d["args"], {"first_name": "Replayed", "password": "********",
                                     "nested": {"refresh": "********"}})
        self.assertEqual(d["publisher"], "tests")
        self.assertTrue(d["reason"])
        self.assertIsNotNone(d["dead_lettered_at"])
        self.assertEqual(first_name(u.id), "")

        status, _, body = staff.call("POST", "/api/admin/dead-letters/replay/",
                                     {"ids": [mid, "no-such-id"]})
        self.assertEqual(status, 200, body)
        self.assertEqual([r["message_id"] for r in body["replayed"]], [mid])
        self.assertEqual(body["not_found"], ["no-such-id"])
        self.assertTrue(wait(lambda: first_name(u.id) == "Replayed", 10))
        # gone from backend.dead, and in the audit trail with who did it
        status, _, page = staff.call("GET", "/api/admin/dead-letters/?command=profile.update"
                                            "&page_size=100")
        self.assertNotIn(mid, [d["message_id"] for d in page["results"]])
        status, _, page = staff.call("GET", f"/api/admin/audit/?object_type=dead_letter"
                                            f"&object_id={mid}")
        self.assertEqual(page["count"], 1)
        entry = page["results"][0]
        self.assertEqual((entry["event"], entry["actor"]["user_id"]),
                         ("dead_letter.replayed", staff.id))
        self.assertEqual(entry["data"]["args"]["password"], "********")
        # the replayed command's own change is audited as the user's
        status, _, page = staff.call("GET", f"/api/admin/audit/?object_type=user&object_id={u.id}"
                                            "&event=user.updated")
        self.assertEqual(page["results"][0]["after"], {"first_name": "Replayed"})
        self.assertEqual(page["results"][0]["message_id"], mid)

    def test_discard_needs_a_reason_and_is_audited(self):
        staff, u = User(staff=True), User()
        mid = dead_letter(u, "Discarded")
        self.assertEqual(len(self.listed(staff, mid)), 1)
        status, _, body = staff.call("POST", "/api/admin/dead-letters/discard/", {"ids": [mid]})
        self.assertEqual((status, body), (400, {"reason": ["This field is required."]}))
        status, _, body = staff.call("POST", "/api/admin/dead-letters/discard/",
                                     {"ids": [], "reason": "x"})
        self.assertEqual(status, 400)
        status, _, body = staff.call("POST", "/api/admin/dead-letters/discard/",
                                     {"ids": [mid], "reason": "sent twice by the client"})
        self.assertEqual((status, [d["message_id"] for d in body["discarded"]]), (200, [mid]))
        time.sleep(0.5)
        self.assertEqual(first_name(u.id), "")
        status, _, page = staff.call("GET", "/api/admin/dead-letters/?command=profile.update"
                                            "&page_size=100")
        self.assertNotIn(mid, [d["message_id"] for d in page["results"]])
        status, _, page = staff.call("GET", f"/api/admin/audit/?object_type=dead_letter"
                                            f"&object_id={mid}")
        entry = page["results"][0]
        self.assertEqual((entry["event"], entry["data"]["discard_reason"]),
                         ("dead_letter.discarded", "sent twice by the client"))

    def test_staff_only(self):
        u = User()
        for method, path, body in (("GET", "/api/admin/dead-letters/", None),
                                   ("POST", "/api/admin/dead-letters/replay/", {"ids": ["x"]}),
                                   ("POST", "/api/admin/dead-letters/discard/",
                                    {"ids": ["x"], "reason": "r"})):
            status, _, got = u.call(method, path, body)
            self.assertEqual((status, got), (403, FORBIDDEN), path)


if __name__ == "__main__":
    unittest.main()
