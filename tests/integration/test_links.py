"""Absolute links in replies (issue 9): next/previous and media URLs start with
the configured public_base_url, never with the request's Host header, and are
absolute over raw AMQP too (the path comes from the route table). Also the
password reset's email check (DRF's EmailField)."""
import unittest
import urllib.parse

import test_profiles as profiles
from helpers import (HTTP_URL, PUBLIC_BASE_URL, amqp_call, http, register_and_login)

# A Host the bridge accepts (an allowed_hosts check lets localhost through)
# but that is not the public base's: a link built from it would show.
SPOOFED = {"Host": f"localhost:{urllib.parse.urlsplit(HTTP_URL).port}"}

INVALID_EMAIL = {"email": ["Enter a valid email address."]}


class Account:
    def __init__(self, name="links"):
        self.token, body = register_and_login(name)
        self.id = body["user"]["id"]

    def call(self, method, path, body=None, headers=None):
        return http(method, path, body, token=self.token, headers=headers)

    def amqp(self, command, args):
        return amqp_call(command, args, token=self.token)


def place(who, n):
    for i in range(n):
        status, _, body = who.call("POST", "/api/orders/",
                                   {"product_name": f"p{i}", "quantity": 1, "price": "1.00"})
        assert status == 201, (status, body)


class PublicBase(unittest.TestCase):
    def test_the_public_base_is_not_the_spoofed_host(self):
        self.assertTrue(PUBLIC_BASE_URL.startswith("http"), PUBLIC_BASE_URL)
        self.assertNotIn("localhost", PUBLIC_BASE_URL)


class PageLinks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = Account()
        place(cls.user, 3)

    def test_http_links_ignore_the_host_header(self):
        status, _, body = self.user.call("GET", "/api/orders/?page_size=1", headers=SPOOFED)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["next"], f"{PUBLIC_BASE_URL}/api/orders/?page=2&page_size=1")
        self.assertIsNone(body["previous"])
        status, _, body = self.user.call("GET", "/api/orders/?status=pending&page=3&page_size=1",
                                         headers=SPOOFED)
        self.assertEqual(status, 200, body)
        self.assertIsNone(body["next"])
        self.assertEqual(body["previous"],
                         f"{PUBLIC_BASE_URL}/api/orders/?page=2&page_size=1&status=pending")
        status, _, body = self.user.call("GET", "/api/orders/?page_size=1&page=2&status=pending")
        # DRF: the link to page 1 has no page parameter; the others stay, sorted
        self.assertEqual(body["previous"],
                         f"{PUBLIC_BASE_URL}/api/orders/?page_size=1&status=pending")
        self.assertEqual(body["next"],
                         f"{PUBLIC_BASE_URL}/api/orders/?page=3&page_size=1&status=pending")

    def test_http_links_keep_the_path_and_encoding_the_client_used(self):
        status, _, body = self.user.call("GET", "/api/orders?page_size=1&extra=a%20b",
                                         headers=SPOOFED)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["next"],
                         f"{PUBLIC_BASE_URL}/api/orders?extra=a+b&page=2&page_size=1")

    def test_amqp_links_are_absolute(self):
        reply = self.user.amqp("order.list", {"page_size": 1})
        self.assertEqual(reply["status"], 200, reply)
        self.assertEqual(reply["body"]["next"], f"{PUBLIC_BASE_URL}/api/orders/?page=2&page_size=1")
        self.assertIsNone(reply["body"]["previous"])
        reply = self.user.amqp("order.list", {"page": 2, "page_size": "1", "status": "pending"})
        self.assertEqual(reply["status"], 200, reply)
        self.assertEqual(reply["body"]["next"],
                         f"{PUBLIC_BASE_URL}/api/orders/?page=3&page_size=1&status=pending")
        self.assertEqual(reply["body"]["previous"],
                         f"{PUBLIC_BASE_URL}/api/orders/?page_size=1&status=pending")
        # the links work when followed
        path = urllib.parse.urlsplit(reply["body"]["next"])
        status, _, body = self.user.call("GET", f"{path.path}?{path.query}")
        self.assertEqual((status, body["count"], body["next"]), (200, 3, None))

    def test_amqp_links_fill_path_parameters(self):
        followed = Account("followed")
        for _ in range(2):
            fan = Account("fan")
            self.assertEqual(fan.call("POST", f"/api/users/{followed.id}/follow/")[0], 201)
        reply = self.user.amqp("profile.followers", {"id": str(followed.id), "page_size": 1})
        self.assertEqual(reply["status"], 200, reply)
        self.assertEqual(reply["body"]["next"],
                         f"{PUBLIC_BASE_URL}/api/users/{followed.id}/followers/?page=2&page_size=1")
        status, _, body = self.user.call("GET", f"/api/users/{followed.id}/followers/?page_size=1",
                                         headers=SPOOFED)
        self.assertEqual(body["next"], reply["body"]["next"])


