"""System 000, the profile system (../shared/seeds/000_*): simplejwt's
POST /api/token/, and /api/users/ as the ModelViewSet with IsOwnerOrReadOnly
it describes (anyone authenticated reads, with the nested educations,
certificates, achievements and resume; the owner writes and deletes), played
over HTTP as its React frontend would."""
import unittest

from helpers import PASSWORD, http, register, unique
from test_profiles import multipart, pdf, png

FORBIDDEN = {"detail": "You do not have permission to perform this action."}
NOT_FOUND = {"detail": "Not found."}


class Client:
    """A user of system 000: created, then logged in through /api/token/."""

    def __init__(self):
        self.username = unique("s000")
        self.email = f"{self.username}@example.com"
        register(self.username, email=self.email)
        status, _, body = http("POST", "/api/token/",
                               {"username": self.username, "password": PASSWORD})
        assert status == 200, body
        self.token, self.refresh = body["access"], body["refresh"]
        self.id = http("GET", "/api/profile/", token=self.token)[2]["id"]

    def call(self, method, path, body=None, **kw):
        return http(method, path, body, token=self.token, **kw)

    def upload(self, method, path, fields=None, files=None):
        raw, headers = multipart(fields, files)
        return http(method, path, headers=headers, token=self.token, raw=raw)


class Token(unittest.TestCase):
    def test_token_pair_and_refresh_without_rotation(self):
        c = Client()
        status, _, body = http("POST", "/api/token/", {"username": c.username,
                                                       "password": PASSWORD})
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body), {"refresh", "access"})
        status, _, body = http("POST", "/api/token/", {"username": c.username, "password": "no"})
        self.assertEqual((status, body["code"]), (401, "no_active_account"))
        # simplejwt's defaults: a new access token, the refresh token stays valid
        for _ in range(2):
            status, _, body = http("POST", "/api/token/refresh/", {"refresh": c.refresh})
            self.assertEqual((status, set(body)), (200, {"access"}), body)
        self.assertEqual(http("GET", "/api/users/", token=body["access"])[0], 200)


class UsersViewSet(unittest.TestCase):
    def test_anyone_authenticated_reads_with_the_nested_lists(self):
        owner, other = Client(), Client()
        self.assertEqual(http("GET", "/api/users/")[0], 401)
        status, _, body = owner.call("POST", "/api/educations/", {
            "degree": "BSc", "institution": "MIT", "start_year": 2015, "end_year": 2019})
        self.assertEqual(status, 201, body)
        status, _, body = other.call("GET", "/api/users/")
        self.assertEqual(status, 200)
        self.assertIn("results", body)
        status, _, body = other.call("GET", f"/api/users/{owner.id}/")
        self.assertEqual(status, 200, body)
        for key in ("educations", "certificates", "achievements", "resume", "about",
                    "is_student", "is_alumni", "is_faculty", "linkedin", "github",
                    "profile_picture"):
            self.assertIn(key, body)
        self.assertEqual(body["educations"][0]["degree"], "BSc")

    def test_owner_updates_their_user(self):
        c = Client()
        status, _, body = c.call("PATCH", f"/api/users/{c.id}/", {
            "about": "Alumnus", "is_alumni": True, "linkedin": "https://linkedin.com/in/x",
            "github": "https://github.com/x"})
        self.assertEqual(status, 200, body)
        self.assertEqual((body["about"], body["is_alumni"], body["github"]),
                         ("Alumnus", True, "https://github.com/x"))
        # PUT: the full user (email is required, as DRF's full update has it)
        status, _, body = c.call("PUT", f"/api/users/{c.id}/", {"about": "x"})
        self.assertEqual((status, body), (400, {"email": ["This field is required."]}))
        status, _, body = c.call("PUT", f"/api/users/{c.id}/", {
            "username": c.username, "email": c.email, "is_student": True, "is_faculty": False,
            "about": "Student again"})
        self.assertEqual(status, 200, body)
        self.assertEqual((body["is_student"], body["about"]), (True, "Student again"))
        # the picture as a file (multipart), the way an ImageField takes it
        status, _, body = c.upload("PATCH", f"/api/users/{c.id}/", {"about": "with picture"},
                                   {"profile_picture": ("me.png", "image/png", png())})
        self.assertEqual(status, 200, body)
        self.assertTrue(body["profile_picture"].startswith("http"), body)
        self.assertEqual(body["about"], "with picture")
        status, _, body = c.upload("PATCH", f"/api/users/{c.id}/", None,
                                   {"profile_picture": ("x.png", "image/png", b"not an image")})
        self.assertEqual(status, 400)
        self.assertIn("profile_picture", body)

    def test_others_read_only(self):
        owner, other = Client(), Client()
        for method in ("PUT", "PATCH", "DELETE"):
            status, _, body = other.call(method, f"/api/users/{owner.id}/", {"about": "mine"})
            self.assertEqual((status, body), (403, FORBIDDEN), method)
        self.assertEqual(other.call("PATCH", "/api/users/999999999/", {})[:3:2],
                         (404, NOT_FOUND))
        self.assertEqual(http("PATCH", f"/api/users/{owner.id}/", {"about": "x"})[0], 401)
        self.assertEqual(owner.call("GET", f"/api/users/{owner.id}/")[2]["about"], "")

    def test_owner_deletes_their_user(self):
        c, other = Client(), Client()
        status, _, body = c.call("DELETE", f"/api/users/{c.id}/")
        self.assertEqual((status, body), (204, None))
        self.assertEqual(other.call("GET", f"/api/users/{c.id}/")[:3:2], (404, NOT_FOUND))
        status, _, _ = http("POST", "/api/token/", {"username": c.username, "password": PASSWORD})
        self.assertEqual(status, 401)


