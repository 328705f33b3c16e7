"""The order and payment workers: every route through HTTP and raw AMQP, the
order and payment state machines, exact money, permissions (BOLA: nobody sees
or changes another user's order or payment), the races the row locks decide,
and an order's history rebuilt from its events alone."""
import os
import subprocess
import threading
import unittest
import urllib.parse

from helpers import (BIN_DIR, PUBLIC_BASE_URL, REPO, EventListener, amqp_call, db, http, login,
                     register_and_login)

NOT_FOUND = {"detail": "Not found."}
FORBIDDEN = {"detail": "You do not have permission to perform this action."}
INVALID_PAGE = {"detail": "Invalid page."}
ORDER_KEYS = {"id", "user", "product_name", "quantity", "price", "total", "status",
              "order_date", "payment"}
PAYMENT_KEYS = {"id", "order", "amount", "status", "payment_date"}

# filled by setUpModule: two ordinary users, a staff user, a service token
ALICE = BOB = STAFF = None
SERVICE = None
SERVICE_WHY = ""


class Account:
    def __init__(self, name, staff=False):
        self.token, body = register_and_login(name)
        self.id = body["user"]["id"]
        self.username = body["user"]["username"]
        if staff:
            with db() as conn, conn.cursor() as cur:
                cur.execute("UPDATE users SET is_staff = true WHERE id = %s", (self.id,))
            self.token = login(self.username)["access"]