class MediaLinks(unittest.TestCase):
    def test_picture_and_resume_urls_start_with_the_public_base(self):
        user = profiles.User("media")
        body, headers = profiles.multipart(files={"file": ("p.png", "image/png", profiles.png())})
        headers.update(SPOOFED)
        status, _, me = http("PUT", "/api/profile/picture/", headers=headers, token=user.token,
                             raw=body)
        self.assertEqual(status, 200, me)
        picture = me["profile_picture"]
        self.assertTrue(picture.startswith(PUBLIC_BASE_URL + "/api/media/"), picture)
        body, headers = profiles.multipart(files={"file": ("r.pdf", "application/pdf",
                                                           profiles.pdf())})
        headers.update(SPOOFED)
        status, _, resume = http("PUT", "/api/resume/", headers=headers, token=user.token,
                                 raw=body)
        self.assertEqual(status, 200, resume)
        self.assertTrue(resume["file"].startswith(PUBLIC_BASE_URL + "/api/media/"), resume)

        status, _, profile = user.call("GET", f"/api/users/{user.id}/", headers=SPOOFED)
        self.assertEqual(status, 200, profile)
        self.assertEqual(profile["profile_picture"], picture)
        self.assertEqual(profile["resume"]["file"], resume["file"])
        # over AMQP there is no request at all: the same absolute URLs
        reply = user.amqp("profile.get", {"id": str(user.id)})
        self.assertEqual((reply["status"], reply["body"]["profile_picture"]), (200, picture))
        reply = user.amqp("resume.get", {})
        self.assertEqual((reply["status"], reply["body"]["file"]), (200, resume["file"]))
        # and the URL serves the file
        self.assertEqual(http("GET", urllib.parse.urlsplit(picture).path)[0], 200)


class PasswordResetEmail(unittest.TestCase):
    def test_malformed_email_is_a_400_like_drf_email_field(self):
        for email in ("not-an-email", "a@", "@example.com", "a b@example.com", "a@b@example.com"):
            with self.subTest(email=email):
                status, _, body = http("POST", "/api/auth/password/reset/", {"email": email})
                self.assertEqual((status, body), (400, INVALID_EMAIL))
        reply = amqp_call("auth.reset_password", {"email": "not-an-email"})
        self.assertEqual((reply["status"], reply["body"]), (400, INVALID_EMAIL))
        self.assertEqual(http("POST", "/api/auth/password/reset/", {})[::2],
                         (400, {"email": ["This field is required."]}))
        self.assertEqual(http("POST", "/api/auth/password/reset/", {"email": ""})[::2],
                         (400, {"email": ["This field may not be blank."]}))

    def test_unknown_but_valid_email_still_gets_202(self):
        _, login = register_and_login("reset")
        status, _, unknown = http("POST", "/api/auth/password/reset/",
                                  {"email": "nobody-" + login["user"]["email"]})
        self.assertEqual(status, 202, unknown)
        status, _, known = http("POST", "/api/auth/password/reset/",
                                {"email": login["user"]["email"]})
        self.assertEqual((status, known), (202, unknown))


if __name__ == "__main__":
    unittest.main()
