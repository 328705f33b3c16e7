-- Representations the planner can inline (issue 13). PostgreSQL inlines a
-- LANGUAGE sql scalar function into the calling statement only when its body
-- is one expression without a sub-SELECT and no more volatile than the
-- function says; a set-returning one (called in FROM) may hold sub-SELECTs.
-- Otherwise the body is parsed and planned again on every execution of the
-- statement that calls it, outside the statement's cached plan: that was
-- most of PostgreSQL's CPU on a GET.
--
-- The contract's JSON is unchanged: the same keys, values and order.

-- to_char is STABLE (it reads lc_time for some patterns): a function calling
-- it that claims IMMUTABLE is never inlined. Nothing indexes these.
CREATE OR REPLACE FUNCTION rfc3339(t timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

CREATE OR REPLACE FUNCTION day_text(d date) RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT to_char(d, 'YYYY-MM-DD') $$;

-- The contract's Order with its payment (p: the order's payments row, or NULL
-- when it has none), as one expression: inlined where a statement joins
-- "orders o LEFT JOIN payments p ON p.order_id = o.id".
CREATE FUNCTION order_json(o orders, p payments) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', o.id, 'user', o.user_id, 'product_name', o.product_name,
        'quantity', o.quantity, 'price', o.price::text, 'total', o.total::text,
        'status', o.status, 'order_date', rfc3339(o.order_date),
        'payment', CASE WHEN p.id IS NULL THEN NULL
                        ELSE json_build_object('id', p.id, 'status', p.status,
                                               'amount', p.amount::text) END) $$;

-- The same, looking the payment up: for RETURNING clauses of writes, where a
-- join is not possible (not inlined: writes are not the hot path).
CREATE OR REPLACE FUNCTION order_json(o orders) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT order_json(o, (SELECT p FROM payments p WHERE p.order_id = o.id)) $$;

-- The public profile and the nested lists of GET /api/users/{id}/ as
-- set-returning functions of one row, inlined when called in FROM
-- ("FROM users u, profile_rep(u, $2) p, profile_nested(u.id, $2) n"); the
-- scalar profile_json and profile_nested_json below call them, for lists and
-- RETURNING clauses.
CREATE FUNCTION profile_rep(u users, base text) RETURNS SETOF json
    LANGUAGE sql STABLE ROWS 1
    AS $$ SELECT json_build_object(
        'id', u.id, 'username', u.username, 'email', u.email,
        'first_name', u.first_name, 'last_name', u.last_name, 'role', u.role,
        'is_staff', u.is_staff, 'date_joined', rfc3339(u.date_joined),
        'about', u.about, 'linkedin', u.linkedin, 'github', u.github,
        'phone_no', u.phone_no, 'address', u.address,
        'designation', u.designation, 'company', u.company,
        'is_student', u.is_student, 'is_alumni', u.is_alumni, 'is_faculty', u.is_faculty,
        'profile_picture', media_url(u.profile_picture, base),
        'followers_count', (SELECT count(*) FROM follows f WHERE f.followee_id = u.id),
        'following_count', (SELECT count(*) FROM follows f WHERE f.follower_id = u.id)) $$;

CREATE FUNCTION profile_nested(uid bigint, base text) RETURNS SETOF json
    LANGUAGE sql STABLE ROWS 1
    AS $$ SELECT json_build_object(
        'educations', coalesce((SELECT json_agg(education_json(e, base) ORDER BY e.start_year DESC, e.id)
                                FROM educations e WHERE e.user_id = uid), '[]'),
        'certificates', coalesce((SELECT json_agg(certificate_json(c, base) ORDER BY c.date DESC, c.id)
                                  FROM certificates c WHERE c.user_id = uid), '[]'),
        'achievements', coalesce((SELECT json_agg(achievement_json(a, base) ORDER BY a.date DESC, a.id)
                                  FROM achievements a WHERE a.user_id = uid), '[]'),
        'resume', (SELECT resume_json(r, base) FROM resumes r WHERE r.user_id = uid)) $$;

CREATE OR REPLACE FUNCTION profile_json(u users, base text) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT j FROM profile_rep(u, base) j $$;

CREATE OR REPLACE FUNCTION profile_nested_json(uid bigint, base text) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT j FROM profile_nested(uid, base) j $$;

-- The caller's freshness check, folded into a read's first statement by the
-- worker runtime ("SELECT q.* FROM (<the handler's SELECT>) q WHERE
-- actor_check($n+1, $n+2, $n+3)": a qual without columns runs once, before
-- the query, in the query's snapshot). The runtime guessed is_staff and role
-- (what this user had on the last check, or the token's claims); a user who
-- is gone, inactive or no longer as guessed stops the statement with an
-- error the runtime answers (BKA01, BKA02) or runs the command again with
-- the fresh values (BKA03).
CREATE FUNCTION actor_check(uid bigint, staff boolean, r text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    u record;
BEGIN
    SELECT is_active, is_staff, role INTO u FROM users WHERE id = uid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'actor % not found', uid USING ERRCODE = 'BKA01';
    ELSIF NOT u.is_active THEN
        RAISE EXCEPTION 'actor % inactive', uid USING ERRCODE = 'BKA02';
    ELSIF u.is_staff IS DISTINCT FROM staff OR u.role IS DISTINCT FROM r THEN
        RAISE EXCEPTION 'actor % changed', uid USING ERRCODE = 'BKA03';
    END IF;
    RETURN true;
END $$;
