-- Orders and their payments (the order and payment workers share them).
-- Money is exact NUMERIC with 2 places: price as DRF's DecimalField(10, 2),
-- total and amount as DecimalField(15, 2) (10000 x 99999999.99 needs 14
-- digits). The representations clients and subscribers see are built here,
-- once (order_json, payment_json).

CREATE TABLE orders (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    product_name varchar(100) NOT NULL CHECK (product_name <> ''),
    quantity     int NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    price        numeric(10, 2) NOT NULL CHECK (price >= 0.01),
    -- the database computes the total: no client or worker can disagree with it
    total        numeric(15, 2) GENERATED ALWAYS AS (quantity * price) STORED,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'shipped', 'delivered', 'cancelled')),
    order_date   timestamptz NOT NULL DEFAULT now()
);
-- the caller's orders newest first, with and without ?status=
CREATE INDEX orders_user_date ON orders (user_id, order_date DESC, id DESC);
CREATE INDEX orders_user_status_date ON orders (user_id, status, order_date DESC, id DESC);
-- staff with ?all=1, with and without ?status=
CREATE INDEX orders_date ON orders (order_date DESC, id DESC);
CREATE INDEX orders_status_date ON orders (status, order_date DESC, id DESC);

-- One payment per order: the unique constraint is the last word, the order's
-- row lock (taken by payment.initiate first) makes the usual answer a clean
-- validation error instead of a constraint violation.
CREATE TABLE payments (
    id           bigserial PRIMARY KEY,
    order_id     bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    amount       numeric(15, 2) NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'completed', 'failed')),
    payment_date timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_order_id_key UNIQUE (order_id)
);
CREATE INDEX payments_date ON payments (payment_date DESC, id DESC);

-- The contract's Payment: {id, order, amount, status, payment_date}.
CREATE FUNCTION payment_json(p payments) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', p.id, 'order', p.order_id, 'amount', p.amount::text, 'status', p.status,
        'payment_date', rfc3339(p.payment_date)) $$;

-- The contract's Order, its payment as {id, status, amount} or null.
CREATE FUNCTION order_json(o orders) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', o.id, 'user', o.user_id, 'product_name', o.product_name,
        'quantity', o.quantity, 'price', o.price::text, 'total', o.total::text,
        'status', o.status, 'order_date', rfc3339(o.order_date),
        'payment', (SELECT json_build_object('id', p.id, 'status', p.status,
                                             'amount', p.amount::text)
                      FROM payments p WHERE p.order_id = o.id)) $$;
