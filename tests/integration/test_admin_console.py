"""The staff console at /admin/ in a real browser (issue 15 item 9): headless
Chromium (Debian's chromium + chromium-driver, driven by python3-selenium)
logs in as staff, finds a user by search, demotes and re-promotes them,
ships a paid order, replays a dead letter, and finds each step in the audit
trail; a non-staff login is refused. A screenshot of every page goes to
<run dir>/log/screenshots/."""
import os
import shutil
import time
import unittest
import uuid

from helpers import (HTTP_URL, PASSWORD, RUN_DIR, amqp_call, db, http, http_raw, login,
                     register, unique)

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # scripts/setup installs it; without it the tests say so
    webdriver = None

CONSOLE = HTTP_URL.rstrip("/") + "/admin/"
SHOTS = os.path.join(RUN_DIR, "log", "screenshots")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def account(name, staff=False):
    username = unique(name)
    register(username)
    if staff:
        with db() as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET is_staff = true WHERE username = %s", (username,))
    body = login(username)
    return username, body["user"]["id"], body["access"]


class Files(unittest.TestCase):
    def test_the_page_and_its_libraries_are_served_with_the_csp(self):
        for path, ctype in (("/admin/", "text/html; charset=utf-8"),
                            ("/admin/app.js", "text/javascript; charset=utf-8"),
                            ("/admin/console.css", "text/css; charset=utf-8"),
                            ("/admin/vendor/preact/preact.umd.js", "text/javascript; charset=utf-8"),
                            ("/admin/vendor/preact-hooks/hooks.umd.js",
                             "text/javascript; charset=utf-8"),
                            ("/admin/vendor/htm/htm.umd.js", "text/javascript; charset=utf-8"),
                            ("/admin/vendor/pico/pico.min.css", "text/css; charset=utf-8")):
            status, hdrs, body = http_raw("GET", path)
            self.assertEqual((status, hdrs["content-type"]), (200, ctype), path)
            self.assertIn("script-src 'self';", hdrs["content-security-policy"])
            self.assertTrue(body)
        status, hdrs, _ = http_raw("GET", "/admin")
        self.assertEqual((status, hdrs["location"]), (301, "/admin/"))
        status, _, _ = http_raw("GET", "/admin/vendor/preact/../../../package.json")
        self.assertEqual(status, 404)


