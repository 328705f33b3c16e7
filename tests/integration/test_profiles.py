"""The profile worker: users and search, profiles (read, update, delete,
picture), follows, educations, certificates, achievements, resumes, uploads
and media, staff administration. Through HTTP and raw AMQP, with the
contract's bodies; BOLA and mass assignment for every resource; the
concurrent last-staff test."""
import hashlib
import struct
import threading
import unittest
import uuid
import zlib

from helpers import (PASSWORD, PUBLIC_BASE_URL, EventListener, amqp_call, db, http, http_raw,
                     login, register, unique)

FORBIDDEN = {"detail": "You do not have permission to perform this action."}
NOT_FOUND = {"detail": "Not found."}
NO_CREDENTIALS = {"detail": "Authentication credentials were not provided."}
BAD_IMAGE = ("Upload a valid image. The file you uploaded was either not an image or a "
             "corrupted image.")
PROFILE_KEYS = {"id", "username", "email", "first_name", "last_name", "full_name", "role",
                "is_staff",
                "date_joined", "about", "linkedin", "github", "phone_no", "address",
                "designation", "company", "is_student", "is_alumni", "is_faculty",
                "profile_picture", "followers_count", "following_count"}
PRIVATE = {"email", "phone_no", "address"}
NESTED = {"educations", "certificates", "achievements", "resume"}


# ---------------------------------------------------------------- helpers

class User:
    """A registered and logged-in user."""

    def __init__(self, name="p", **fields):
        self.username = unique(name)
        self.email = f"{self.username}@example.com"
        register(self.username, email=self.email, **fields)
        self.relogin()

    def relogin(self):
        body = login(self.username)
        self.token, self.refresh, self.id = body["access"], body["refresh"], body["user"]["id"]
        return self

    def call(self, method, path, body=None, **kw):
        return http(method, path, body, token=self.token, **kw)

    def amqp(self, command, args=None):
        return amqp_call(command, args or {}, token=self.token)


def make_staff(user):
    with db() as conn, conn.cursor() as cur:
        cur.execute("UPDATE users SET is_staff = true WHERE id = %s", (user.id,))
    return user.relogin()


def db_one(sql, *args):
    with db() as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def multipart(fields=None, files=None):
    """A multipart/form-data body: fields {name: str}, files {name: (filename,
    content type, bytes)}. Returns (body, headers)."""
    boundary = uuid.uuid4().hex
    out = []
    for name, value in (fields or {}).items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   .encode() + str(value).encode() + b"\r\n")
    for name, (filename, ctype, data) in (files or {}).items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                   f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
                   + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(user, method, path, fields=None, files=None):
    body, headers = multipart(fields, files)
    return http(method, path, headers=headers, token=user.token, raw=body)


# ---- real files, made byte by byte

