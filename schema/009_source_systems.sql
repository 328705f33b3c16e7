-- Issue 14: what the five source systems need beyond the unified contract.
--
-- full_name (002's CustomUser) is a real attribute of every user, kept
-- consistent with first_name and last_name by one trigger, whichever side a
-- write names: a write that changes full_name alone splits it (first word ->
-- first_name, the rest -> last_name); any other write joins first_name and
-- last_name into it. Me, the admin view and the profile show it.
ALTER TABLE users ADD COLUMN full_name varchar(301) NOT NULL DEFAULT '';

CREATE FUNCTION users_full_name() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    named boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        named := NEW.full_name <> '' AND NEW.first_name = '' AND NEW.last_name = '';
    ELSE
        named := NEW.full_name IS DISTINCT FROM OLD.full_name
                 AND NEW.first_name = OLD.first_name AND NEW.last_name = OLD.last_name;
    END IF;
    IF named THEN
        NEW.full_name := btrim(regexp_replace(NEW.full_name, '\s+', ' ', 'g'));
        NEW.first_name := left(split_part(NEW.full_name, ' ', 1), 150);
        NEW.last_name := left(btrim(substr(NEW.full_name, length(split_part(NEW.full_name, ' ', 1)) + 1)), 150);
    END IF;
    NEW.full_name := btrim(NEW.first_name || ' ' || NEW.last_name);
    RETURN NEW;
END $$;

CREATE TRIGGER users_full_name BEFORE INSERT OR UPDATE OF full_name, first_name, last_name ON users
    FOR EACH ROW EXECUTE FUNCTION users_full_name();

UPDATE users SET full_name = btrim(first_name || ' ' || last_name);

-- The representations below keep 008_inline.sql's rule: one expression, no
-- sub-SELECT outside a set-returning function, no more volatile than STABLE
-- (rfc3339 is), so the planner inlines them into the calling statement.

-- Me (001_platform.sql) with full_name.
CREATE OR REPLACE FUNCTION user_me(u users) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', u.id, 'username', u.username, 'email', u.email,
        'first_name', u.first_name, 'last_name', u.last_name, 'full_name', u.full_name,
        'role', u.role, 'is_staff', u.is_staff, 'is_superuser', u.is_superuser,
        'date_joined', rfc3339(u.date_joined)) $$;

-- The admin view (003_profiles.sql) with full_name.
CREATE OR REPLACE FUNCTION admin_user_json(u users) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', u.id, 'username', u.username, 'email', u.email,
        'first_name', u.first_name, 'last_name', u.last_name, 'full_name', u.full_name,
        'role', u.role, 'is_staff', u.is_staff, 'is_superuser', u.is_superuser,
        'date_joined', rfc3339(u.date_joined),
        'is_active', u.is_active, 'last_login', rfc3339(u.last_login)) $$;

-- The profile (008_inline.sql's set-returning form, inlined in FROM) with
-- full_name after the names.
CREATE OR REPLACE FUNCTION profile_rep(u users, base text) RETURNS SETOF json
    LANGUAGE sql STABLE ROWS 1
    AS $$ SELECT json_build_object(
        'id', u.id, 'username', u.username, 'email', u.email,
        'first_name', u.first_name, 'last_name', u.last_name, 'full_name', u.full_name,
        'role', u.role, 'is_staff', u.is_staff, 'date_joined', rfc3339(u.date_joined),
        'about', u.about, 'linkedin', u.linkedin, 'github', u.github,
        'phone_no', u.phone_no, 'address', u.address,
        'designation', u.designation, 'company', u.company,
        'is_student', u.is_student, 'is_alumni', u.is_alumni, 'is_faculty', u.is_faculty,
        'profile_picture', media_url(u.profile_picture, base),
        'followers_count', (SELECT count(*) FROM follows f WHERE f.followee_id = u.id),
        'following_count', (SELECT count(*) FROM follows f WHERE f.follower_id = u.id)) $$;