@unittest.skipIf(webdriver is None, "python3-selenium is not installed (scripts/setup installs it)")
class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.makedirs(SHOTS, exist_ok=True)
        opts = Options()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1400,1000"):
            opts.add_argument(a)
        opts.binary_location = CHROMIUM
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # CSV exports land beside the screenshots
        opts.add_experimental_option("prefs", {"download.default_directory": SHOTS,
                                               "download.prompt_for_download": False})
        cls.browser = webdriver.Chrome(service=Service(DRIVER), options=opts)
        cls.browser.implicitly_wait(0)

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()

    def tearDown(self):
        # the page's CSP (nothing inline, nothing from elsewhere) holds: the
        # browser reports no violation and no script error
        errors = [e["message"] for e in self.browser.get_log("browser")
                  if e["level"] == "SEVERE" and "/api/" not in e["message"]]
        self.assertEqual(errors, [])

    # -- helpers

    def wait(self, cond, timeout=10):
        # the page re-renders as answers come: an element may go stale between looks
        return WebDriverWait(self.browser, timeout,
                             ignored_exceptions=(StaleElementReferenceException,)).until(cond)

    def text_appears(self, text, timeout=10):
        try:
            self.wait(lambda b: text in b.find_element(By.TAG_NAME, "body").text, timeout)
        except TimeoutException:
            self.shot("failure")
            self.fail(f"{text!r} did not appear; the page says: "
                      f"{self.browser.find_element(By.TAG_NAME, 'body').text[:800]}")

    def shot(self, name):
        self.browser.save_screenshot(os.path.join(SHOTS, f"{name}.png"))

    def open(self, route):
        self.browser.get(CONSOLE + "#/" + route)

    def log_in(self, username):
        b = self.browser
        b.get(CONSOLE)
        b.execute_script("sessionStorage.clear()")
        b.get(CONSOLE)
        self.wait(EC.presence_of_element_located((By.NAME, "username"))).send_keys(username)
        b.find_element(By.NAME, "password").send_keys(PASSWORD)
        b.find_element(By.CSS_SELECTOR, "#login button").click()

    def click(self, css):
        self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    # -- the tests

    def test_a_non_staff_login_is_refused(self):
        username, _, _ = account("plain")
        self.log_in(username)
        self.text_appears("is not a staff member: this console is for staff only")
        self.shot("login-refused")
        self.assertIsNone(self.browser.execute_script("return sessionStorage.getItem('bk-console')"))

    def test_a_staff_day(self):
        b = self.browser
        staff, staff_id, _ = account("boss", staff=True)
        target, target_id, target_token = account("target", staff=True)

        # log in, find the user by search
        self.log_in(staff)
        self.text_appears("Users")
        b.find_element(By.NAME, "search").send_keys(target)
        self.wait(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#users tbody tr")) == 1)
        self.shot("users")
        b.find_element(By.LINK_TEXT, target).click()
        self.text_appears(f"{target} #{target_id}")
        self.wait(lambda b: b.find_element(By.ID, "user-staff").text == "yes")

        # demote, then promote again: each shows, each is in the history
        self.click("#toggle-staff")
        self.wait(lambda b: b.find_element(By.ID, "user-staff").text == "no")
        self.click("#toggle-staff")
        self.wait(lambda b: b.find_element(By.ID, "user-staff").text == "yes")
        self.text_appears("Made staff: done.")
        Select(b.find_element(By.NAME, "role")).select_by_value("teacher")
        self.wait(lambda b: b.find_element(By.ID, "user-role").text == "teacher")
        self.wait(lambda b: len(b.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")) >= 4)
        history = b.find_element(By.CSS_SELECTOR, "table.audit").text
        self.assertIn('"is_staff": false', history)
        self.assertIn('"role": "teacher"', history)
        self.assertIn(staff, history)
        self.shot("user-detail")

        # ship a paid order: the page offers exactly what staff may do
        status, _, order = http("POST", "/api/orders/", {"product_name": "Desk", "quantity": 1,
                                                         "price": "99.00"}, token=target_token)
        self.assertEqual(status, 201)
        status, _, payment = http("POST", "/api/payments/", {"order": order["id"], "amount": "99.00"},
                                  token=target_token)
        self.assertEqual(status, 201)
        self.open(f"orders/{order['id']}")
        self.text_appears(f"Order #{order['id']}")
        self.assertEqual([e.text for e in b.find_elements(By.CSS_SELECTOR, "article .actions button")],
                         ["Cancel", "Complete", "Fail"])
        self.click("#payment-completed")
        self.wait(lambda b: b.find_element(By.ID, "payment-status").text == "completed")
        self.click("#order-shipped")
        self.wait(lambda b: b.find_element(By.ID, "order-status").text == "shipped")
        self.wait(lambda b: "order.status_changed" in b.find_element(By.CSS_SELECTOR, "table.audit").text)
        self.text_appears("payment.completed")
        self.shot("order-detail")
        self.open("orders")
        b.find_element(By.NAME, "user").send_keys(str(target_id))
        self.wait(lambda b: len(b.find_elements(By.CSS_SELECTOR, "table.orders tbody tr")) == 1)
        self.shot("orders")
        # the filtered list as CSV
        csv = os.path.join(SHOTS, "orders.csv")
        if os.path.exists(csv):
            os.remove(csv)
        self.click("#export-csv")
        deadline = time.monotonic() + 10
        while not os.path.exists(csv) and time.monotonic() < deadline:
            time.sleep(0.2)
        with open(csv) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "id,user,product_name,quantity,price,total,status,order_date,payment")
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[1].startswith(f"{order['id']},{target_id},Desk,1,99.00,99.00,shipped,"))
        self.open("payments")
        self.wait(lambda b: b.find_elements(By.CSS_SELECTOR, "#payments tbody tr"))
        self.shot("payments")

        # replay a dead letter: a profile update that a worker gave up on
        mid = str(uuid.uuid4())
        reply = amqp_call("profile.update", {"first_name": "Replayed", "password": "not-shown"},
                          token=target_token, message_id=mid, headers={"x-delivery-count": 50})
        self.assertEqual(reply["status"], 500)
        self.open("dead-letters")
        b.find_element(By.NAME, "command").send_keys("profile.update")
        row_css = f'#dead-letters tr[data-id="{mid}"]'
        # the list reloads while the filter is typed: read the row once it settled
        text = self.wait(lambda b: next((r.text for r in b.find_elements(By.CSS_SELECTOR, row_css)
                                         if "********" in r.text), False))
        self.assertNotIn("not-shown", text)
        self.shot("dead-letters")
        row = self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, row_css + " input")))
        row.click()
        self.click("#replay")
        self.text_appears("Replayed 1")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            _, _, me = http("GET", "/api/profile/", token=target_token)
            if me["first_name"] == "Replayed":
                break
            time.sleep(0.2)
        self.assertEqual(me["first_name"], "Replayed")

        # the audit page lists every step
        self.open("audit")
        Select(self.wait(EC.presence_of_element_located((By.NAME, "object_type")))).select_by_value(
            "dead_letter")
        b.find_element(By.NAME, "object_id").send_keys(mid)
        self.text_appears("dead_letter.replayed")
        self.shot("audit")
        self.open(f"users/{target_id}")
        self.text_appears("Replayed")
        self.wait(lambda b: "user.updated" in b.find_element(By.CSS_SELECTOR, "table.audit").text)

        # log out
        self.click("#logout")
        self.wait(EC.presence_of_element_located((By.NAME, "username")))
        self.shot("logged-out")


if __name__ == "__main__":
    unittest.main()
