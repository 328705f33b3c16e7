"""List conventions a data console needs (issue 15 item 7), as DRF's filter
backends: ?ordering= (unknown fields ignored), exact filters, date ranges,
?search=; invalid typed values are 400 as django-filter answers them."""
import unittest

from helpers import amqp_call, db, http, login, register, unique


class User:
    def __init__(self, name="ls", staff=False, **fields):
        self.username = unique(name)
        self.email = f"{self.username}@example.com"
        register(self.username, email=self.email, **fields)
        if staff:
            with db() as conn, conn.cursor() as cur:
                cur.execute("UPDATE users SET is_staff = true WHERE username = %s",
                            (self.username,))
        body = login(self.username)
        self.token, self.id = body["access"], body["user"]["id"]

    def call(self, method, path, body=None, **kw):
        return http(method, path, body, token=self.token, **kw)

    def get(self, path):
        status, _, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body


class Orders(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.staff, cls.u = User(staff=True), User()
        cls.orders = []
        for name, qty, price in (("Bed", 1, "300.00"), ("Apple", 10, "1.00"),
                                 ("Chair", 2, "40.00")):
            status, _, o = cls.u.call("POST", "/api/orders/",
                                      {"product_name": name, "quantity": qty, "price": price})
            assert status == 201
            cls.orders.append(o)
        status, _, p = cls.u.call("POST", "/api/payments/",
                                  {"order": cls.orders[0]["id"], "amount": "300.00"})
        assert status == 201
        cls.payment = p

    def names(self, path):
        return [o["product_name"] for o in self.u.get(path)["results"]]

    def test_ordering(self):
        self.assertEqual(self.names("/api/orders/?ordering=-total"), ["Bed", "Chair", "Apple"])
        self.assertEqual(self.names("/api/orders/?ordering=total"), ["Apple", "Chair", "Bed"])
        self.assertEqual(self.names("/api/orders/?ordering=product_name"),
                         ["Apple", "Bed", "Chair"])
        # unknown fields are dropped (OrderingFilter): the default, newest first
        self.assertEqual(self.names("/api/orders/?ordering=nope,-user_id"),
                         ["Chair", "Apple", "Bed"])
        self.assertEqual(self.names("/api/orders/?ordering=order_date"), ["Bed", "Apple", "Chair"])

    def test_filters_and_ranges(self):
        self.assertEqual(self.names("/api/orders/?status=pending&ordering=id"),
                         ["Bed", "Apple", "Chair"])
        self.assertEqual(self.names("/api/orders/?order_date__gte=2999-01-01"), [])
        self.assertEqual(len(self.names("/api/orders/?order_date__lte=2999-01-01")), 3)
        self.assertEqual(self.names("/api/orders/?search=chai"), ["Chair"])
        # another user's orders stay out of sight for a non-staff caller
        self.assertEqual(self.names(f"/api/orders/?user={self.staff.id}"), [])
        # staff, everyone's, by user
        body = self.staff.get(f"/api/orders/?all=1&user={self.u.id}&ordering=-price")
        self.assertEqual([o["product_name"] for o in body["results"]], ["Bed", "Chair", "Apple"])
        for bad, field in (("order_date__gte=yesterday", "order_date__gte"),
                           ("user=me", "user")):
            status, _, body = self.u.call("GET", f"/api/orders/?{bad}")
            self.assertEqual(status, 400, bad)
            self.assertIn(field, body)
        # an unknown status still matches nothing, as before
        self.assertEqual(self.names("/api/orders/?status=lost&ordering=id"), [])

    def test_payments(self):
        body = self.u.get("/api/payments/?status=pending&ordering=-amount")
        self.assertEqual([p["id"] for p in body["results"]], [self.payment["id"]])
        body = self.staff.get(f"/api/payments/?user={self.u.id}")
        self.assertEqual([p["id"] for p in body["results"]], [self.payment["id"]])
        body = self.staff.get(f"/api/payments/?order={self.orders[1]['id']}")
        self.assertEqual(body["count"], 0)
        status, _, body = self.u.call("GET", "/api/payments/?status=lost")
        self.assertEqual(status, 400)
        self.assertIn("status", body)

    def test_over_amqp(self):
        reply = amqp_call("order.list", {"ordering": "-total", "page_size": 2}, token=self.u.token)
        self.assertEqual(reply["status"], 200)
        self.assertEqual([o["product_name"] for o in reply["body"]["results"]], ["Bed", "Chair"])
        self.assertEqual(reply["body"]["count"], 3)


class Users(unittest.TestCase):
    def test_admin_filters_search_and_ordering(self):
        tag = unique("zz")[:12]
        staff = User(staff=True)
        a = User(first_name=tag, last_name="Alpha", role="teacher")
        b = User(first_name=tag, last_name="Beta", role="student")
        with db() as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET is_active = false WHERE id = %s", (b.id,))

        def ids(q):
            return [u["id"] for u in staff.get(f"/api/admin/users/?search={tag}&{q}")["results"]]

        self.assertEqual(ids("ordering=-last_name"), [b.id, a.id])
        self.assertEqual(ids("ordering=last_name"), [a.id, b.id])
        self.assertEqual(ids("is_active=false"), [b.id])
        self.assertEqual(ids("is_active=true&role=teacher"), [a.id])
        self.assertEqual(ids("is_staff=true"), [])
        self.assertEqual(ids("date_joined__gte=2000-01-01&ordering=id"), [a.id, b.id])
        # the staff search finds emails too
        body = staff.get(f"/api/admin/users/?search={a.email}")
        self.assertEqual([u["id"] for u in body["results"]], [a.id])
        status, _, body = staff.call("GET", "/api/admin/users/?is_active=perhaps")
        self.assertEqual(status, 400)
        self.assertIn("is_active", body)
        # the public list: active users only, private fields hidden
        body = a.get(f"/api/users/?search={tag}&ordering=-id")
        self.assertEqual([u["id"] for u in body["results"]], [a.id])
        self.assertIn("email", body["results"][0])  # its owner sees it
        other = User()
        body = other.get(f"/api/users/?search={tag}&ordering=-id")
        self.assertNotIn("email", body["results"][0])
        body = staff.get(f"/api/users/?search={tag}&ordering=-id")
        self.assertIn("email", body["results"][0])  # staff see it


class ProfileItems(unittest.TestCase):
    def test_educations_ordering_and_ranges(self):
        u = User()
        for degree, start in (("BSc", 2010), ("MSc", 2014), ("PhD", 2018)):
            status, _, _ = u.call("POST", "/api/educations/",
                                  {"degree": degree, "institution": "Uni", "start_year": start})
            self.assertEqual(status, 201)
        base = f"/api/educations/?user={u.id}"
        self.assertEqual([e["degree"] for e in u.get(base)["results"]], ["PhD", "MSc", "BSc"])
        self.assertEqual([e["degree"] for e in u.get(base + "&ordering=start_year")["results"]],
                         ["BSc", "MSc", "PhD"])
        self.assertEqual([e["degree"] for e in u.get(base + "&start_year__gte=2012"
                                                            "&ordering=degree")["results"]],
                         ["MSc", "PhD"])
        self.assertEqual([e["degree"] for e in u.get(base + "&search=msc")["results"]], ["MSc"])
        status, _, body = u.call("GET", base + "&start_year__lte=soon")
        self.assertEqual(status, 400)

    def test_certificates_by_date(self):
        u = User()
        for title, date in (("A", "2020-01-01"), ("B", "2022-06-30")):
            status, _, _ = u.call("POST", "/api/certificates/",
                                  {"title": title, "issuer": "X", "date": date})
            self.assertEqual(status, 201)
        body = u.get(f"/api/certificates/?user={u.id}&date__gte=2021-01-01")
        self.assertEqual([c["title"] for c in body["results"]], ["B"])
        body = u.get(f"/api/achievements/?user={u.id}&ordering=-date")
        self.assertEqual(body["count"], 0)


if __name__ == "__main__":
    unittest.main()
