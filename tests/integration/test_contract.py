"""The generated contract documents (issue 12): /api/openapi.json checked by
swagger-parser, a TypeScript client generated from it with openapi-typescript
that compiles under tsc --strict and runs against this instance, a file of
deliberate mistakes that must not compile, /api/asyncapi.json checked by
@asyncapi/parser, and replies that carry exactly the declared fields. The npm
checkers are the pinned ones of web/ (scripts/setup installs them)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import time

from helpers import REPO, HTTP_URL, Unroutable, amqp_call, http, register_and_login, unique

WEB = os.path.join(REPO, "web")
CONTRACT = os.path.join(REPO, "tests", "contract")
NODE = shutil.which("node") or "/usr/bin/node"


def bin_of(name):
    return os.path.join(WEB, "node_modules", ".bin", name)


def run(*argv, cwd=None, timeout=120):
    p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def document(path):
    status, _, doc = http("GET", path)
    assert status == 200, (path, status)
    return doc


class Documents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="contract-")
        cls.openapi = document("/api/openapi.json")
        cls.asyncapi = document("/api/asyncapi.json")
        cls.openapi_file = os.path.join(cls.tmp, "openapi.json")
        cls.asyncapi_file = os.path.join(cls.tmp, "asyncapi.json")
        with open(cls.openapi_file, "w") as f:
            json.dump(cls.openapi, f)
        with open(cls.asyncapi_file, "w") as f:
            json.dump(cls.asyncapi, f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_openapi_passes_swagger_parser(self):
        rc, out = run(NODE, os.path.join(CONTRACT, "check.cjs"), "openapi", self.openapi_file, WEB)
        print(out.strip())
        self.assertEqual(rc, 0, out)
        self.assertIn("valid OpenAPI 3.1.0", out)

    def test_asyncapi_passes_the_asyncapi_parser(self):
        rc, out = run(NODE, os.path.join(CONTRACT, "check.cjs"), "asyncapi", self.asyncapi_file,
                      WEB)
        print(out.strip().splitlines()[-1])
        self.assertEqual(rc, 0, out)
        self.assertIn("@asyncapi/parser: 0 errors", out)
        doc = self.asyncapi
        self.assertEqual(doc["asyncapi"], "3.0.0")
        self.assertEqual(doc["defaultContentType"], "application/msgpack")
        place = doc["channels"]["order.place"]
        self.assertEqual(place["bindings"]["amqp"]["exchange"]["name"], "backend.commands")
        self.assertTrue(doc["operations"]["order.place"]["bindings"]["amqp"]["mandatory"])
        self.assertEqual(doc["channels"]["order.placed"]["bindings"]["amqp"]["exchange"]["name"],
                         "backend.events")
        self.assertEqual(doc["channels"]["backend.dead"]["address"], "backend.dead")
        self.assertIn("basic.return", doc["info"]["description"])
        self.assertIn("at-least-once", doc["info"]["description"])
        # one declaration: the same Order in both documents
        self.assertEqual(doc["components"]["schemas"]["Order"],
                         self.openapi["components"]["schemas"]["Order"])

    def test_the_documents_say_what_the_declarations_say(self):
        s = self.openapi["components"]["schemas"]
        order = s["OrderRequest"]
        self.assertEqual(order["required"], ["product_name", "quantity", "price"])
        self.assertEqual(order["properties"]["quantity"],
                         {"type": "integer", "minimum": 1, "maximum": 10000})
        self.assertEqual(order["properties"]["price"]["format"], "decimal")
        self.assertTrue(s["Order"]["properties"]["total"]["readOnly"])
        self.assertEqual(s["Order"]["properties"]["status"]["enum"],
                         ["pending", "shipped", "delivered", "cancelled"])
        self.assertNotIn("required", s["PatchedUserProfileRequest"])
        self.assertIn("email", s["PatchedUserProfileRequest"]["properties"])
        for path, item in self.openapi["paths"].items():
            for method, op in item.items():
                for p in op["parameters"]:
                    if p["name"] in ("id", "page", "page_size", "user"):
                        self.assertEqual(p["schema"]["type"], "integer", (path, method, p))
                for code, r in op["responses"].items():
                    if code not in ("204", "304", "413"):
                        self.assertIn("content", r, (path, method, code))

    def test_the_examples_are_accepted(self):
        ops = self.openapi["paths"]
        order = ops["/api/orders/"]["post"]["requestBody"]["content"]["application/json"]["example"]
        token, _ = register_and_login("example")
        status, _, body = http("POST", "/api/orders/", order, token=token)
        self.assertEqual(status, 201, body)
        register = ops["/api/auth/register/"]["post"]["requestBody"]["content"]["application/json"]
        login = ops["/api/auth/login/"]["post"]["requestBody"]["content"]["application/json"]
        self.assertEqual(register["example"]["username"], login["example"]["username"])
        self.assertEqual(register["example"]["password"], login["example"]["password"])
        # the same body under another name registers and logs in
        name = unique("ex")
        reg = dict(register["example"], username=name, email=f"{name}@example.com")
        status, _, body = http("POST", "/api/auth/register/", reg)
        self.assertEqual(status, 201, body)
        status, _, body = http("POST", "/api/auth/login/", dict(login["example"], username=name))
        self.assertEqual(status, 200, body)

    def test_replies_carry_the_declared_fields(self):
        s = self.openapi["components"]["schemas"]
        token, tokens = register_and_login("shape")
        self.assertEqual(set(tokens["user"]), set(s["Me"]["properties"]))
        status, _, order = http("POST", "/api/orders/",
                                {"product_name": "Mug", "quantity": 1, "price": "3.00"},
                                token=token)
        self.assertEqual(status, 201)
        self.assertEqual(set(order), set(s["Order"]["properties"]))
        status, _, payment = http("POST", "/api/payments/",
                                  {"order": order["id"], "amount": "3.00"}, token=token)
        self.assertEqual(status, 201)
        self.assertEqual(set(payment), set(s["Payment"]["properties"]))
        status, _, page = http("GET", "/api/orders/", token=token)
        self.assertEqual(set(page), set(s["PaginatedOrderList"]["properties"]))
        status, _, profile = http("GET", "/api/profile/", token=token)
        self.assertEqual(set(profile), set(s["UserProfileDetail"]["properties"]))
        # over AMQP: the reply of the declared shape, the same validation
        reply = amqp_call("order.place", {"product_name": "", "quantity": "x", "price": 0},
                          token=token)
        self.assertEqual(reply["status"], 400)
        self.assertEqual(reply["body"], {
            "product_name": ["This field may not be blank."],
            "quantity": ["A valid integer is required."],
            "price": ["Ensure this value is greater than or equal to 0.01."]})


class Mandatory(unittest.TestCase):
    def test_a_command_no_queue_serves_comes_back_at_once(self):
        # the contract: published mandatory, an unserved routing key is returned
        # (basic.return), not silently dropped; the caller knows at once
        t0 = time.monotonic()
        with self.assertRaises(Unroutable) as e:
            amqp_call("nobody.home", {}, timeout=5)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertIn("312 NO_ROUTE", str(e.exception))


class TypeScriptClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="client-")
        with open(os.path.join(cls.tmp, "openapi.json"), "w") as f:
            json.dump(document("/api/openapi.json"), f)
        rc, out = run(bin_of("openapi-typescript"), os.path.join(cls.tmp, "openapi.json"), "-o",
                      os.path.join(cls.tmp, "api.d.ts"))
        assert rc == 0, out
        for name in ("client_ok.ts", "client_bad.ts"):
            shutil.copy(os.path.join(CONTRACT, name), cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tsc(self, name, *extra):
        return run(bin_of("tsc"), "--strict", "--target", "es2022", "--module", "commonjs",
                   "--lib", "es2022,dom", *extra, name, cwd=self.tmp)

    def test_a_correct_client_compiles_and_works(self):
        rc, out = self.tsc("client_ok.ts", "--outDir", "out")
        print(f"tsc --strict client_ok.ts: exit {rc}{': ' + out.strip() if out.strip() else ''}")
        self.assertEqual(rc, 0, out)
        rc, out = run(NODE, os.path.join(self.tmp, "out", "client_ok.js"), HTTP_URL,
                      unique("ts"))
        self.assertEqual(rc, 0, out)
        result = json.loads(out.strip().splitlines()[-1])
        self.assertTrue(result["is_student"])
        self.assertGreater(result["payment"], 0)

    def test_type_errors_are_caught(self):
        rc, out = self.tsc("client_bad.ts", "--noEmit")
        print(out.strip())
        self.assertNotEqual(rc, 0)
        with open(os.path.join(self.tmp, "client_bad.ts")) as f:
            marked = {i + 1: line.split("expect-error:")[1].strip()
                      for i, line in enumerate(f) if "expect-error:" in line and "//" in line
                      and not line.lstrip().startswith("//")}
        reported = {int(m.group(1)) for m in re.finditer(r"client_bad\.ts\((\d+),\d+\): error", out)}
        for line, what in marked.items():
            self.assertIn(line, reported, f"tsc did not catch {what} (line {line})")
        self.assertEqual(reported, set(marked), out)
        self.assertEqual(len(marked), 5)


if __name__ == "__main__":
    unittest.main()
