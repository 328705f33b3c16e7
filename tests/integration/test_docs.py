"""/api/docs/: the bridge's static files (BR_STATIC routes, workers/bridge/
static.c) and Swagger UI driven by a real browser (Debian's chromium and
chromedriver through python3-selenium): register, log in, authorize with the
access token and place an order with the prefilled example, all through the
page. A screenshot of the end lands in <run dir>/log/docs_browser.png."""
import json
import os
import re
import sys
import time
import unittest

from helpers import (BIN_DIR, HTTP_URL, PASSWORD, REPO, RUN_DIR, http, http_raw, process_env,
                     unique)

SWAGGER_DIR = os.path.join(REPO, "web", "node_modules", "swagger-ui-dist")
LOG_DIR = os.path.join(RUN_DIR, "log")


class StaticFiles(unittest.TestCase):
    def test_page_and_its_headers(self):
        status, hdrs, payload = http_raw("GET", "/api/docs/")
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["content-type"], "text/html; charset=utf-8")
        with open(os.path.join(REPO, "web", "docs", "index.html"), "rb") as f:
            self.assertEqual(payload, f.read())
        csp = hdrs["content-security-policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self';", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertIn("style-src 'self';", csp)
        self.assertNotIn("unsafe-", csp)  # neither inline code nor eval
        self.assertNotRegex(csp, r"https?:|\*", "nothing from another origin")
        self.assertEqual(hdrs["cache-control"], "no-cache")
        self.assertRegex(hdrs["etag"], r'^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$')
        self.assertEqual(hdrs["x-content-type-options"], "nosniff")
        self.assertIn("x-request-id", hdrs)
        self.assertIn(b'href="/api/asyncapi.json"', payload)

    def test_swagger_ui_files_with_etag_and_head(self):
        path = "/api/docs/swagger-ui/swagger-ui-bundle.js"
        status, hdrs, payload = http_raw("GET", path)
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["content-type"], "text/javascript; charset=utf-8")
        self.assertEqual(len(payload), os.path.getsize(os.path.join(SWAGGER_DIR,
                                                                    "swagger-ui-bundle.js")))
        etag = hdrs["etag"]
        status, hdrs2, payload = http_raw("GET", path, headers={"If-None-Match": etag})
        self.assertEqual((status, payload, hdrs2["etag"]), (304, b"", etag))
        status, _, _ = http_raw("GET", path, headers={"If-None-Match": f'"x", W/{etag}'})
        self.assertEqual(status, 304)
        status, _, payload = http_raw("GET", path, headers={"If-None-Match": '"other"'})
        self.assertEqual(status, 200)
        status, hdrs3, payload = http_raw("HEAD", path)
        self.assertEqual((status, payload), (200, b""))
        self.assertEqual(int(hdrs3["content-length"]), len(open(
            os.path.join(SWAGGER_DIR, "swagger-ui-bundle.js"), "rb").read()))
        for name, ctype in (("swagger-ui.css", "text/css; charset=utf-8"),
                            ("favicon-32x32.png", "image/png")):
            status, hdrs, _ = http_raw("GET", f"/api/docs/swagger-ui/{name}")
            self.assertEqual((status, hdrs["content-type"]), (200, ctype), name)
        status, hdrs, _ = http_raw("GET", "/api/docs/init.js")
        self.assertEqual((status, hdrs["content-type"]), (200, "text/javascript; charset=utf-8"))

    def test_the_prefix_without_its_slash_redirects(self):
        status, hdrs, payload = http_raw("GET", "/api/docs")
        self.assertEqual((status, hdrs["location"], payload), (301, "/api/docs/", b""))

    def test_nothing_outside_the_folders(self):
        for path in ("/api/docs/../../../etc/passwd",
                     "/api/docs/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                     "/api/docs/swagger-ui/..%2f..%2fdocs%2findex.html",
                     "/api/docs/swagger-ui/%2E%2E/%2E%2E/package.json",
                     "/api/docs/swagger-ui/../../package-lock.json",
                     "/api/docs/init.js%00.png",
                     "/api/docs/init.js%00",
                     "/api/docs/%2fetc%2fpasswd",
                     "/api/docs//etc/passwd",
                     "/api/docs/swagger-ui/",      # no index there, no listing
                     "/api/docs/swagger-ui/.bin",
                     "/api/docs/missing.js",
                     "/api/docs/init.js/",
                     "/api/docs/a%zz"):
            with self.subTest(path=path):
                status, hdrs, payload = http_raw("GET", path)
                self.assertIn(status, (400, 404))
                self.assertNotIn(b"root:", payload)
                if status == 404:
                    self.assertEqual(json.loads(payload), {"detail": "Not found."})

    def test_only_get_and_head(self):
        status, hdrs, _ = http_raw("POST", "/api/docs/init.js", body={})
        self.assertEqual(status, 405)
        self.assertEqual(hdrs["allow"], "GET, OPTIONS")

    def test_a_bridge_without_its_files_does_not_start(self):
        import socket
        import subprocess
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(process_env("bridge"), BACKEND_WEB_DIR="/nonexistent/web",
                   BACKEND_HTTP_PORT=str(port))
        out = subprocess.run([os.path.join(BIN_DIR, "bridge")], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertIn("static files: the folder /nonexistent/web/", out.stdout + out.stderr)
        self.assertIn("run scripts/setup", out.stdout + out.stderr)

    def test_openapi_has_what_the_page_needs(self):
        status, _, doc = http("GET", "/api/openapi.json")
        self.assertEqual(status, 200)
        scheme = doc["components"]["securitySchemes"]["bearerAuth"]
        self.assertEqual({k: scheme[k] for k in ("type", "scheme", "bearerFormat")},
                         {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
        for path in ("/api/auth/register/", "/api/auth/login/", "/api/orders/"):
            body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            self.assertIsInstance(body.get("example"), dict, path)


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


class Browser(unittest.TestCase):
    """Swagger UI in headless Chromium against the test instance's bridge."""

    @classmethod
    def setUpClass(cls):
        cls.driver = _chromium()
        cls.driver.set_page_load_timeout(30)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()

    def wait(self, cond, timeout=15):
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(cond)

    def visible(self, by, sel, within=None):
        from selenium.webdriver.support import expected_conditions as ec
        if within is None:
            return self.wait(ec.visibility_of_element_located((by, sel)))
        return self.wait(lambda d: next((e for e in within.find_elements(by, sel)
                                         if e.is_displayed()), False))

    def click(self, el):
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        el.click()

    def fill(self, el, text):
        """Puts text into a text field as a paste does: the value at once, then
        the input event React listens to (send_keys types one key at a time
        and Swagger UI re-renders after each: 12 s for a register body)."""
        self.driver.execute_script(
            "const [el, text] = arguments;"
            "Object.getOwnPropertyDescriptor(Object.getPrototypeOf(el), 'value').set.call(el, text);"
            "el.dispatchEvent(new Event('input', {bubbles: true}));", el, text)

    def try_out(self, op_id, body=None):
        """Opens operation op_id, Try it out, sets the JSON body (None: keeps
        the prefilled example), Execute. Returns (status, parsed body)."""
        from selenium.webdriver.common.by import By
        # Swagger UI's id for the block, with the dot CSS-escaped ("auth\\.login")
        op_dom_id = f"operations-{op_id.split('.')[0]}-{op_id}".replace(".", "\\.")
        op = self.visible(By.XPATH, f"//div[@id='{op_dom_id}']")
        if "is-open" not in op.get_attribute("class"):
            self.click(op.find_element(By.CSS_SELECTOR, ".opblock-summary-control"))
        self.click(self.visible(By.CSS_SELECTOR, "button.try-out__btn", op))
        area = self.visible(By.CSS_SELECTOR, "textarea.body-param__text", op)
        if body is not None:
            self.fill(area, json.dumps(body))
        else:
            self.example = json.loads(area.get_attribute("value"))
        self.click(self.visible(By.CSS_SELECTOR, "button.execute", op))
        status = self.visible(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status", op)
        text = self.visible(By.XPATH, ".//h5[text()='Response body']/following-sibling::div//pre",
                            op)
        return int(status.text.strip()), json.loads(text.text)

    def test_register_login_authorize_place_order(self):
        from selenium.webdriver.common.by import By
        started = time.monotonic()
        d = self.driver
        d.get(f"{HTTP_URL}/api/docs/")
        link = self.visible(By.ID, "asyncapi-link")
        self.assertEqual(link.get_attribute("href"), f"{HTTP_URL}/api/asyncapi.json")
        self.visible(By.CSS_SELECTOR, ".swagger-ui .info .title")

        name = unique("docs")
        status, body = self.try_out("auth.register", {
            "username": name, "email": f"{name}@example.com",
            "password": PASSWORD, "password2": PASSWORD})
        self.assertEqual(status, 201, body)
        status, body = self.try_out("auth.login", {"username": name, "password": PASSWORD})
        self.assertEqual(status, 200, body)
        access, user_id = body["access"], body["user"]["id"]

        # Authorize: the bearer token, pasted as a user would (no "Bearer ")
        self.click(self.visible(By.CSS_SELECTOR, ".auth-wrapper button.authorize"))
        modal = self.visible(By.CSS_SELECTOR, ".modal-ux")
        self.fill(self.visible(By.CSS_SELECTOR, "input", modal), access)
        self.click(modal.find_element(By.CSS_SELECTOR, "button.modal-btn.authorize"))
        self.click(self.visible(By.CSS_SELECTOR, "button.btn-done", modal))
        self.wait(lambda drv: not drv.find_elements(By.CSS_SELECTOR, ".modal-ux"))

        status, order = self.try_out("order.place")
        d.save_screenshot(os.path.join(LOG_DIR, "docs_browser.png"))
        self.assertEqual(status, 201, order)
        self.assertEqual(self.example["product_name"], order["product_name"])
        self.assertEqual((order["user"], order["quantity"], order["status"]),
                         (user_id, self.example["quantity"], "pending"))

        # the order exists, seen over HTTP from here with the same token
        status, _, got = http("GET", f"/api/orders/{order['id']}/", token=access)
        self.assertEqual(status, 200)
        self.assertEqual(got["id"], order["id"])
        self.assertEqual(got["price"], self.example["price"])

        # persistAuthorization is off: nothing of the token in the page's storage
        stored = d.execute_script("return JSON.stringify(Object.assign({}, localStorage))")
        self.assertNotIn(access, stored)
        # and the page broke no rule of the bridge's Content-Security-Policy
        csp = [e["message"] for e in d.get_log("browser")
               if re.search("Content Security Policy|Refused to", e["message"])]
        self.assertEqual(csp, [])
        print(f"\n    docs page: registered, logged in, authorized and ordered in "
              f"{time.monotonic() - started:.1f}s (chromium started before)", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
