"""System 003, the social API (../shared/seeds/003_*): register and log in
(the unified routes it already shared), PUT /api/auth/profile/ with its
custom user's bio and profile_picture, and GET /api/users/ admin-only when
the users_list setting says so; over HTTP as its clients would."""
import os
import signal
import subprocess
import unittest
import uuid

from helpers import (BIN_DIR, PASSWORD, REPO, RUN_DIR, alive, http, process_env, unique,
                     wait)
from test_profiles import multipart, png

FORBIDDEN = {"detail": "You do not have permission to perform this action."}


def register_and_login():
    name = unique("s003")
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD,
            "password2": PASSWORD}
    status, _, reply = http("POST", "/api/auth/register/", body)
    assert status == 201, reply
    assert reply["detail"] == "User registered successfully."
    status, _, reply = http("POST", "/api/auth/login/", {"username": name, "password": PASSWORD})
    assert status == 200, reply
    return name, reply["access"]


class Profile(unittest.TestCase):
    def test_register_login_errors_as_documented(self):
        name, _ = register_and_login()
        status, _, body = http("POST", "/api/auth/register/", {
            "username": name, "email": f"x{name}@example.com", "password": PASSWORD,
            "password2": PASSWORD + "x"})
        self.assertEqual((status, body), (400, {"username": ["A user with that username "
                                                             "already exists."]}))
        status, _, body = http("POST", "/api/auth/register/", {
            "username": "n" + name, "email": f"n{name}@example.com", "password": PASSWORD,
            "password2": PASSWORD + "x"})
        self.assertEqual((status, body), (400, {"password2": ["The two password fields didn't "
                                                              "match."]}))
        status, _, body = http("POST", "/api/auth/login/", {"username": name, "password": "bad"})
        self.assertEqual((status, body["detail"]),
                         (401, "No active account found with the given credentials"))

    def test_profile_update_with_bio_and_picture(self):
        name, access = register_and_login()
        new = unique("s003n")
        status, _, body = http("PUT", "/api/auth/profile/", {
            "username": new, "email": f"{new}@example.com", "bio": "I post things"}, token=access)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["username"], body["email"], body["bio"]),
                         (new, f"{new}@example.com", "I post things"))
        self.assertNotIn("about", body)
        self.assertIn("followers_count", body)
        # the picture, as an ImageField takes it: multipart
        raw, headers = multipart({"username": new, "email": f"{new}@example.com",
                                  "bio": "with a face"},
                                 {"profile_picture": ("me.png", "image/png", png())})
        status, _, body = http("PUT", "/api/auth/profile/", headers=headers, token=access, raw=raw)
        self.assertEqual(status, 200, body)
        self.assertTrue(body["profile_picture"].startswith("http"), body)
        self.assertEqual(body["bio"], "with a face")
        status, _, body = http("GET", "/api/auth/profile/", token=access)
        self.assertEqual((status, body["bio"]), (200, "with a face"))
        # the new username logs in
        self.assertEqual(http("POST", "/api/auth/login/", {"username": new,
                                                           "password": PASSWORD})[0], 200)
        # someone else's name is taken
        other, _ = register_and_login()
        status, _, body = http("PUT", "/api/auth/profile/", {
            "username": other, "email": f"{new}@example.com"}, token=access)
        self.assertEqual((status, body), (400, {"username": ["A user with that username already "
                                                             "exists."]}))
        self.assertEqual(http("PUT", "/api/auth/profile/", {"bio": "x"})[0], 401)


def children(pid):
    """The PIDs whose parent is pid (the worker's copies)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def restart_profile_worker(extra_env):
    """Stops the profile worker (SIGTERM, as scripts/lib.sh does) and starts
    it again with extra_env added to its environment."""
    pid_file = os.path.join(RUN_DIR, "profile-worker.pid")
    with open(pid_file) as f:
        pid = int(f.read().split()[0])
    # its copies too: one still draining would answer with the old setting
    gone = [pid] + children(pid)
    os.kill(pid, signal.SIGTERM)
    assert wait(lambda: not any(alive(p) for p in gone), 30), "the profile worker did not stop"
    out = subprocess.run(
        ["/bin/sh", "-c", 'setsid "$0" >>"$1" 2>&1 </dev/null & echo $!',
         os.path.join(BIN_DIR, "profile-worker"),
         os.path.join(RUN_DIR, "log", "profile-worker.log")],
        cwd=REPO, env=dict(process_env("profile-worker"), **extra_env,
                           BACKEND_WORKER_COPIES=os.environ.get("BACKEND_WORKER_COPIES", "2")),
        capture_output=True,
        text=True, check=True)
    with open(pid_file, "w") as f:
        f.write(out.stdout.strip() + "\n")

    def serving():
        status, _, body = http("GET", "/api/health/")
        return status == 200 and body["queues"]["profile.commands"]["consumers"]
    assert wait(serving, 30), "the profile worker did not come back"


def steady(pred, hold=3.0, timeout=40):
    """True once pred has held for hold seconds in a row. After a worker's
    restart the bridge's consumer count (a passive queue.declare, polled)
    can read 0 for a moment more, and it answers 503 then: wait that out
    rather than hand a flapping instance to the next test."""
    import time
    deadline, since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if pred():
            since = since or time.monotonic()
            if time.monotonic() - since >= hold:
                return True
        else:
            since = None
        time.sleep(0.25)
    return False


class AdminOnlyUserList(unittest.TestCase):
    def test_users_list_setting(self):
        name, access = register_and_login()
        # today's behaviour (the default): every user lists
        self.assertEqual(http("GET", "/api/users/", token=access)[0], 200)
        admin = "s003adm_" + uuid.uuid4().hex[:8]
        out = subprocess.run([os.path.join(BIN_DIR, "backendctl"), "createsuperuser",
                              "--username", admin, "--email", f"{admin}@example.com"], cwd=REPO,
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, BACKEND_SUPERUSER_PASSWORD=PASSWORD))
        self.assertEqual(out.returncode, 0, out.stderr)
        staff = http("POST", "/api/auth/login/", {"username": admin,
                                                  "password": PASSWORD})[2]["access"]
        restart_profile_worker({"BACKEND_USERS_LIST": "staff"})
        try:
            self.assertTrue(steady(lambda: http("GET", "/api/users/", token=access)[0] == 403))
            self.assertEqual(http("GET", "/api/users/", token=access)[:3:2], (403, FORBIDDEN))
            status, _, body = http("GET", f"/api/users/?search={name}", token=staff)
            self.assertEqual(status, 200, body)
            self.assertEqual(body["count"], 1, body)
            # a user's own page stays readable
            self.assertEqual(http("GET", "/api/auth/profile/", token=access)[0], 200)
        finally:
            restart_profile_worker({})
        self.assertTrue(steady(lambda: http("GET", "/api/users/", token=access)[0] == 200))


class OpenAPI(unittest.TestCase):
    def test_aliases_are_described_under_the_system(self):
        status, _, doc = http("GET", "/api/openapi.json")
        self.assertEqual(status, 200)
        for method, path in [('put', '/api/auth/profile/')]:
            op = doc["paths"][path][method]
            self.assertEqual((op["tags"], op["x-system"]), (["system 003"], "003"), path)


if __name__ == "__main__":
    unittest.main()