def mint_service_token(name):
    """A service token from backendctl, or (None, why) when it cannot mint one."""
    ctl = os.path.join(BIN_DIR, "backendctl")
    if not os.access(ctl, os.X_OK):
        return None, f"{ctl} is missing"
    out = subprocess.run([ctl, "service-token", name, "--ttl", "3600"], capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    if out.returncode != 0 or not out.stdout.strip():
        return None, f"backendctl service-token failed: {out.stderr.strip()[:200]}"
    return out.stdout.strip(), ""


def setUpModule():
    global ALICE, BOB, STAFF, SERVICE, SERVICE_WHY
    ALICE = Account("alice")
    BOB = Account("bob")
    STAFF = Account("staff", staff=True)
    SERVICE, SERVICE_WHY = mint_service_token("payments")


def need_service(test):
    if not SERVICE:
        test.skipTest(f"no service token: {SERVICE_WHY}")


# ---------------------------------------------------------------- shortcuts

def place(who, product="Widget", quantity=2, price="19.99"):
    status, _, body = http("POST", "/api/orders/",
                           {"product_name": product, "quantity": quantity, "price": price},
                           token=who.token)
    assert status == 201, (status, body)
    return body


def get_order(who, order_id):
    return http("GET", f"/api/orders/{order_id}/", token=who.token)


def set_order(who, order_id, status):
    return http("PATCH", f"/api/orders/{order_id}/", {"status": status}, token=who.token)


def initiate(who, order_id, amount):
    return http("POST", "/api/payments/", {"order": order_id, "amount": amount}, token=who.token)


def pay(who, order):
    status, _, body = initiate(who, order["id"], order["total"])
    assert status == 201, (status, body)
    return body


def set_payment(token, payment_id, status, method="PATCH"):
    return http(method, f"/api/payments/{payment_id}/", {"status": status}, token=token)


def paid_order(who):
    """A pending order of who with a completed payment."""
    order = place(who)
    payment = pay(who, order)
    status, _, body = set_payment(STAFF.token, payment["id"], "completed")
    assert status == 200, (status, body)
    return order, payment


def path_of(url):
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def together(*calls):
    """Runs the calls in threads released at the same moment; their results in
    order."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i, fn):
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# ---------------------------------------------------------------- orders

class PlaceOrder(unittest.TestCase):
    def test_place_returns_the_representation(self):
        status, _, body = http("POST", "/api/orders/",
                               {"product_name": "Widget", "quantity": 2, "price": "19.99"},
                               token=ALICE.token)
        self.assertEqual(status, 201, body)
        self.assertEqual(set(body), ORDER_KEYS)
        self.assertIsInstance(body["id"], int)
        self.assertEqual(body["user"], ALICE.id)
        self.assertEqual(body["product_name"], "Widget")
        self.assertEqual(body["quantity"], 2)
        self.assertEqual(body["price"], "19.99")
        self.assertEqual(body["total"], "39.98")
        self.assertEqual(body["status"], "pending")
        self.assertIsNone(body["payment"])
        self.assertRegex(body["order_date"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        status, _, again = get_order(ALICE, body["id"])
        self.assertEqual((status, again), (200, body))

    def test_place_through_amqp(self):
        reply = amqp_call("order.place", {"product_name": "Gadget", "quantity": 3,
                                          "price": 0.1}, token=ALICE.token)
        self.assertEqual(reply["status"], 201, reply)
        self.assertEqual(reply["body"]["total"], "0.30")  # 3 x 0.1, exactly
        self.assertEqual(reply["body"]["price"], "0.10")
        self.assertEqual(reply["body"]["user"], ALICE.id)

    def test_total_is_exact_at_the_limits(self):
        body = place(ALICE, quantity=10000, price="99999999.99")
        self.assertEqual((body["price"], body["total"]), ("99999999.99", "999999999900.00"))
        body = place(ALICE, quantity=1, price="0.01")
        self.assertEqual((body["price"], body["total"]), ("0.01", "0.01"))
        body = place(ALICE, quantity=7, price=5)
        self.assertEqual((body["price"], body["total"]), ("5.00", "35.00"))
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT total = quantity * price, pg_typeof(total)::text FROM orders "
                        "WHERE id = %s", (body["id"],))
            self.assertEqual(cur.fetchone(), (True, "numeric"))

    def test_money_accepted(self):
        for price, want in [("19.99", "19.99"), (19.99, "19.99"), (1.1, "1.10"),
                            (" 12.5 ", "12.50"), (12, "12.00"), ("0.01", "0.01"),
                            ("00012.30", "12.30")]:
            with self.subTest(price=price):
                self.assertEqual(place(ALICE, quantity=1, price=price)["price"], want)

    def test_money_refused_with_drf_messages(self):
        invalid = "A valid number is required."
        cases = [
            ("1e3", invalid), ("NaN", invalid), ("Infinity", invalid), ("abc", invalid),
            ("", invalid), (True, invalid), ([1], invalid),
            (19.999, "Ensure that there are no more than 2 decimal places."),
            ("19.990", "Ensure that there are no more than 2 decimal places."),
            (-1, "Ensure this value is greater than or equal to 0.01."),
            ("0.00", "Ensure this value is greater than or equal to 0.01."),
            (0, "Ensure this value is greater than or equal to 0.01."),
            (12345678901, "Ensure that there are no more than 10 digits in total."),
            ("123456789.55", "Ensure that there are no more than 10 digits in total."),
            ("123456789", "Ensure that there are no more than 8 digits before the decimal point."),
            ("1" * 1001, "String value too large."),
            (None, "This field may not be null."),
        ]
        for price, message in cases:
            with self.subTest(price=price):
                status, _, body = http("POST", "/api/orders/",
                                       {"product_name": "x", "quantity": 1, "price": price},
                                       token=ALICE.token)
                self.assertEqual((status, body), (400, {"price": [message]}))
        # a JSON number with an exponent is a float, read as DRF reads it
        # (str(1e3) == "1000.0"); only the string form "1e3" is refused
        status, _, body = http("POST", "/api/orders/", token=ALICE.token,
                               raw=b'{"product_name": "x", "quantity": 1, "price": 1e3}',
                               headers={"Content-Type": "application/json"})
        self.assertEqual((status, body["price"]), (201, "1000.00"))

    def test_fields_are_validated_together(self):
        status, _, body = http("POST", "/api/orders/", {}, token=ALICE.token)
        self.assertEqual(status, 400)
        self.assertEqual(body, {"product_name": ["This field is required."],
                                "quantity": ["This field is required."],
                                "price": ["This field is required."]})
        status, _, body = http("POST", "/api/orders/",
                               {"product_name": "  ", "quantity": 0, "price": "1"},
                               token=ALICE.token)
        self.assertEqual((status, body), (400, {
            "product_name": ["This field may not be blank."],
            "quantity": ["Ensure this value is greater than or equal to 1."]}))
        status, _, body = http("POST", "/api/orders/",
                               {"product_name": "y" * 101, "quantity": 10001, "price": "1"},
                               token=ALICE.token)
        self.assertEqual((status, body), (400, {
            "product_name": ["Ensure this field has no more than 100 characters."],
            "quantity": ["Ensure this value is less than or equal to 10000."]}))
        status, _, body = http("POST", "/api/orders/",
                               {"product_name": "z", "quantity": "two", "price": "1"},
                               token=ALICE.token)
        self.assertEqual((status, body), (400, {"quantity": ["A valid integer is required."]}))
        # 100 characters (not bytes) is the limit
        self.assertEqual(place(ALICE, product="é" * 100)["product_name"], "é" * 100)

    def test_read_only_fields_are_ignored(self):
        status, _, body = http("POST", "/api/orders/",
                               {"product_name": "w", "quantity": 1, "price": "2.00",
                                "total": "0.01", "status": "delivered", "user": BOB.id},
                               token=ALICE.token)
        self.assertEqual(status, 201, body)
        self.assertEqual((body["total"], body["status"], body["user"]),
                         ("2.00", "pending", ALICE.id))

    def test_authentication_required(self):
        status, headers, body = http("POST", "/api/orders/",
                                     {"product_name": "w", "quantity": 1, "price": "1"})
        self.assertEqual((status, body),
                         (401, {"detail": "Authentication credentials were not provided."}))
        for method, path in [("GET", "/api/orders/"), ("GET", "/api/orders/1/"),
                             ("PATCH", "/api/orders/1/"), ("POST", "/api/payments/"),
                             ("GET", "/api/payments/"), ("GET", "/api/payments/1/"),
                             ("PUT", "/api/payments/1/")]:
            with self.subTest(route=f"{method} {path}"):
                self.assertEqual(http(method, path, {})[0], 401)

    def test_service_token_cannot_place_or_read_orders(self):
        need_service(self)
        for command, args in [("order.place", {"product_name": "w", "quantity": 1,
                                               "price": "1"}),
                              ("order.list", {}), ("order.get", {"id": "1"}),
                              ("payment.initiate", {"order": 1, "amount": "1"}),
                              ("payment.list", {})]:
            with self.subTest(command=command):
                reply = amqp_call(command, args, token=SERVICE)
                self.assertEqual((reply["status"], reply["body"]), (403, FORBIDDEN))


class ListAndGetOrders(unittest.TestCase):
    def test_own_orders_newest_first_with_pagination(self):
        carol = Account("carol")
        ids = [place(carol, product=f"p{i}")["id"] for i in range(5)]
        status, _, body = http("GET", "/api/orders/", token=carol.token)
        self.assertEqual(status, 200)
        self.assertEqual(set(body), {"count", "next", "previous", "results"})
        self.assertEqual(body["count"], 5)
        self.assertEqual([o["id"] for o in body["results"]], ids[::-1])
        self.assertIsNone(body["next"])
        self.assertIsNone(body["previous"])

        status, _, first = http("GET", "/api/orders/?page_size=2", token=carol.token)
        self.assertEqual(status, 200)
        self.assertEqual((first["count"], [o["id"] for o in first["results"]]),
                         (5, ids[:2:-1]))
        self.assertIsNone(first["previous"])
        self.assertEqual(first["next"], f"{PUBLIC_BASE_URL}/api/orders/?page=2&page_size=2")
        status, _, second = http("GET", path_of(first["next"]), token=carol.token)
        self.assertEqual([o["id"] for o in second["results"]], [ids[2], ids[1]])
        status, _, third = http("GET", path_of(second["next"]), token=carol.token)
        self.assertEqual([o["id"] for o in third["results"]], [ids[0]])
        self.assertIsNone(third["next"])
        self.assertEqual(third["previous"], f"{PUBLIC_BASE_URL}/api/orders/?page=2&page_size=2")
        # past the end, and not a page at all
        for query in ["page=4&page_size=2", "page=0", "page=abc", "page=-1", "page=2"]:
            with self.subTest(query=query):
                status, _, body = http("GET", f"/api/orders/?{query}", token=carol.token)
                self.assertEqual((status, body), (404, INVALID_PAGE))
        # page_size above 100 is 100; nonsense falls back to 20
        self.assertEqual(http("GET", "/api/orders/?page_size=1000", token=carol.token)[2]["count"],
                         5)
        self.assertEqual(len(http("GET", "/api/orders/?page_size=x",
                                  token=carol.token)[2]["results"]), 5)

    def test_empty_list_is_page_one(self):
        dave = Account("dave")
        status, _, body = http("GET", "/api/orders/", token=dave.token)
        self.assertEqual((status, body), (200, {"count": 0, "next": None, "previous": None,
                                                "results": []}))

    def test_status_filter(self):
        erin = Account("erin")
        a = place(erin)
        b = place(erin)
        self.assertEqual(set_order(erin, a["id"], "cancelled")[0], 200)
        status, _, body = http("GET", "/api/orders/?status=cancelled", token=erin.token)
        self.assertEqual([o["id"] for o in body["results"]], [a["id"]])
        status, _, body = http("GET", "/api/orders/?status=pending", token=erin.token)
        self.assertEqual([o["id"] for o in body["results"]], [b["id"]])
        status, _, body = http("GET", "/api/orders/?status=", token=erin.token)
        self.assertEqual(body["count"], 2)
        # an unknown status matches nothing, as Django's filter does
        for value in ["bogus", "PENDING", "pending%20"]:
            with self.subTest(status=value):
                status, _, body = http("GET", f"/api/orders/?status={value}", token=erin.token)
                self.assertEqual((status, body["count"], body["results"]), (200, 0, []))

    def test_staff_sees_everyone_only_with_all(self):
        mine = place(STAFF)
        alices = place(ALICE, product="for-staff-eyes")
        for query in ["all=1", "all=true"]:
            with self.subTest(query=query):
                status, _, body = http("GET", f"/api/orders/?{query}&page_size=100",
                                       token=STAFF.token)
                ids = [o["id"] for o in body["results"]]
                self.assertIn(alices["id"], ids)
                self.assertIn(mine["id"], ids)
        # without all (or all=yes): only the staff user's own
        for query in ["", "all=0", "all=yes"]:
            with self.subTest(query=query):
                status, _, body = http("GET", f"/api/orders/?{query}&page_size=100",
                                       token=STAFF.token)
                self.assertTrue(all(o["user"] == STAFF.id for o in body["results"]))
        # with a status filter
        status, _, body = http("GET", "/api/orders/?all=1&status=pending&page_size=100",
                               token=STAFF.token)
        self.assertIn(alices["id"], [o["id"] for o in body["results"]])
        self.assertTrue(all(o["status"] == "pending" for o in body["results"]))
        # a user asking for all gets only their own
        status, _, body = http("GET", "/api/orders/?all=1&page_size=100", token=BOB.token)
        self.assertTrue(all(o["user"] == BOB.id for o in body["results"]))
        # staff reads anyone's order
        self.assertEqual(get_order(STAFF, alices["id"])[::2], (200, alices))

    def test_get_is_owner_or_staff_else_404(self):
        order = place(ALICE)
        self.assertEqual(get_order(ALICE, order["id"])[::2], (200, order))
        self.assertEqual(get_order(BOB, order["id"])[::2], (404, NOT_FOUND))
        self.assertEqual(http("GET", "/api/orders/999999999/", token=ALICE.token)[::2],
                         (404, NOT_FOUND))
        for bad in ["abc", "0", "-1", "99999999999999999999999"]:
            with self.subTest(id=bad):
                self.assertEqual(amqp_call("order.get", {"id": bad},
                                           token=ALICE.token)["status"], 404)
        self.assertEqual(http("GET", "/api/orders/abc/", token=ALICE.token)[0], 404)

    def test_list_and_get_through_amqp(self):
        frank = Account("frank")
        ids = [place(frank)["id"] for _ in range(3)]
        reply = amqp_call("order.list", {"page_size": "2"}, token=frank.token)
        self.assertEqual(reply["status"], 200, reply)
        self.assertEqual(reply["body"]["count"], 3)
        self.assertEqual([o["id"] for o in reply["body"]["results"]], ids[:0:-1])
        # over AMQP too: the public base and the route's path (no request URL)
        self.assertEqual(reply["body"]["next"], f"{PUBLIC_BASE_URL}/api/orders/?page=2&page_size=2")
        reply = amqp_call("order.list", {"page": 2, "page_size": 2}, token=frank.token)
        self.assertEqual([o["id"] for o in reply["body"]["results"]], [ids[0]])
        reply = amqp_call("order.list", {"page": "3", "page_size": "2"}, token=frank.token)
        self.assertEqual((reply["status"], reply["body"]), (404, INVALID_PAGE))
        reply = amqp_call("order.get", {"id": ids[0]}, token=frank.token)
        self.assertEqual((reply["status"], reply["body"]["id"]), (200, ids[0]))
        reply = amqp_call("order.get", {"id": str(ids[0])}, token=BOB.token)
        self.assertEqual((reply["status"], reply["body"]), (404, NOT_FOUND))


class OrderTransitions(unittest.TestCase):
    def conflict(self, order, cur, to):
        return (409, {"detail": f"Cannot change order status from '{cur}' to '{to}'."})

    def test_owner_cancels_a_pending_order(self):
        order = place(ALICE)
        with EventListener(["order.status_changed"]) as events:
            status, _, body = set_order(ALICE, order["id"], "cancelled")
            self.assertEqual(status, 200, body)
            self.assertEqual(body, dict(order, status="cancelled"))
            ev = events.wait_for(lambda e: e["data"]["order_id"] == order["id"])
        self.assertIsNotNone(ev, "no order.status_changed")
        self.assertEqual(ev["data"], {"order_id": order["id"], "user_id": ALICE.id,
                                      "from": "pending", "to": "cancelled",
                                      "changes": {"status": ["pending", "cancelled"]}})
        # and nothing moves a cancelled order
        for to in ["pending", "shipped", "delivered", "cancelled"]:
            with self.subTest(to=to):
                self.assertEqual(set_order(ALICE, order["id"], to)[::2],
                                 self.conflict(order, "cancelled", to))
                self.assertEqual(set_order(STAFF, order["id"], to)[::2],
                                 self.conflict(order, "cancelled", to))

    def test_owner_cannot_ship_deliver_or_reopen(self):
        order, _ = paid_order(ALICE)
        for to in ["shipped", "delivered", "pending"]:
            with self.subTest(to=to):
                self.assertEqual(set_order(ALICE, order["id"], to)[::2],
                                 self.conflict(order, "pending", to))
        self.assertEqual(get_order(ALICE, order["id"])[2]["status"], "pending")

    def test_owner_cannot_cancel_a_paid_order(self):
        # the rule: the owner cancels a pending *unpaid* order; a paid
        # one would leave a completed payment on a cancelled order
        order, payment = paid_order(ALICE)
        self.assertEqual(set_order(ALICE, order["id"], "cancelled")[::2],
                         self.conflict(order, "pending", "cancelled"))
        status, _, body = get_order(ALICE, order["id"])
        self.assertEqual((body["status"], body["payment"]["status"]), ("pending", "completed"))

    def test_owner_cancels_with_a_pending_or_failed_payment(self):
        order = place(ALICE)
        pay(ALICE, order)  # a pending payment: not paid yet
        status, _, body = set_order(ALICE, order["id"], "cancelled")
        self.assertEqual((status, body["status"]), (200, "cancelled"))

    def test_staff_ships_a_paid_order_and_delivers_it(self):
        order = place(ALICE)
        self.assertEqual(set_order(STAFF, order["id"], "shipped")[::2],
                         self.conflict(order, "pending", "shipped"))  # unpaid
        payment = pay(ALICE, order)
        self.assertEqual(set_order(STAFF, order["id"], "shipped")[::2],
                         self.conflict(order, "pending", "shipped"))  # payment pending
        self.assertEqual(set_payment(STAFF.token, payment["id"], "completed")[0], 200)
        self.assertEqual(set_order(STAFF, order["id"], "delivered")[::2],
                         self.conflict(order, "pending", "delivered"))
        self.assertEqual(set_order(STAFF, order["id"], "cancelled")[::2],
                         self.conflict(order, "pending", "cancelled"))  # paid: staff cannot
        status, _, body = set_order(STAFF, order["id"], "shipped")
        self.assertEqual((status, body["status"]), (200, "shipped"))
        self.assertEqual(body["payment"]["status"], "completed")
        for to in ["pending", "shipped", "cancelled"]:
            with self.subTest(to=to):
                self.assertEqual(set_order(STAFF, order["id"], to)[::2],
                                 self.conflict(order, "shipped", to))
        self.assertEqual(set_order(ALICE, order["id"], "cancelled")[::2],
                         self.conflict(order, "shipped", "cancelled"))
        self.assertEqual(set_order(ALICE, order["id"], "delivered")[::2],
                         self.conflict(order, "shipped", "delivered"))
        status, _, body = set_order(STAFF, order["id"], "delivered")
        self.assertEqual((status, body["status"]), (200, "delivered"))
        for to in ["pending", "shipped", "delivered", "cancelled"]:
            with self.subTest(final=to):
                self.assertEqual(set_order(STAFF, order["id"], to)[::2],
                                 self.conflict(order, "delivered", to))

    def test_staff_cancels_an_unpaid_order_of_anyone(self):
        order = place(ALICE)
        pay(ALICE, order)  # pending payment: still unpaid
        status, _, body = set_order(STAFF, order["id"], "cancelled")
        self.assertEqual((status, body["status"]), (200, "cancelled"))
        self.assertEqual(body["payment"]["status"], "pending")

    def test_status_is_a_choice_checked_before_the_lookup(self):
        order = place(ALICE)
        for value, message in [("bogus", '"bogus" is not a valid choice.'),
                               ("", '"" is not a valid choice.'),
                               ("Cancelled", '"Cancelled" is not a valid choice.'),
                               (" cancelled", '" cancelled" is not a valid choice.'),
                               (3, '"3" is not a valid choice.'),
                               (2.5, '"2.5" is not a valid choice.'),
                               (100.0, '"100.0" is not a valid choice.'),
                               (True, '"True" is not a valid choice.'),
                               (None, "This field may not be null.")]:
            with self.subTest(value=value):
                status, _, body = set_order(ALICE, order["id"], value)
                self.assertEqual((status, body), (400, {"status": [message]}))
        status, _, body = http("PATCH", f"/api/orders/{order['id']}/", {}, token=ALICE.token)
        self.assertEqual((status, body), (400, {"status": ["This field is required."]}))
        # DRF validates the body first: another user's order, a bad status: 400
        self.assertEqual(set_order(BOB, order["id"], "bogus")[0], 400)
        self.assertEqual(set_order(BOB, order["id"], "cancelled")[::2], (404, NOT_FOUND))
        self.assertEqual(set_order(ALICE, 999999999, "cancelled")[::2], (404, NOT_FOUND))
        self.assertEqual(get_order(ALICE, order["id"])[2]["status"], "pending")

    def test_set_status_through_amqp(self):
        order = place(ALICE)
        reply = amqp_call("order.set_status", {"id": str(order["id"]), "status": "shipped"},
                          token=ALICE.token)
        self.assertEqual((reply["status"], reply["body"]),
                         self.conflict(order, "pending", "shipped"))
        reply = amqp_call("order.set_status", {"id": order["id"], "status": "cancelled"},
                          token=ALICE.token)
        self.assertEqual((reply["status"], reply["body"]["status"]), (200, "cancelled"))


# ---------------------------------------------------------------- payments

class Payments(unittest.TestCase):
    def test_initiate_returns_the_payment_and_the_order_shows_it(self):
        order = place(ALICE, quantity=5, price="2.50")
        with EventListener(["payment.*"]) as events:
            status, _, body = initiate(ALICE, order["id"], "12.50")
            self.assertEqual(status, 201, body)
            ev = events.wait_for(lambda e: e["data"]["id"] == body["id"])
        self.assertEqual(set(body), PAYMENT_KEYS)
        self.assertEqual((body["order"], body["amount"], body["status"]),
                         (order["id"], "12.50", "pending"))
        self.assertRegex(body["payment_date"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertIsNotNone(ev, "no payment.initiated")
        self.assertEqual((ev["event"], ev["data"]), ("payment.initiated", body))
        status, _, again = get_order(ALICE, order["id"])
        self.assertEqual(again["payment"], {"id": body["id"], "status": "pending",
                                            "amount": "12.50"})
        self.assertEqual(http("GET", f"/api/payments/{body['id']}/", token=ALICE.token)[::2],
                         (200, body))

    def test_amount_must_equal_the_total(self):
        order = place(ALICE, quantity=5, price="2.50")
        message = {"amount": ["Amount must equal the order total (12.50)."]}
        for amount in ["12.49", "12.51", 12, "0", -12.5, "1250"]:
            with self.subTest(amount=amount):
                self.assertEqual(initiate(ALICE, order["id"], amount)[::2], (400, message))
        for amount, why in [("12.505", "Ensure that there are no more than 2 decimal places."),
                            ("1e1", "A valid number is required."),
                            ("NaN", "A valid number is required."),
                            ("1234567890123456",
                             "Ensure that there are no more than 15 digits in total.")]:
            with self.subTest(amount=amount):
                self.assertEqual(initiate(ALICE, order["id"], amount)[::2],
                                 (400, {"amount": [why]}))
        # the same number written differently is the same amount
        status, _, body = initiate(ALICE, order["id"], 12.5)
        self.assertEqual((status, body["amount"]), (201, "12.50"))

    def test_one_payment_per_order(self):
        order = place(ALICE)
        pay(ALICE, order)
        self.assertEqual(initiate(ALICE, order["id"], order["total"])[::2],
                         (400, {"order": ["payment with this order already exists."]}))
        with db() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM payments WHERE order_id = %s", (order["id"],))
            self.assertEqual(cur.fetchone()[0], 1)

    def test_only_a_pending_order_can_be_paid_for(self):
        order = place(ALICE)
        self.assertEqual(set_order(ALICE, order["id"], "cancelled")[0], 200)
        self.assertEqual(initiate(ALICE, order["id"], order["total"])[::2],
                         (400, {"order": ["Only a pending order can be paid for."]}))

    def test_order_field_as_drf_reads_a_primary_key(self):
        theirs = place(BOB)
        cases = [
            (theirs["id"], f'Invalid pk "{theirs["id"]}" - object does not exist.'),
            (999999999, 'Invalid pk "999999999" - object does not exist.'),
            (str(theirs["id"]), f'Invalid pk "{theirs["id"]}" - object does not exist.'),
            (0, 'Invalid pk "0" - object does not exist.'),
            (-4, 'Invalid pk "-4" - object does not exist.'),
            ("abc", "Incorrect type. Expected pk value, received str."),
            (True, "Incorrect type. Expected pk value, received bool."),
            ([1], "Incorrect type. Expected pk value, received list."),
            ({"id": 1}, "Incorrect type. Expected pk value, received dict."),
            (None, "This field may not be null."),
            ("", "This field may not be null."),
        ]
        for value, message in cases:
            with self.subTest(order=value):
                status, _, body = initiate(ALICE, value, "1.00")
                self.assertEqual((status, body), (400, {"order": [message]}))
        status, _, body = http("POST", "/api/payments/", {}, token=ALICE.token)
        self.assertEqual((status, body), (400, {"order": ["This field is required."],
                                                "amount": ["This field is required."]}))
        # both fields wrong: both reported, the total comparison not reached
        status, _, body = initiate(ALICE, theirs["id"], "x")
        self.assertEqual(set(body), {"order", "amount"})
        # a string id of one's own order works
        mine = place(ALICE)
        status, _, body = initiate(ALICE, f" {mine['id']} ", mine["total"])
        self.assertEqual((status, body["order"]), (201, mine["id"]))

    def test_staff_cannot_pay_for_someone_elses_order(self):
        order = place(ALICE)
        self.assertEqual(initiate(STAFF, order["id"], order["total"])[::2],
                         (400, {"order": [f'Invalid pk "{order["id"]}" - object does not exist.']}))

    def test_list_and_get_own_staff_all(self):
        gina = Account("gina")
        payments = [pay(gina, place(gina, price=f"{i}.00")) for i in range(1, 4)]
        status, _, body = http("GET", "/api/payments/", token=gina.token)
        self.assertEqual(status, 200)
        self.assertEqual(body["count"], 3)
        self.assertEqual(body["results"], payments[::-1])
        status, _, body = http("GET", "/api/payments/?page_size=2&page=2", token=gina.token)
        self.assertEqual((body["results"], body["next"]), ([payments[0]], None))
        self.assertEqual(body["previous"], f"{PUBLIC_BASE_URL}/api/payments/?page_size=2")
        self.assertEqual(http("GET", "/api/payments/?page=3&page_size=2",
                              token=gina.token)[::2], (404, INVALID_PAGE))
        # others see none of them; staff sees them all
        status, _, body = http("GET", "/api/payments/?page_size=100", token=BOB.token)
        self.assertFalse({p["id"] for p in payments} & {p["id"] for p in body["results"]})
        status, _, body = http("GET", "/api/payments/?page_size=100", token=STAFF.token)
        self.assertTrue({p["id"] for p in payments} <= {p["id"] for p in body["results"]})
        for p in payments:
            self.assertEqual(http("GET", f"/api/payments/{p['id']}/", token=gina.token)[::2],
                             (200, p))
            self.assertEqual(http("GET", f"/api/payments/{p['id']}/", token=BOB.token)[::2],
                             (404, NOT_FOUND))
            self.assertEqual(http("GET", f"/api/payments/{p['id']}/", token=STAFF.token)[::2],
                             (200, p))
        self.assertEqual(http("GET", "/api/payments/abc/", token=gina.token)[0], 404)
        # through AMQP
        reply = amqp_call("payment.list", {"page_size": 1}, token=gina.token)
        self.assertEqual((reply["status"], reply["body"]["count"]), (200, 3))
        self.assertEqual(reply["body"]["results"], [payments[-1]])
        reply = amqp_call("payment.get", {"id": str(payments[0]["id"])}, token=gina.token)
        self.assertEqual((reply["status"], reply["body"]), (200, payments[0]))
        reply = amqp_call("payment.get", {"id": payments[0]["id"]}, token=BOB.token)
        self.assertEqual((reply["status"], reply["body"]), (404, NOT_FOUND))

    def test_initiate_through_amqp(self):
        order = place(ALICE, quantity=3, price="3.33")
        reply = amqp_call("payment.initiate", {"order": order["id"], "amount": 9.99},
                          token=ALICE.token)
        self.assertEqual((reply["status"], reply["body"]["amount"]), (201, "9.99"), reply)
        reply = amqp_call("payment.initiate", {"order": order["id"], "amount": "9.99"},
                          token=ALICE.token)
        self.assertEqual((reply["status"], reply["body"]),
                         (400, {"order": ["payment with this order already exists."]}))


class PaymentTransitions(unittest.TestCase):
    def conflict(self, cur, to):
        return (409, {"detail": f"Cannot change payment status from '{cur}' to '{to}'."})

    def test_only_staff_or_a_service(self):
        order = place(ALICE)
        payment = pay(ALICE, order)
        for method in ["PUT", "PATCH"]:
            with self.subTest(method=method):
                self.assertEqual(set_payment(ALICE.token, payment["id"], "completed",
                                             method)[::2], (403, FORBIDDEN))
                self.assertEqual(set_payment(BOB.token, payment["id"], "completed",
                                             method)[::2], (403, FORBIDDEN))
        # 403 comes before the body and the lookup, as DRF's permission check
        self.assertEqual(set_payment(ALICE.token, 999999999, "bogus")[::2], (403, FORBIDDEN))
        reply = amqp_call("payment.set_status", {"id": payment["id"], "status": "completed"},
                          token=ALICE.token)
        self.assertEqual((reply["status"], reply["body"]), (403, FORBIDDEN))
        self.assertEqual(http("GET", f"/api/payments/{payment['id']}/",
                              token=ALICE.token)[2]["status"], "pending")

    def test_every_transition(self):
        order = place(ALICE)
        payment = pay(ALICE, order)
        pid = payment["id"]
        with EventListener(["payment.*"]) as events:
            self.assertEqual(set_payment(STAFF.token, pid, "pending")[::2],
                             self.conflict("pending", "pending"))
            status, _, body = set_payment(STAFF.token, pid, "failed", "PUT")
            self.assertEqual((status, body), (200, dict(payment, status="failed")))
            self.assertEqual(set_payment(STAFF.token, pid, "completed")[::2],
                             self.conflict("failed", "completed"))
            self.assertEqual(set_payment(STAFF.token, pid, "failed")[::2],
                             self.conflict("failed", "failed"))
            status, _, body = set_payment(STAFF.token, pid, "pending")  # retry
            self.assertEqual((status, body["status"]), (200, "pending"))
            status, _, body = set_payment(STAFF.token, pid, "completed", "PUT")
            self.assertEqual((status, body), (200, dict(payment, status="completed")))
            for to in ["pending", "failed", "completed"]:
                with self.subTest(final=to):
                    self.assertEqual(set_payment(STAFF.token, pid, to)[::2],
                                     self.conflict("completed", to))
            got = []
            for _ in range(3):
                ev = events.wait_for(lambda e: e["data"]["id"] == pid and e not in got)
                self.assertIsNotNone(ev, f"missing payment events after {got}")
                got.append(ev)
        self.assertEqual([(e["event"], e["data"]["status"]) for e in got],
                         [("payment.failed", "failed"), ("payment.initiated", "pending"),
                          ("payment.completed", "completed")])
        self.assertEqual(got[-1]["data"], dict(payment, status="completed",
                                               changes={"status": ["pending", "completed"]}))
        self.assertEqual(get_order(ALICE, order["id"])[2]["payment"],
                         {"id": pid, "status": "completed", "amount": order["total"]})

    def test_status_choice_and_lookup(self):
        payment = pay(ALICE, place(ALICE))
        for value, message in [("paid", '"paid" is not a valid choice.'),
                               ("", '"" is not a valid choice.'),
                               (None, "This field may not be null.")]:
            with self.subTest(value=value):
                self.assertEqual(set_payment(STAFF.token, payment["id"], value)[::2],
                                 (400, {"status": [message]}))
        self.assertEqual(http("PATCH", f"/api/payments/{payment['id']}/", {},
                              token=STAFF.token)[::2],
                         (400, {"status": ["This field is required."]}))
        self.assertEqual(set_payment(STAFF.token, 999999999, "completed")[::2],
                         (404, NOT_FOUND))
        self.assertEqual(set_payment(STAFF.token, 999999999, "bogus")[0], 400)

    def test_a_service_token_moves_payments(self):
        need_service(self)
        payment = pay(ALICE, place(ALICE))
        reply = amqp_call("payment.set_status", {"id": str(payment["id"]), "status": "completed"},
                          token=SERVICE)
        self.assertEqual((reply["status"], reply["body"]), (200, dict(payment,
                                                                      status="completed")))
        status, _, body = set_payment(SERVICE, payment["id"], "failed", "PUT")
        self.assertEqual((status, body), self.conflict("completed", "failed"))

    def test_a_cancelled_order_is_not_paid(self):
        order = place(ALICE)
        payment = pay(ALICE, order)
        self.assertEqual(set_order(ALICE, order["id"], "cancelled")[0], 200)
        status, _, body = set_payment(STAFF.token, payment["id"], "completed")
        self.assertEqual((status, body), (409, {
            "detail": "Cannot change payment status from 'pending' to 'completed': "
                      "the order is cancelled."}))
        # failing it is fine
        self.assertEqual(set_payment(STAFF.token, payment["id"], "failed")[0], 200)


# ---------------------------------------------------------------- BOLA

class NobodyElsesOrders(unittest.TestCase):
    def test_a_second_user_never_sees_or_changes_them(self):
        order = place(ALICE)
        payment = pay(ALICE, order)
        self.assertEqual(get_order(BOB, order["id"])[::2], (404, NOT_FOUND))
        for to in ["cancelled", "shipped", "pending"]:
            self.assertEqual(set_order(BOB, order["id"], to)[::2], (404, NOT_FOUND))
        self.assertEqual(http("GET", f"/api/payments/{payment['id']}/", token=BOB.token)[::2],
                         (404, NOT_FOUND))
        self.assertEqual(set_payment(BOB.token, payment["id"], "completed")[::2],
                         (403, FORBIDDEN))
        for path in ["/api/orders/?page_size=100", "/api/orders/?all=1&page_size=100",
                     "/api/orders/?status=pending&page_size=100"]:
            status, _, body = http("GET", path, token=BOB.token)
            self.assertNotIn(order["id"], [o["id"] for o in body["results"]])
        status, _, body = http("GET", "/api/payments/?page_size=100", token=BOB.token)
        self.assertNotIn(payment["id"], [p["id"] for p in body["results"]])
        other = place(ALICE)
        self.assertEqual(initiate(BOB, other["id"], other["total"])[0], 400)
        # through AMQP too
        for command, args in [("order.get", {"id": order["id"]}),
                              ("order.set_status", {"id": order["id"], "status": "cancelled"}),
                              ("payment.get", {"id": payment["id"]})]:
            with self.subTest(command=command):
                reply = amqp_call(command, args, token=BOB.token)
                self.assertEqual((reply["status"], reply["body"]), (404, NOT_FOUND))
        # nothing changed
        status, _, body = get_order(ALICE, order["id"])
        self.assertEqual((body["status"], body["payment"]["status"]), ("pending", "pending"))
        status, _, body = get_order(ALICE, other["id"])
        self.assertIsNone(body["payment"])


# ---------------------------------------------------------------- races

class Races(unittest.TestCase):
    ROUNDS = 4

    def test_cancel_against_payment_completion(self):
        for i in range(self.ROUNDS):
            with self.subTest(round=i):
                order = place(ALICE)
                payment = pay(ALICE, order)
                cancel, complete = together(
                    lambda: set_order(STAFF, order["id"], "cancelled"),
                    lambda: set_payment(STAFF.token, payment["id"], "completed"))
                codes = sorted([cancel[0], complete[0]])
                self.assertEqual(codes, [200, 409], (cancel, complete))
                status, _, now = get_order(ALICE, order["id"])
                if cancel[0] == 200:
                    self.assertEqual((now["status"], now["payment"]["status"]),
                                     ("cancelled", "pending"))
                else:
                    self.assertEqual((now["status"], now["payment"]["status"]),
                                     ("pending", "completed"))

    def test_ship_against_cancel(self):
        for i in range(self.ROUNDS):
            with self.subTest(round=i):
                order, _ = paid_order(ALICE)
                ship, cancel = together(lambda: set_order(STAFF, order["id"], "shipped"),
                                        lambda: set_order(ALICE, order["id"], "cancelled"))
                # a paid order: only the ship may win, whichever runs first
                # (the owner's cancel sees it paid, or already shipped)
                self.assertEqual((ship[0], cancel[0]), (200, 409), (ship, cancel))
                self.assertRegex(cancel[2]["detail"],
                                 r"^Cannot change order status from '(pending|shipped)' to "
                                 r"'cancelled'\.$")
                self.assertEqual(get_order(ALICE, order["id"])[2]["status"], "shipped")

    def held_order_lock(self, order_id, change_sql, args, call):
        """Runs call in a thread while another transaction holds the order's
        row lock and makes change_sql; returns what call returned once the
        transaction committed, checking that call waited for it."""
        result = []
        with db() as conn:
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (order_id,))
                t = threading.Thread(target=lambda: result.append(call()))
                t.start()
                t.join(1.0)
                self.assertTrue(t.is_alive(), f"did not wait for the order's lock: {result}")
                cur.execute(change_sql, args)
            conn.commit()
        t.join(30)
        self.assertEqual(len(result), 1)
        return result[0]

    def test_payment_completion_waits_for_the_order_lock(self):
        order = place(ALICE)
        payment = pay(ALICE, order)
        status, _, body = self.held_order_lock(
            order["id"], "UPDATE orders SET status = 'cancelled' WHERE id = %s", (order["id"],),
            lambda: set_payment(STAFF.token, payment["id"], "completed"))
        self.assertEqual(status, 409, body)
        self.assertIn("the order is cancelled", body["detail"])

    def test_order_change_waits_for_the_order_lock(self):
        order = place(ALICE)
        payment = pay(ALICE, order)
        status, _, body = self.held_order_lock(
            order["id"], "UPDATE payments SET status = 'completed' WHERE id = %s",
            (payment["id"],), lambda: set_order(STAFF, order["id"], "cancelled"))
        self.assertEqual((status, body), (409, {
            "detail": "Cannot change order status from 'pending' to 'cancelled'."}))

    def test_initiate_waits_for_the_order_lock(self):
        order = place(ALICE)
        status, _, body = self.held_order_lock(
            order["id"], "INSERT INTO payments (order_id, amount) VALUES (%s, %s)",
            (order["id"], order["total"]), lambda: initiate(ALICE, order["id"], order["total"]))
        self.assertEqual((status, body),
                         (400, {"order": ["payment with this order already exists."]}))

    def test_two_payments_for_one_order(self):
        for i in range(self.ROUNDS):
            with self.subTest(round=i):
                order = place(ALICE)
                a, b = together(lambda: initiate(ALICE, order["id"], order["total"]),
                                lambda: initiate(ALICE, order["id"], order["total"]))
                self.assertEqual(sorted([a[0], b[0]]), [201, 400], (a, b))
                loser = a if a[0] == 400 else b
                self.assertEqual(loser[2],
                                 {"order": ["payment with this order already exists."]})
                with db() as conn, conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM payments WHERE order_id = %s",
                                (order["id"],))
                    self.assertEqual(cur.fetchone()[0], 1)


# ---------------------------------------------------------------- events

class History(unittest.TestCase):
    def test_history_rebuilt_from_events_alone(self):
        henry = Account("henry")
        with EventListener(["order.placed", "order.status_changed"]) as events:
            delivered = place(henry, product="delivered one", quantity=4, price="2.25")
            cancelled = place(henry, product="cancelled one")
            untouched = place(henry, product="untouched one")
            payment = pay(henry, delivered)
            set_payment(STAFF.token, payment["id"], "completed")
            self.assertEqual(set_order(STAFF, delivered["id"], "shipped")[0], 200)
            self.assertEqual(set_order(STAFF, delivered["id"], "delivered")[0], 200)
            self.assertEqual(set_order(henry, cancelled["id"], "cancelled")[0], 200)
            self.assertEqual(set_order(henry, cancelled["id"], "shipped")[0], 409)  # no event
            mine = {delivered["id"], cancelled["id"], untouched["id"]}

            def order_id(e):
                return e["data"]["id"] if e["event"] == "order.placed" else e["data"]["order_id"]

            # 3 placed + 3 changes
            deadline_hits = []
            while len(deadline_hits) < 6:
                ev = events.wait_for(lambda e: order_id(e) in mine and e not in deadline_hits)
                self.assertIsNotNone(ev, f"only {len(deadline_hits)} events arrived")
                deadline_hits.append(ev)
            self.assertIsNone(events.wait_for(
                lambda e: order_id(e) in mine and e not in deadline_hits, timeout=1))

        # rebuild: the placed representation, then each change from the state it left
        state, history = {}, {}
        for ev in deadline_hits:
            if ev["event"] == "order.placed":
                state[ev["data"]["id"]] = dict(ev["data"])
                history[ev["data"]["id"]] = [ev["data"]["status"]]
        changes = [e["data"] for e in deadline_hits if e["event"] == "order.status_changed"]
        while changes:
            step = next((c for c in changes
                         if state[c["order_id"]]["status"] == c["from"]), None)
            self.assertIsNotNone(step, f"no change continues the history: {changes}")
            changes.remove(step)
            self.assertEqual(step["user_id"], henry.id)
            state[step["order_id"]]["status"] = step["to"]
            history[step["order_id"]].append(step["to"])

        self.assertEqual(history, {delivered["id"]: ["pending", "shipped", "delivered"],
                                   cancelled["id"]: ["pending", "cancelled"],
                                   untouched["id"]: ["pending"]})
        for oid, rebuilt in state.items():
            status, _, now = get_order(henry, oid)
            keep = {"id", "user", "product_name", "quantity", "price", "total", "status",
                    "order_date"}
            self.assertEqual({k: rebuilt[k] for k in keep}, {k: now[k] for k in keep})
        placed = next(e for e in deadline_hits if e["event"] == "order.placed"
                      and e["data"]["id"] == delivered["id"])
        self.assertEqual(placed["data"], delivered)  # the representation, as placed
        self.assertEqual(placed["v"], 1)
        self.assertTrue(placed["occurred_at"].endswith("Z"))


class Idempotency(unittest.TestCase):
    def test_a_retried_place_has_one_effect(self):
        ivan = Account("ivan")
        key = {"Idempotency-Key": f"place-{ivan.id}"}
        body = {"product_name": "once", "quantity": 1, "price": "1.00"}
        first = http("POST", "/api/orders/", body, headers=key, token=ivan.token)
        second = http("POST", "/api/orders/", body, headers=key, token=ivan.token)
        self.assertEqual(first[0], 201, first)
        self.assertEqual((second[0], second[2]), (201, first[2]))
        self.assertEqual(http("GET", "/api/orders/", token=ivan.token)[2]["count"], 1)


if __name__ == "__main__":
    unittest.main()