def png(w=2, h=2, seed=0):
    """A real RGB PNG (zlib-deflated rows); seed changes the pixels, and a
    random comment makes every call's bytes new (so no earlier run's rows
    refer to the same blob)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    rows = b"".join(b"\x00" + bytes((seed + x + y) % 256 for x in range(3 * w))
                    for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"tEXt", b"Comment\x00" + uuid.uuid4().hex.encode())
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_header_only(w, h):
    """A PNG whose header claims w x h (a decompression bomb's first bytes)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def jpeg():
    """A real 8x8 grey baseline JPEG: one block, DC 0, end of block, with
    one-code Huffman tables."""
    def seg(marker, data):
        return struct.pack(">HH", marker, len(data) + 2) + data
    dqt = b"\x00" + bytes([1] * 64)
    sof = struct.pack(">BHHB", 8, 8, 8, 1) + b"\x01\x11\x00"
    dht_dc = b"\x00" + bytes([1] + [0] * 15) + b"\x00"
    dht_ac = b"\x10" + bytes([1] + [0] * 15) + b"\x00"
    sos = b"\x01\x01\x00\x00\x3f\x00"
    return (b"\xff\xd8" + seg(0xffe0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + seg(0xffdb, dqt) + seg(0xffc0, sof) + seg(0xffc4, dht_dc) + seg(0xffc4, dht_ac)
            + seg(0xffda, sos) + b"\x3f" + b"\xff\xd9")


GIF = bytes.fromhex("47494638396101000100800000ffffff00000021f90401000000002c000000000100"
                    "01000002024401003b")
WEBP = bytes.fromhex("524946461a000000574542505650384c0d0000002f0000001007101111888"
                     "8fe0700")


def pdf():
    """A small valid PDF with one empty page (offsets computed)."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    out = b"%PDF-1.4\n%" + uuid.uuid4().hex.encode() + b"\n"  # new bytes each call
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objs) + 1, xref)
    return out


def media_key(url):
    return url.rsplit("/", 1)[1]


def media_path(url):
    return "/api/media/" + media_key(url)


# ---------------------------------------------------------------- profiles

class Profile(unittest.TestCase):
    def test_me_has_every_field_and_the_nested_lists(self):
        u = User(first_name="Ada", last_name="Lovelace")
        status, _, body = u.call("GET", "/api/profile/")
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body), PROFILE_KEYS | NESTED)
        self.assertEqual((body["id"], body["username"], body["email"]),
                         (u.id, u.username, u.email))
        self.assertEqual((body["first_name"], body["role"], body["profile_picture"]),
                         ("Ada", "member", None))
        self.assertEqual((body["educations"], body["certificates"], body["achievements"],
                          body["resume"]), ([], [], [], None))
        self.assertEqual((body["followers_count"], body["following_count"]), (0, 0))
        reply = u.amqp("profile.me")
        self.assertEqual(reply["status"], 200)
        self.assertEqual(reply["body"], body)

    def test_private_fields_only_for_owner_and_staff(self):
        owner, other, staff = User(), User(), make_staff(User())
        owner.call("PATCH", "/api/profile/", {"phone_no": "+1 555 0100", "address": "1 Main St"})
        status, _, seen = other.call("GET", f"/api/users/{owner.id}/")
        self.assertEqual(status, 200)
        self.assertEqual(set(seen), (PROFILE_KEYS - PRIVATE) | NESTED)
        status, _, seen = staff.call("GET", f"/api/users/{owner.id}/")
        self.assertEqual((seen["email"], seen["phone_no"], seen["address"]),
                         (owner.email, "+1 555 0100", "1 Main St"))
        status, _, seen = owner.call("GET", f"/api/users/{owner.id}/")
        self.assertEqual(seen["phone_no"], "+1 555 0100")
        reply = other.amqp("profile.get", {"id": str(owner.id)})
        self.assertEqual(reply["status"], 200)
        self.assertFalse(PRIVATE & set(reply["body"]))
        # in lists too
        status, _, page = other.call("GET", f"/api/users/?search={owner.username}")
        self.assertEqual(page["count"], 1)
        self.assertFalse(PRIVATE & set(page["results"][0]))
        status, _, page = staff.call("GET", f"/api/users/?search={owner.username}")
        self.assertEqual(page["results"][0]["email"], owner.email)

    def test_get_missing_inactive_and_malformed(self):
        u, gone = User(), User()
        with db() as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET is_active = false WHERE id = %s", (gone.id,))
        for path in (f"/api/users/{gone.id}/", "/api/users/999999999/", "/api/users/abc/",
                     "/api/users/0/"):
            status, _, body = u.call("GET", path)
            self.assertEqual((status, body), (404, NOT_FOUND), path)
        self.assertEqual(u.amqp("profile.get", {"id": "x"})["status"], 404)

    def test_authentication_required(self):
        for method, path in (("GET", "/api/users/"), ("GET", "/api/users/1/"),
                             ("GET", "/api/profile/"), ("PATCH", "/api/profile/"),
                             ("GET", "/api/educations/"), ("GET", "/api/resume/"),
                             ("GET", "/api/admin/users/")):
            status, headers, body = http(method, path, {} if method == "PATCH" else None)
            self.assertEqual((status, body), (401, NO_CREDENTIALS), path)
        reply = amqp_call("profile.list", {})
        self.assertEqual((reply["status"], reply["body"]), (401, NO_CREDENTIALS))
        reply = amqp_call("profile.me", {}, token="not.a.token")
        self.assertEqual(reply["status"], 401)

    def test_patch_updates_and_emits_the_changed_fields(self):
        u = User()
        with EventListener(["user.updated"]) as events:
            status, _, body = u.call("PATCH", "/api/profile/", {
                "about": "Hi", "linkedin": "https://www.linkedin.com/in/x",
                "github": "http://github.com/x", "designation": "Engineer", "company": "Acme",
                "is_student": True, "first_name": "  Grace ", "phone_no": "+44 20 7946 0958"})
            self.assertEqual(status, 200, body)
            self.assertEqual((body["about"], body["first_name"], body["is_student"],
                              body["company"]), ("Hi", "Grace", True, "Acme"))
            self.assertIn("educations", body)
            ev = events.wait_for(lambda e: e["data"]["user_id"] == u.id)
            self.assertIsNotNone(ev)
            self.assertEqual(set(ev["data"]["fields"]),
                             {"about", "linkedin", "github", "designation", "company",
                              "is_student", "first_name", "phone_no"})
            # the same values again change nothing and say so with no event
            status, _, _ = u.call("PATCH", "/api/profile/", {"about": "Hi", "company": "Acme"})
            self.assertEqual(status, 200)
            status, _, _ = u.call("PATCH", "/api/profile/", {"about": "Bye"})
            ev = events.wait_for(lambda e: e["data"]["user_id"] == u.id and
                                 e["data"]["fields"] == ["about"])
            self.assertIsNotNone(ev)
            fields = [e["data"]["fields"] for e in events.events if e["data"]["user_id"] == u.id]
            self.assertEqual(len(fields), 2, fields)
        self.assertEqual(u.call("GET", "/api/profile/")[2]["about"], "Bye")
        reply = u.amqp("profile.update", {"designation": "CTO"})
        self.assertEqual((reply["status"], reply["body"]["designation"]), (200, "CTO"))

    def test_put_is_a_full_update(self):
        u = User()
        status, _, body = u.call("PUT", "/api/profile/", {"about": "x"})
        self.assertEqual((status, body), (400, {"email": ["This field is required."]}))
        new_email = f"{unique('m')}@example.org"
        status, _, body = u.call("PUT", "/api/profile/", {"email": new_email, "about": "x"})
        self.assertEqual((status, body["email"], body["about"]), (200, new_email, "x"))

    def test_validation_messages(self):
        u, other = User(), User()
        cases = [
            ({"linkedin": "ftp://example.com/x"}, {"linkedin": ["Enter a valid URL."]}),
            ({"github": "javascript:alert(1)"}, {"github": ["Enter a valid URL."]}),
            ({"github": "http://exa mple.com"}, {"github": ["Enter a valid URL."]}),
            ({"linkedin": "https://" + "a" * 200 + ".com"},
             {"linkedin": ["Ensure this field has no more than 200 characters."]}),
            ({"email": "not-an-email"}, {"email": ["Enter a valid email address."]}),
            ({"email": other.email.upper()}, {"email": ["A user with that email already exists."]}),
            ({"first_name": None}, {"first_name": ["This field may not be null."]}),
            ({"first_name": "x" * 151},
             {"first_name": ["Ensure this field has no more than 150 characters."]}),
            ({"is_student": "maybe"}, {"is_student": ["Must be a valid boolean."]}),
            ({"about": ["a list"]}, {"about": ["Not a valid string."]}),
            ({"phone_no": "call me"}, {"phone_no": ["Enter a valid phone number."]}),
        ]
        for args, expected in cases:
            status, _, body = u.call("PATCH", "/api/profile/", args)
            self.assertEqual((status, body), (400, expected), args)
        # several at once, and the same through AMQP
        reply = u.amqp("profile.update", {"linkedin": "nope", "is_alumni": "x", "partial": True})
        self.assertEqual(reply["status"], 400)
        self.assertEqual(set(reply["body"]), {"linkedin", "is_alumni"})
        # the allowed forms
        for url in ("http://localhost:8000/x?y=1#z", "https://192.168.0.1/", "https://[::1]:80/",
                    "HTTPS://Example.COM", ""):
            status, _, body = u.call("PATCH", "/api/profile/", {"linkedin": url})
            self.assertEqual(status, 200, (url, body))

    def test_mass_assignment_is_ignored(self):
        u = User()
        before = db_one("SELECT username, role, is_staff, is_superuser, date_joined, is_active, "
                        "password FROM users WHERE id = %s", u.id)
        status, _, body = u.call("PATCH", "/api/profile/", {
            "id": 1, "username": "hijack", "role": "teacher", "is_staff": True,
            "is_superuser": True, "is_active": False, "date_joined": "2000-01-01T00:00:00Z",
            "password": "x", "profile_picture": "http://evil/x.png", "followers_count": 99,
            "about": "ok"})
        self.assertEqual(status, 200, body)
        self.assertEqual((body["id"], body["username"], body["role"], body["is_staff"],
                          body["followers_count"], body["profile_picture"], body["about"]),
                         (u.id, u.username, "member", False, 0, None, "ok"))
        after = db_one("SELECT username, role, is_staff, is_superuser, date_joined, is_active, "
                       "password FROM users WHERE id = %s", u.id)
        self.assertEqual(before, after)
        status, _, body = u.call("PUT", "/api/profile/", {"email": u.email, "is_staff": True,
                                                          "role": "faculty"})
        self.assertEqual((status, body["is_staff"], body["role"]), (200, False, "member"))

    def test_delete_needs_the_password_and_revokes_everything(self):
        u, fan = User(), User()
        u.call("POST", "/api/educations/", {"degree": "BSc", "institution": "X",
                                            "start_year": 2000})
        u.call("POST", f"/api/users/{fan.id}/follow/")
        fan.call("POST", f"/api/users/{u.id}/follow/")
        status, _, body = u.call("DELETE", "/api/profile/")
        self.assertEqual((status, body), (400, {"password": ["This field is required."]}))
        status, _, body = u.call("DELETE", "/api/profile/", {"password": "wrong-password"})
        self.assertEqual((status, body), (400, {"password": ["Incorrect password."]}))
        with EventListener(["user.deleted"]) as events:
            status, _, body = u.call("DELETE", "/api/profile/", {"password": PASSWORD})
            self.assertEqual((status, body), (204, None))
            ev = events.wait_for(lambda e: e["data"]["user_id"] == u.id)
            self.assertEqual(ev["data"]["before"]["username"], u.username)
        status, _, body = u.call("GET", "/api/profile/")
        self.assertEqual(status, 401)
        status, _, body = http("POST", "/api/auth/token/refresh/", {"refresh": u.refresh})
        self.assertEqual(status, 401)
        self.assertEqual(db_one("SELECT count(*) FROM educations WHERE user_id = %s", u.id), (0,))
        self.assertEqual(db_one("SELECT count(*) FROM follows WHERE %s IN (follower_id, "
                                "followee_id)", u.id), (0,))
        self.assertEqual(fan.call("GET", "/api/profile/")[2]["following_count"], 0)

    def test_delete_through_amqp(self):
        u = User()
        reply = u.amqp("profile.delete", {"password": "nope-nope-nope"})
        # the reply also names who the verified token was (for the caller's access log)
        self.assertEqual(reply, {"status": 400, "body": {"password": ["Incorrect password."]},
                                 "user_id": u.id})
        reply = u.amqp("profile.delete", {"password": PASSWORD})
        self.assertEqual(reply["status"], 204)
        self.assertIsNone(db_one("SELECT 1 FROM users WHERE id = %s", u.id))


class UserList(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tag = unique("zq").replace("_", "")
        cls.viewer = User()
        cls.a = User(first_name=cls.tag, last_name="Alpha")
        cls.b = User(first_name=cls.tag, last_name="Beta", role="teacher")
        cls.c = User(last_name=cls.tag + "Gamma")
        cls.d = User(first_name=cls.tag)
        cls.d.call("PATCH", "/api/profile/", {"company": "Initech Beta"})
        cls.gone = User(first_name=cls.tag)
        with db() as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET is_active = false WHERE id = %s", (cls.gone.id,))

    def ids(self, query, user=None):
        status, _, body = (user or self.viewer).call("GET", "/api/users/" + query)
        self.assertEqual(status, 200, body)
        return [r["id"] for r in body["results"]], body

    def test_search_every_term_in_some_field_active_only_by_id(self):
        ids, body = self.ids(f"?search={self.tag}")
        self.assertEqual(ids, [self.a.id, self.b.id, self.c.id, self.d.id])
        self.assertEqual(body["count"], 4)
        self.assertEqual(set(body["results"][0]), PROFILE_KEYS - PRIVATE)
        # terms are ANDed, each in any field, case-insensitive; commas split too
        self.assertEqual(self.ids(f"?search={self.tag.upper()}%20beta")[0], [self.b.id, self.d.id])
        self.assertEqual(self.ids(f"?search={self.tag},alpha")[0], [self.a.id])
        # LIKE wildcards are plain characters
        self.assertEqual(self.ids(f"?search={self.tag}%20%25")[0], [])
        self.assertEqual(self.ids(f"?search={self.tag[:3]}_{self.tag[4:]}")[0], [])
        reply = self.viewer.amqp("profile.list", {"search": self.tag, "role": "teacher"})
        self.assertEqual([r["id"] for r in reply["body"]["results"]], [self.b.id])

    def test_role_filter(self):
        self.assertEqual(self.ids(f"?search={self.tag}&role=teacher")[0], [self.b.id])
        self.assertEqual(self.ids(f"?search={self.tag}&role=nonsense")[0], [])
        self.assertEqual(len(self.ids(f"?search={self.tag}&role=")[0]), 4)

    def test_pagination(self):
        ids, body = self.ids(f"?search={self.tag}&page_size=3")
        self.assertEqual(len(ids), 3)
        self.assertIsNone(body["previous"])
        # DRF's replace_query_param: public base, the parameters sorted by name
        self.assertEqual(body["next"],
                         f"{PUBLIC_BASE_URL}/api/users/?page=2&page_size=3&search={self.tag}")
        ids2, body2 = self.ids(f"?search={self.tag}&page_size=3&page=2")
        self.assertEqual(ids + ids2, [self.a.id, self.b.id, self.c.id, self.d.id])
        self.assertIsNone(body2["next"])
        self.assertEqual(body2["previous"],
                         f"{PUBLIC_BASE_URL}/api/users/?page_size=3&search={self.tag}")
        for page in ("3", "0", "x"):
            status, _, body = self.viewer.call("GET", f"/api/users/?search={self.tag}"
                                                      f"&page_size=3&page={page}")
            self.assertEqual((status, body), (404, {"detail": "Invalid page."}), page)
        # page_size is capped at 100
        status, _, body = self.viewer.call("GET", "/api/users/?page_size=1000")
        self.assertLessEqual(len(body["results"]), 100)


class OwnOnly(unittest.TestCase):
    """The own-profile commands act on the caller, whatever id a raw AMQP
    caller slips into the args."""

    def test_ids_in_args_do_not_redirect_writes(self):
        owner, other = User(), User()
        before = owner.call("GET", "/api/profile/")[2]
        self.assertEqual(other.amqp("profile.update", {"id": owner.id, "about": "pwned"})
                         ["status"], 200)
        self.assertEqual(other.amqp("profile.set_picture", {"id": owner.id, "file": png(seed=7)})
                         ["status"], 200)
        self.assertEqual(other.amqp("resume.update", {"id": str(owner.id), "file": pdf()})
                         ["status"], 200)
        self.assertEqual(other.amqp("profile.clear_picture", {"id": owner.id})["status"], 204)
        self.assertEqual(other.amqp("resume.delete", {"id": owner.id})["status"], 204)
        status, _, body = http("PATCH", f"/api/profile/?id={owner.id}", {"about": "pwned"},
                               token=other.token)
        self.assertEqual(body["id"], other.id)
        self.assertEqual(owner.call("GET", "/api/profile/")[2], before)
        self.assertEqual(other.call("GET", "/api/profile/")[2]["about"], "pwned")
        reply = other.amqp("profile.delete", {"id": owner.id, "password": PASSWORD})
        self.assertEqual(reply["status"], 204)
        self.assertIsNotNone(db_one("SELECT 1 FROM users WHERE id = %s", owner.id))
        self.assertIsNone(db_one("SELECT 1 FROM users WHERE id = %s", other.id))

    def test_methods_the_routes_do_not_have(self):
        u = User()
        for method, path in (("POST", "/api/profile/"), ("PUT", f"/api/admin/users/{u.id}/"),
                             ("POST", "/api/resume/"), ("PATCH", "/api/profile/picture/")):
            status, headers, body = u.call(method, path, {})
            self.assertEqual((status, body), (405, {"detail": f'Method "{method}" not allowed.'}))
            self.assertIn("allow", headers)
        status, _, body = http("GET", "/api/media/not-a-key")
        self.assertEqual((status, body), (404, NOT_FOUND))


# ---------------------------------------------------------------- follows

class Follows(unittest.TestCase):
    def test_follow_unfollow_counts_lists_and_events(self):
        a, b, c = User(), User(), User()
        with EventListener(["user.followed", "user.unfollowed"]) as events:
            status, _, body = a.call("POST", f"/api/users/{b.id}/follow/")
            self.assertEqual((status, body),
                             (201, {"detail": f"You are now following {b.username}."}))
            status, _, body = a.call("POST", f"/api/users/{b.id}/follow/")
            self.assertEqual((status, body),
                             (200, {"detail": f"You are now following {b.username}."}))
            reply = c.amqp("profile.follow", {"id": str(b.id)})
            self.assertEqual(reply["status"], 201)
            ev = events.wait_for(lambda e: e["event"] == "user.followed" and
                                 e["data"] == {"follower_id": a.id, "followee_id": b.id})
            self.assertIsNotNone(ev)
            prof = a.call("GET", f"/api/users/{b.id}/")[2]
            self.assertEqual((prof["followers_count"], prof["following_count"]), (2, 0))
            self.assertEqual(a.call("GET", "/api/profile/")[2]["following_count"], 1)
            status, _, page = a.call("GET", f"/api/users/{b.id}/followers/")
            self.assertEqual((status, page["count"]), (200, 2))
            self.assertEqual([r["id"] for r in page["results"]], [a.id, c.id])
            # a follower's private fields are not shown to another follower
            self.assertFalse(PRIVATE & set(page["results"][1]))
            self.assertEqual(page["results"][0]["email"], a.email)
            status, _, page = b.call("GET", f"/api/users/{a.id}/following/")
            self.assertEqual([r["id"] for r in page["results"]], [b.id])
            reply = b.amqp("profile.followers", {"id": str(b.id), "page_size": "1"})
            self.assertEqual((reply["body"]["count"], len(reply["body"]["results"])), (2, 1))
            reply = b.amqp("profile.following", {"id": str(c.id)})
            self.assertEqual(reply["body"]["count"], 1)

            status, _, body = a.call("DELETE", f"/api/users/{b.id}/follow/")
            self.assertEqual((status, body), (204, None))
            status, _, body = a.call("DELETE", f"/api/users/{b.id}/follow/")
            self.assertEqual(status, 204)
            ev = events.wait_for(lambda e: e["event"] == "user.unfollowed" and
                                 e["data"] == {"follower_id": a.id, "followee_id": b.id})
            self.assertIsNotNone(ev)
            unfollows = [e for e in events.events if e["event"] == "user.unfollowed"
                         and e["data"]["follower_id"] == a.id]
            self.assertEqual(len(unfollows), 1)
        self.assertEqual(a.call("GET", f"/api/users/{b.id}/")[2]["followers_count"], 1)

    def test_refusals(self):
        a = User()
        for method in ("POST", "DELETE"):
            status, _, body = a.call(method, f"/api/users/{a.id}/follow/")
            self.assertEqual((status, body), (400, {"detail": "You cannot follow yourself."}))
            status, _, body = a.call(method, "/api/users/999999999/follow/")
            self.assertEqual((status, body), (404, NOT_FOUND))
        for what in ("followers", "following"):
            status, _, body = a.call("GET", f"/api/users/999999999/{what}/")
            self.assertEqual((status, body), (404, NOT_FOUND))
        status, _, body = http("POST", f"/api/users/{a.id}/follow/")
        self.assertEqual(status, 401)


# ---------------------------------------------------------------- owned rows

class Educations(unittest.TestCase):
    def test_crud_order_filter_and_bola(self):
        owner, other = User(), User()
        status, _, e1 = owner.call("POST", "/api/educations/", {
            "degree": "BSc", "institution": "MIT", "start_year": 2010, "end_year": 2014,
            "user": other.id, "id": 12345})
        self.assertEqual(status, 201, e1)
        self.assertEqual(set(e1), {"id", "user", "degree", "institution", "start_year",
                                   "end_year"})
        self.assertEqual((e1["user"], e1["degree"], e1["end_year"]), (owner.id, "BSc", 2014))
        self.assertNotEqual(e1["id"], 12345)
        status, _, e2 = owner.call("POST", "/api/educations/", {
            "degree": "MSc", "institution": "ETH", "start_year": "2015"})
        self.assertEqual((status, e2["end_year"], e2["start_year"]), (201, None, 2015))
        reply = owner.amqp("education.create", {"degree": "PhD", "institution": "ETH",
                                                "start_year": 2015, "end_year": 2019})
        self.assertEqual(reply["status"], 201)
        e3 = reply["body"]
        # newest first, then by id; ?user= filter; not-a-number matches nothing
        status, _, page = other.call("GET", f"/api/educations/?user={owner.id}")
        self.assertEqual([r["id"] for r in page["results"]], [e2["id"], e3["id"], e1["id"]])
        nested = other.call("GET", f"/api/users/{owner.id}/")[2]["educations"]
        self.assertEqual([r["id"] for r in nested], [e2["id"], e3["id"], e1["id"]])
        self.assertEqual(other.call("GET", "/api/educations/?user=abc")[2]["count"], 0)
        self.assertGreaterEqual(other.call("GET", "/api/educations/")[2]["count"], 3)
        # anyone reads one
        status, _, got = other.call("GET", f"/api/educations/{e1['id']}/")
        self.assertEqual((status, got), (200, e1))
        self.assertEqual(other.amqp("education.get", {"id": str(e1["id"])})["body"], e1)

        # BOLA: the other user cannot change or delete it
        for method, body in (("PATCH", {"degree": "Hacked"}),
                             ("PUT", {"degree": "Hacked", "institution": "x", "start_year": 1}),
                             ("DELETE", None)):
            status, _, resp = other.call(method, f"/api/educations/{e1['id']}/", body)
            self.assertEqual((status, resp), (403, FORBIDDEN), method)
        reply = other.amqp("education.update", {"id": str(e1["id"]), "degree": "Hacked"})
        self.assertEqual((reply["status"], reply["body"]), (403, FORBIDDEN))
        reply = other.amqp("education.delete", {"id": str(e1["id"])})
        self.assertEqual(reply["status"], 403)
        self.assertEqual(owner.call("GET", f"/api/educations/{e1['id']}/")[2], e1)

        # the owner can; PATCH partial, PUT full
        status, _, got = owner.call("PATCH", f"/api/educations/{e1['id']}/",
                                    {"degree": "BEng", "user": other.id})
        self.assertEqual((status, got["degree"], got["user"], got["institution"]),
                         (200, "BEng", owner.id, "MIT"))
        status, _, got = owner.call("PUT", f"/api/educations/{e1['id']}/", {"degree": "BA"})
        self.assertEqual((status, got), (400, {"institution": ["This field is required."],
                                              "start_year": ["This field is required."]}))
        status, _, got = owner.call("PATCH", f"/api/educations/{e1['id']}/", {"end_year": None})
        self.assertEqual((status, got["end_year"]), (200, None))
        status, _, got = owner.call("DELETE", f"/api/educations/{e1['id']}/")
        self.assertEqual((status, got), (204, None))
        for method in ("GET", "PATCH", "DELETE"):
            status, _, got = owner.call(method, f"/api/educations/{e1['id']}/",
                                        {} if method == "PATCH" else None)
            self.assertEqual((status, got), (404, NOT_FOUND), method)

    def test_validation(self):
        u = User()
        cases = [
            ({}, {"degree": ["This field is required."],
                  "institution": ["This field is required."],
                  "start_year": ["This field is required."]}),
            ({"degree": "B", "institution": "I", "start_year": 2010, "end_year": 2009},
             {"end_year": ["End year must not be before start year."]}),
            ({"degree": "B", "institution": "I", "start_year": "soon"},
             {"start_year": ["A valid integer is required."]}),
            ({"degree": "B", "institution": "I", "start_year": -1},
             {"start_year": ["Ensure this value is greater than or equal to 0."]}),
            ({"degree": "B", "institution": "I", "start_year": 40000},
             {"start_year": ["Ensure this value is less than or equal to 32767."]}),
            ({"degree": "", "institution": "I", "start_year": 1},
             {"degree": ["This field may not be blank."]}),
            ({"degree": "x" * 101, "institution": "I", "start_year": 1},
             {"degree": ["Ensure this field has no more than 100 characters."]}),
        ]
        for args, expected in cases:
            status, _, body = u.call("POST", "/api/educations/", args)
            self.assertEqual((status, body), (400, expected), args)
        status, _, e = u.call("POST", "/api/educations/", {"degree": "B", "institution": "I",
                                                           "start_year": 2010, "end_year": 2012})
        # a partial update is checked against the stored start year
        status, _, body = u.call("PATCH", f"/api/educations/{e['id']}/", {"end_year": 2001})
        self.assertEqual((status, body),
                         (400, {"end_year": ["End year must not be before start year."]}))
        status, _, body = u.call("PATCH", f"/api/educations/{e['id']}/", {"start_year": 2013})
        self.assertEqual(status, 400)


class Certificates(unittest.TestCase):
    def test_crud_image_and_bola(self):
        owner, other = User(), User()
        status, _, c1 = owner.call("POST", "/api/certificates/", {
            "title": "AWS", "issuer": "Amazon", "date": "2021-03-04",
            "link": "https://aws.example.com/c/1", "image": None, "user": other.id})
        self.assertEqual(status, 201, c1)
        self.assertEqual(set(c1), {"id", "user", "title", "issuer", "date", "image", "link"})
        self.assertEqual((c1["user"], c1["date"], c1["image"]), (owner.id, "2021-03-04", None))
        status, _, c2 = upload(owner, "POST", "/api/certificates/",
                               {"title": "GCP", "issuer": "Google", "date": "2022-01-01"},
                               {"image": ("cert.png", "image/png", png(seed=11))})
        self.assertEqual(status, 201, c2)
        self.assertIn("/api/media/", c2["image"])
        self.assertEqual(c2["link"], "")
        status, _, c3 = owner.call("POST", "/api/certificates/", {"title": "Old", "issuer": "X"})
        self.assertEqual((status, c3["date"]), (201, None))
        # ordered by date, newest first (no date first, as PostgreSQL sorts NULLs)
        nested = other.call("GET", f"/api/users/{owner.id}/")[2]["certificates"]
        self.assertEqual([r["id"] for r in nested], [c3["id"], c2["id"], c1["id"]])
        page = other.call("GET", f"/api/certificates/?user={owner.id}")[2]
        self.assertEqual([r["id"] for r in page["results"]], [c3["id"], c2["id"], c1["id"]])
        # BOLA
        for method in ("PATCH", "PUT", "DELETE"):
            status, _, body = other.call(method, f"/api/certificates/{c2['id']}/",
                                         None if method == "DELETE" else
                                         {"title": "x", "issuer": "y"})
            self.assertEqual((status, body), (403, FORBIDDEN), method)
        status, _, body = upload(other, "PATCH", f"/api/certificates/{c2['id']}/", {},
                                 {"image": ("x.png", "image/png", png(seed=12))})
        self.assertEqual((status, body), (403, FORBIDDEN))
        self.assertEqual(owner.call("GET", f"/api/certificates/{c2['id']}/")[2], c2)
        # validation
        cases = [
            ({"title": "t", "issuer": "i", "date": "2021-02-30"},
             {"date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}),
            ({"title": "t", "issuer": "i", "date": "yesterday"},
             {"date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}),
            ({"title": "t", "issuer": "i", "link": "ftp://x.org"}, {"link": ["Enter a valid URL."]}),
            ({"title": "t", "issuer": "i", "image": "http://x/y.png"},
             {"image": ["The submitted data was not a file. Check the encoding type on the form."]}),
            ({"issuer": "i"}, {"title": ["This field is required."]}),
        ]
        for args, expected in cases:
            status, _, body = owner.call("POST", "/api/certificates/", args)
            self.assertEqual((status, body), (400, expected), args)
        # the owner replaces the image, then clears it: the old blob goes
        old_key = media_key(c2["image"])
        status, _, got = upload(owner, "PATCH", f"/api/certificates/{c2['id']}/",
                                {"title": "GCP Pro"}, {"image": ("n.gif", "image/gif", GIF)})
        self.assertEqual((status, got["title"], got["date"]), (200, "GCP Pro", "2022-01-01"))
        self.assertNotEqual(media_key(got["image"]), old_key)
        self.assertIsNone(db_one("SELECT 1 FROM media WHERE key = %s", old_key))
        status, _, got = owner.call("PATCH", f"/api/certificates/{c2['id']}/", {"image": None})
        self.assertEqual((status, got["image"]), (200, None))
        reply = owner.amqp("certificate.update", {"id": str(c1["id"]), "date": None})
        self.assertEqual((reply["status"], reply["body"]["date"]), (200, None))
        reply = owner.amqp("certificate.delete", {"id": str(c1["id"])})
        self.assertEqual(reply["status"], 204)
        self.assertEqual(owner.amqp("certificate.get", {"id": str(c1["id"])})["status"], 404)
        self.assertEqual(owner.amqp("certificate.list", {"user": str(owner.id)})["body"]["count"], 2)


class Achievements(unittest.TestCase):
    def test_crud_image_and_bola(self):
        owner, other = User(), User()
        status, _, a1 = upload(owner, "POST", "/api/achievements/",
                               {"title": "Prize", "description": "First", "date": "2020-05-05"},
                               {"image": ("a.webp", "image/webp", WEBP)})
        self.assertEqual(status, 201, a1)
        self.assertEqual(set(a1), {"id", "user", "title", "description", "date", "image"})
        status, _, a2 = owner.call("POST", "/api/achievements/", {"title": "Medal",
                                                                  "date": "2023-01-01"})
        self.assertEqual((status, a2["description"], a2["image"]), (201, "", None))
        nested = other.call("GET", f"/api/users/{owner.id}/")[2]["achievements"]
        self.assertEqual([r["id"] for r in nested], [a2["id"], a1["id"]])
        for method in ("PATCH", "PUT", "DELETE"):
            status, _, body = other.call(method, f"/api/achievements/{a1['id']}/",
                                         None if method == "DELETE" else {"title": "x"})
            self.assertEqual((status, body), (403, FORBIDDEN), method)
        reply = other.amqp("achievement.delete", {"id": str(a1["id"])})
        self.assertEqual((reply["status"], reply["body"]), (403, FORBIDDEN))
        self.assertEqual(other.call("GET", f"/api/achievements/{a1['id']}/")[2], a1)
        status, _, body = owner.call("PUT", f"/api/achievements/{a1['id']}/", {"description": "d"})
        self.assertEqual((status, body), (400, {"title": ["This field is required."]}))
        status, _, body = owner.call("PUT", f"/api/achievements/{a1['id']}/", {"title": "Big"})
        self.assertEqual((status, body["title"], body["description"]), (200, "Big", "First"))
        reply = owner.amqp("achievement.list", {"user": str(owner.id)})
        self.assertEqual(reply["body"]["count"], 2)
        self.assertEqual(owner.call("DELETE", f"/api/achievements/{a2['id']}/")[0], 204)
        status, _, body = other.call("GET", "/api/achievements/999999999/")
        self.assertEqual((status, body), (404, NOT_FOUND))


# ---------------------------------------------------------------- uploads

class Uploads(unittest.TestCase):
    def set_picture(self, user, data, filename="p.png", ctype="image/png"):
        return upload(user, "PUT", "/api/profile/picture/", files={"file": (filename, ctype, data)})

    def test_each_image_type_is_accepted_and_served(self):
        u = User()
        for name, data, ctype in (("a.png", png(3, 2, seed=1), "image/png"),
                                  ("b.jpg", jpeg(), "image/jpeg"),
                                  ("c.gif", GIF, "image/gif"),
                                  ("d.webp", WEBP, "image/webp")):
            with self.subTest(name):
                status, _, body = self.set_picture(u, data, name, "application/octet-stream")
                self.assertEqual(status, 200, body)
                url = body["profile_picture"]
                self.assertTrue(url.startswith(PUBLIC_BASE_URL + "/api/media/"), url)
                self.assertEqual(media_key(url), hashlib.sha256(data).hexdigest())
                status, headers, raw = http_raw("GET", media_path(url))
                self.assertEqual((status, raw), (200, data))
                self.assertEqual(headers["content-type"], ctype)
                self.assertEqual(headers["etag"], '"%s"' % media_key(url))
                self.assertIn("immutable", headers["cache-control"])
                status, headers, raw = http_raw("GET", media_path(url),
                                                headers={"If-None-Match": headers["etag"]})
                self.assertEqual((status, raw), (304, b""))
                status, _, raw = http_raw("GET", media_path(url),
                                          headers={"If-None-Match": '"other", W/"%s"'
                                                   % media_key(url)})
                self.assertEqual(status, 304)
                status, _, raw = http_raw("GET", media_path(url),
                                          headers={"If-None-Match": '"other"'})
                self.assertEqual(status, 200)

    def test_media_through_amqp(self):
        u = User()
        data = png(seed=21)
        url = self.set_picture(u, data)[2]["profile_picture"]
        key = media_key(url)
        reply = amqp_call("media.get", {"key": key})
        self.assertEqual(reply["status"], 200)
        self.assertEqual((reply["body"]["content_type"], reply["body"]["etag"],
                          reply["body"]["data"]), ("image/png", f'"{key}"', data))
        reply = amqp_call("media.get", {"key": key, "if_none_match": f'"{key}"'})
        self.assertEqual(reply["status"], 304)
        for bad in ("0" * 64, "zz", key.upper(), key + "0"):
            reply = amqp_call("media.get", {"key": bad})
            self.assertEqual((reply["status"], reply["body"]), (404, NOT_FOUND), bad)
        status, _, body = http("GET", "/api/media/" + "0" * 64)
        self.assertEqual((status, body), (404, NOT_FOUND))
        # uploads through AMQP: bin arg
        reply = u.amqp("profile.set_picture", {"file": png(seed=22), "file_filename": "x.png"})
        self.assertEqual(reply["status"], 200, reply)
        reply = u.amqp("profile.set_picture", {"file": "not bytes"})
        self.assertEqual(reply["body"], {"file": [
            "The submitted data was not a file. Check the encoding type on the form."]})

    def test_refusals(self):
        u = User()
        status, _, body = self.set_picture(u, b"hello, I am text\n" * 10, "evil.png")
        self.assertEqual((status, body), (400, {"file": [BAD_IMAGE]}))
        status, _, body = self.set_picture(u, pdf(), "doc.png")
        self.assertEqual((status, body), (400, {"file": [BAD_IMAGE]}))
        status, _, body = self.set_picture(u, png_header_only(100000, 100000), "bomb.png")
        self.assertEqual(status, 400)
        self.assertIn("too large", body["file"][0])
        status, _, body = self.set_picture(u, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "bad.png")
        self.assertEqual((status, body), (400, {"file": [BAD_IMAGE]}))
        status, _, body = upload(u, "PUT", "/api/profile/picture/", {"other": "x"})
        self.assertEqual((status, body), (400, {"file": ["No file was submitted."]}))
        status, _, body = self.set_picture(u, b"", "empty.png")
        self.assertEqual(status, 400)
        # 5 MiB + 1 byte: the bridge refuses the body (413), the worker the file (400)
        head = png(seed=3)
        big = head + b"\x00" * (5 * 1024 * 1024 + 1 - len(head))
        status, _, body = self.set_picture(u, big)
        self.assertIn(status, (400, 413), body)
        reply = u.amqp("profile.set_picture", {"file": big})
        self.assertEqual(reply["status"], 400)
        self.assertIn("too large", reply["body"]["file"][0])
        self.assertIsNone(u.call("GET", "/api/profile/")[2]["profile_picture"])

    def test_same_picture_twice_is_stored_once_and_released(self):
        a, b = User(), User()
        data = png(4, 4, seed=99)
        key = hashlib.sha256(data).hexdigest()
        self.assertEqual(self.set_picture(a, data)[0], 200)
        self.assertEqual(self.set_picture(b, data)[0], 200)
        self.assertEqual(self.set_picture(a, data)[0], 200)
        self.assertEqual(db_one("SELECT count(*) FROM media WHERE key = %s", key), (1,))
        with EventListener(["user.updated"]) as events:
            status, _, body = a.call("DELETE", "/api/profile/picture/")
            self.assertEqual((status, body), (204, None))
            self.assertIsNotNone(events.wait_for(
                lambda e: e["data"] == {"user_id": a.id, "fields": ["profile_picture"]}))
        self.assertEqual(db_one("SELECT count(*) FROM media WHERE key = %s", key), (1,))
        self.assertEqual(b.amqp("profile.clear_picture")["status"], 204)
        self.assertIsNone(db_one("SELECT 1 FROM media WHERE key = %s", key))
        status, _, _ = http("GET", "/api/media/" + key)
        self.assertEqual(status, 404)
        # a deleted user's blobs go with them
        data = png(5, 5, seed=98)
        self.set_picture(a, data)
        a.call("DELETE", "/api/profile/", {"password": PASSWORD})
        self.assertIsNone(db_one("SELECT 1 FROM media WHERE key = %s",
                                 hashlib.sha256(data).hexdigest()))

    def test_resume(self):
        u, other = User(), User()
        status, _, body = u.call("GET", "/api/resume/")
        self.assertEqual((status, body), (404, NOT_FOUND))
        status, _, body = upload(u, "PUT", "/api/resume/",
                                 files={"file": ("cv.png", "image/png", png())})
        self.assertEqual((status, body), (400, {"file": [
            "Upload a valid PDF document. The file you uploaded was not a PDF."]}))
        status, _, body = upload(u, "PUT", "/api/resume/",
                                 files={"file": ("cv.pdf", "application/pdf", b"%PDF-1.4 junk")})
        self.assertEqual(status, 400)
        doc = pdf()
        status, _, r1 = upload(u, "PUT", "/api/resume/",
                               files={"file": ("cv.txt", "text/plain", doc)})
        self.assertEqual(status, 200, r1)
        self.assertEqual(set(r1), {"user", "file", "uploaded_at"})
        self.assertEqual(r1["user"], u.id)
        status, headers, raw = http_raw("GET", media_path(r1["file"]))
        self.assertEqual((status, headers["content-type"], raw), (200, "application/pdf", doc))
        self.assertEqual(u.call("GET", "/api/resume/")[2], r1)
        self.assertEqual(other.call("GET", f"/api/users/{u.id}/resume/")[2], r1)
        # through AMQP the same absolute URL: it starts with public_base_url
        reply = other.amqp("resume.get", {"id": str(u.id)})
        self.assertEqual(reply["body"], r1)
        self.assertTrue(r1["file"].startswith(PUBLIC_BASE_URL + "/api/media/"), r1)
        self.assertEqual(other.call("GET", f"/api/users/{u.id}/")[2]["resume"], r1)
        # another's resume is never written: the routes only name one's own
        status, _, _ = other.call("DELETE", "/api/resume/")
        self.assertEqual(status, 404)
        self.assertEqual(u.call("GET", "/api/resume/")[2], r1)
        # replace, then delete
        doc2 = pdf()
        reply = u.amqp("resume.update", {"file": doc2})
        self.assertEqual(reply["status"], 200, reply)
        self.assertIsNone(db_one("SELECT 1 FROM media WHERE key = %s", media_key(r1["file"])))
        status, _, body = u.call("DELETE", "/api/resume/")
        self.assertEqual((status, body), (204, None))
        self.assertEqual(u.call("DELETE", "/api/resume/")[0], 404)
        self.assertEqual(other.call("GET", f"/api/users/{u.id}/resume/")[0], 404)


# ---------------------------------------------------------------- admin

def only_these_staff(*users):
    """Makes the given users the only active staff (other tests leave staff
    users behind) and logs them in again."""
    with db() as conn, conn.cursor() as cur:
        ids = [u.id for u in users]
        cur.execute("UPDATE users SET is_staff = (id = ANY(%s)) WHERE is_staff OR id = ANY(%s)",
                    (ids, ids))
    for u in users:
        u.relogin()


class Admin(unittest.TestCase):
    def test_non_staff_refused(self):
        u, v = User(), User()
        for method, path, body in (("GET", "/api/admin/users/", None),
                                   ("GET", f"/api/admin/users/{v.id}/", None),
                                   ("PATCH", f"/api/admin/users/{v.id}/", {"role": "teacher"}),
                                   ("DELETE", f"/api/admin/users/{v.id}/", None)):
            status, _, resp = u.call(method, path, body)
            self.assertEqual((status, resp), (403, FORBIDDEN), (method, path))
        for cmd in ("admin.list", "admin.get", "admin.update", "admin.delete"):
            reply = u.amqp(cmd, {"id": str(v.id), "is_staff": True})
            self.assertEqual((reply["status"], reply["body"]), (403, FORBIDDEN), cmd)
        self.assertEqual(db_one("SELECT is_staff, role FROM users WHERE id = %s", v.id),
                         (False, "member"))

    def test_list_get_update_delete(self):
        staff, target = make_staff(User()), User()
        status, _, page = staff.call("GET", f"/api/admin/users/?search={target.username}")
        self.assertEqual((status, page["count"]), (200, 1))
        self.assertEqual(set(page["results"][0]),
                         {"id", "username", "email", "first_name", "last_name", "full_name",
                          "role", "is_staff", "is_superuser", "date_joined", "is_active",
                          "last_login"})
        status, _, got = staff.call("GET", f"/api/admin/users/{target.id}/")
        self.assertEqual((status, got["email"], got["is_active"]), (200, target.email, True))
        self.assertIsNotNone(got["last_login"])
        self.assertEqual(staff.call("GET", "/api/admin/users/999999999/")[0], 404)
        with EventListener(["user.role_changed", "user.updated"]) as events:
            status, _, got = staff.call("PATCH", f"/api/admin/users/{target.id}/",
                                        {"role": "teacher", "username": "nope", "email": "x@y.z"})
            self.assertEqual((status, got["role"], got["username"], got["email"]),
                             (200, "teacher", target.username, target.email))
            ev = events.wait_for(lambda e: e["event"] == "user.role_changed" and
                                 e["data"]["user_id"] == target.id)
            self.assertEqual(ev["data"], {"user_id": target.id, "role": "teacher",
                                          "is_staff": False, "by": staff.id})
        status, _, body = staff.call("PATCH", f"/api/admin/users/{target.id}/", {"role": "king"})
        self.assertEqual((status, body), (400, {"role": ['"king" is not a valid choice.']}))
        status, _, body = staff.call("PATCH", f"/api/admin/users/{target.id}/",
                                     {"is_staff": "perhaps"})
        self.assertEqual((status, body), (400, {"is_staff": ["Must be a valid boolean."]}))
        # deactivation shuts the user out at once
        reply = staff.amqp("admin.update", {"id": str(target.id), "is_active": False})
        self.assertEqual((reply["status"], reply["body"]["is_active"]), (200, False))
        self.assertEqual(target.call("GET", "/api/profile/")[0], 401)
        status, _, _ = http("POST", "/api/auth/token/refresh/", {"refresh": target.refresh})
        self.assertEqual(status, 401)
        self.assertEqual(staff.call("GET", f"/api/users/{target.id}/")[0], 404)
        self.assertEqual(staff.amqp("admin.get", {"id": str(target.id)})["body"]["is_active"],
                         False)
        with EventListener(["user.deleted"]) as events:
            status, _, body = staff.call("DELETE", f"/api/admin/users/{target.id}/")
            self.assertEqual((status, body), (204, None))
            ev = events.wait_for(lambda e: e["data"]["user_id"] == target.id)
            self.assertEqual(ev["data"]["before"]["username"], target.username)
        self.assertEqual(staff.call("DELETE", f"/api/admin/users/{target.id}/")[0], 404)

    def test_promotion_and_self_demotion(self):
        a, b = make_staff(User()), User()
        status, _, got = a.call("PATCH", f"/api/admin/users/{b.id}/", {"is_staff": True})
        self.assertEqual((status, got["is_staff"]), (200, True))
        # b's old token (is_staff false in its claims) works: the database decides
        self.assertEqual(b.call("GET", "/api/admin/users/")[0], 200)
        status, _, got = b.call("PATCH", f"/api/admin/users/{b.id}/", {"is_staff": False})
        self.assertEqual((status, got["is_staff"]), (200, False))
        # ...and loses access with the very next request
        self.assertEqual(b.call("GET", "/api/admin/users/")[2], FORBIDDEN)

    def test_last_staff_cannot_be_demoted_deactivated_or_deleted(self):
        a = User()
        only_these_staff(a)
        for body in ({"is_staff": False}, {"is_active": False}, {"is_staff": "false"}):
            status, _, resp = a.call("PATCH", f"/api/admin/users/{a.id}/", body)
            self.assertEqual((status, resp), (409, {"detail": "The last active staff user "
                                                              "cannot be demoted or deactivated."}))
        status, _, resp = a.call("DELETE", f"/api/admin/users/{a.id}/")
        self.assertEqual((status, resp),
                         (409, {"detail": "The last active staff user cannot be deleted."}))
        status, _, resp = a.call("DELETE", "/api/profile/", {"password": PASSWORD})
        self.assertEqual(status, 409)
        # other changes of the last staff user are fine
        status, _, resp = a.call("PATCH", f"/api/admin/users/{a.id}/", {"role": "faculty",
                                                                        "is_staff": True})
        self.assertEqual(status, 200)
        # with a second staff user, self-deletion works
        b = User()
        only_these_staff(a, b)
        self.assertEqual(b.call("DELETE", f"/api/admin/users/{b.id}/")[0], 204)
        self.assertEqual(a.call("PATCH", f"/api/admin/users/{a.id}/", {"is_staff": False})[0], 409)

    def test_concurrent_mutual_demotion(self):
        for _ in range(3):
            a, b = User(), User()
            only_these_staff(a, b)
            barrier = threading.Barrier(2)
            results = {}

            def demote(actor, target):
                barrier.wait()
                results[actor.id] = actor.call("PATCH", f"/api/admin/users/{target.id}/",
                                               {"is_staff": False})

            threads = [threading.Thread(target=demote, args=(a, b)),
                       threading.Thread(target=demote, args=(b, a))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses = sorted(r[0] for r in results.values())
            # exactly one wins; the loser is refused either by the last-staff
            # rule (409, it got the staff lock while still staff) or, when the
            # winner committed before its command was authorized, because it
            # is no longer staff (403: demoted staff lose access at once)
            self.assertEqual(statuses[0], 200, results)
            self.assertIn(statuses[1], (403, 409), results)
            self.assertEqual(db_one("SELECT count(*) FROM users WHERE is_staff AND is_active"),
                             (1,))


if __name__ == "__main__":
    unittest.main()