class Resources(unittest.TestCase):
    def test_resource_viewsets(self):
        owner, other = Client(), Client()
        status, _, cert = owner.call("POST", "/api/certificates/", {
            "title": "AWS", "issuer": "Amazon", "date": "2024-01-02"})
        self.assertEqual(status, 201, cert)
        status, _, ach = owner.call("POST", "/api/achievements/", {
            "title": "Prize", "description": "First", "date": "2023-05-06"})
        self.assertEqual(status, 201, ach)
        self.assertEqual(other.call("PATCH", f"/api/certificates/{cert['id']}/",
                                    {"title": "mine"})[0], 403)
        self.assertEqual(owner.call("PATCH", f"/api/achievements/{ach['id']}/",
                                    {"title": "Grand prize"})[2]["title"], "Grand prize")
        status, _, body = owner.upload("POST", "/api/resumes/", None,
                                       {"file": ("cv.pdf", "application/pdf", pdf())})
        self.assertEqual(status, 200, body)
        status, _, body = other.call("GET", f"/api/resumes/{owner.id}/")
        self.assertEqual(status, 200, body)
        self.assertTrue(body["file"].startswith("http"))
        status, _, user = other.call("GET", f"/api/users/{owner.id}/")
        self.assertEqual((len(user["certificates"]), len(user["achievements"])), (1, 1))
        self.assertEqual(user["resume"]["file"], body["file"])
        status, _, page = other.call("GET", f"/api/resumes/?user={owner.id}")
        self.assertEqual((status, [r["user"] for r in page["results"]]), (200, [owner.id]))
        # the resume is named by its user; only that user writes it
        self.assertEqual(other.upload("PUT", f"/api/resumes/{owner.id}/", None,
                                      {"file": ("cv.pdf", "application/pdf", pdf())})[:3:2],
                         (403, FORBIDDEN))
        self.assertEqual(other.call("DELETE", f"/api/resumes/{owner.id}/")[:3:2],
                         (403, FORBIDDEN))
        status, _, again = owner.upload("PUT", f"/api/resumes/{owner.id}/", None,
                                        {"file": ("cv2.pdf", "application/pdf", pdf())})
        self.assertEqual(status, 200, again)
        self.assertNotEqual(again["file"], body["file"])
        self.assertEqual(owner.call("DELETE", f"/api/resumes/{owner.id}/")[0], 204)
        self.assertEqual(other.call("GET", f"/api/resumes/{owner.id}/")[:3:2], (404, NOT_FOUND))


class OpenAPI(unittest.TestCase):
    def test_aliases_are_described_under_the_system(self):
        status, _, doc = http("GET", "/api/openapi.json")
        self.assertEqual(status, 200)
        for method, path in [('post', '/api/token/'), ('put', '/api/users/{id}/'), ('delete', '/api/resumes/{id}/')]:
            op = doc["paths"][path][method]
            self.assertEqual((op["tags"], op["x-system"]), (["system 000"], "000"), path)


if __name__ == "__main__":
    unittest.main()
