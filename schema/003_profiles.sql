-- Profiles: the profile columns of users, follows, educations, certificates,
-- achievements, resumes, and uploaded files stored once under their SHA-256.
-- The representations clients see are built here, once (profile_json...).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Uploaded bytes, addressed by the hex SHA-256 of their content: the same
-- picture uploaded twice is one row. A row that nothing refers to any more is
-- removed by the triggers below (and, as a safety net, by the worker's
-- housekeeping).
CREATE TABLE media (
    key          text PRIMARY KEY CHECK (key ~ '^[0-9a-f]{64}$'),
    content_type text NOT NULL,
    size         int NOT NULL CHECK (size > 0),
    width        int,
    height       int,
    data         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- images and PDFs are compressed already: store them out of line without
-- trying pglz on them
ALTER TABLE media ALTER COLUMN data SET STORAGE EXTERNAL;

ALTER TABLE users
    ADD COLUMN about           text NOT NULL DEFAULT '',
    ADD COLUMN linkedin        varchar(200) NOT NULL DEFAULT '',
    ADD COLUMN github          varchar(200) NOT NULL DEFAULT '',
    ADD COLUMN phone_no        varchar(20) NOT NULL DEFAULT '',
    ADD COLUMN address         text NOT NULL DEFAULT '',
    ADD COLUMN designation     varchar(100) NOT NULL DEFAULT '',
    ADD COLUMN company         varchar(100) NOT NULL DEFAULT '',
    ADD COLUMN is_student      boolean NOT NULL DEFAULT false,
    ADD COLUMN is_alumni       boolean NOT NULL DEFAULT false,
    ADD COLUMN is_faculty      boolean NOT NULL DEFAULT false,
    ADD COLUMN profile_picture text REFERENCES media (key) ON DELETE RESTRICT,
    -- what ?search= looks in (DRF's SearchFilter over these five fields), in
    -- lower case so that a search is a plain LIKE (cheaper to recheck than
    -- ILIKE): search terms never hold whitespace, so a term matches this text
    -- exactly when it matches one of the fields
    ADD COLUMN search_text     text GENERATED ALWAYS AS (lower(
        username || ' ' || first_name || ' ' || last_name || ' ' || designation || ' ' || company
    )) STORED;

CREATE INDEX users_search_trgm ON users USING gin (search_text gin_trgm_ops);
CREATE INDEX users_active_role ON users (role, id) WHERE is_active;
CREATE INDEX users_profile_picture ON users (profile_picture);
CREATE INDEX users_staff ON users (id) WHERE is_staff AND is_active;

CREATE TABLE follows (
    follower_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CONSTRAINT no_self_follow CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id, follower_id);

CREATE TABLE educations (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    degree      varchar(100) NOT NULL,
    institution varchar(200) NOT NULL,
    start_year  smallint NOT NULL CHECK (start_year >= 0),
    end_year    smallint CHECK (end_year >= 0),
    CONSTRAINT education_years CHECK (end_year IS NULL OR end_year >= start_year)
);
CREATE INDEX educations_user ON educations (user_id, start_year DESC, id);

CREATE TABLE certificates (
    id      bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title   varchar(200) NOT NULL,
    issuer  varchar(200) NOT NULL,
    date    date,
    image   text REFERENCES media (key) ON DELETE RESTRICT,
    link    varchar(200) NOT NULL DEFAULT ''
);
CREATE INDEX certificates_user ON certificates (user_id, date DESC, id);
CREATE INDEX certificates_image ON certificates (image);

CREATE TABLE achievements (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       varchar(200) NOT NULL,
    description text NOT NULL DEFAULT '',
    date        date,
    image       text REFERENCES media (key) ON DELETE RESTRICT
);
CREATE INDEX achievements_user ON achievements (user_id, date DESC, id);
CREATE INDEX achievements_image ON achievements (image);

CREATE TABLE resumes (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    file        text NOT NULL REFERENCES media (key) ON DELETE RESTRICT,
    uploaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resumes_file ON resumes (file);

-- ---- media lifetime ---------------------------------------------------------

-- Removes the blob k unless something still refers to it. The foreign keys
-- (ON DELETE RESTRICT) decide: whoever drops the last reference removes the
-- blob, and a concurrent upload that refers to it (its FK check holds a key
-- share lock on the row) keeps it.
CREATE FUNCTION media_release(k text) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF k IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM media WHERE key = k;
EXCEPTION WHEN foreign_key_violation THEN
    NULL; -- still in use
END $$;

-- AFTER UPDATE / DELETE trigger: TG_ARGV[0] names the column holding a key.
CREATE FUNCTION media_release_old() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    old_key text := to_jsonb(OLD) ->> TG_ARGV[0];
BEGIN
    IF TG_OP = 'DELETE' OR old_key IS DISTINCT FROM (to_jsonb(NEW) ->> TG_ARGV[0]) THEN
        PERFORM media_release(old_key);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER users_media AFTER UPDATE OF profile_picture OR DELETE ON users
    FOR EACH ROW WHEN (OLD.profile_picture IS NOT NULL)
    EXECUTE FUNCTION media_release_old('profile_picture');
CREATE TRIGGER certificates_media AFTER UPDATE OF image OR DELETE ON certificates
    FOR EACH ROW WHEN (OLD.image IS NOT NULL)
    EXECUTE FUNCTION media_release_old('image');
CREATE TRIGGER achievements_media AFTER UPDATE OF image OR DELETE ON achievements
    FOR EACH ROW WHEN (OLD.image IS NOT NULL)
    EXECUTE FUNCTION media_release_old('image');
CREATE TRIGGER resumes_media AFTER UPDATE OF file OR DELETE ON resumes
    FOR EACH ROW EXECUTE FUNCTION media_release_old('file');

-- ---- representations ---------------------------------------------------------

-- A media URL as DRF's FileField gives it: absolute when the request's
-- scheme://host is known (base), else a path; null for no file.
CREATE FUNCTION media_url(k text, base text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN k IS NULL THEN NULL ELSE coalesce(base, '') || '/api/media/' || k END $$;

CREATE FUNCTION day_text(d date) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT to_char(d, 'YYYY-MM-DD') $$;

-- base is unused (an education has no file): every row function takes it, so
-- the worker's list code treats the three resources alike
CREATE FUNCTION education_json(e educations, base text) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', e.id, 'user', e.user_id, 'degree', e.degree, 'institution', e.institution,
        'start_year', e.start_year, 'end_year', e.end_year) $$;

CREATE FUNCTION certificate_json(c certificates, base text) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', c.id, 'user', c.user_id, 'title', c.title, 'issuer', c.issuer,
        'date', day_text(c.date), 'image', media_url(c.image, base), 'link', c.link) $$;

CREATE FUNCTION achievement_json(a achievements, base text) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', a.id, 'user', a.user_id, 'title', a.title, 'description', a.description,
        'date', day_text(a.date), 'image', media_url(a.image, base)) $$;

CREATE FUNCTION resume_json(r resumes, base text) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'user', r.user_id, 'file', media_url(r.file, base),
        'uploaded_at', rfc3339(r.uploaded_at)) $$;

-- The public profile with every field; the worker removes email, phone_no
-- and address unless the viewer is the owner or staff.
CREATE FUNCTION profile_json(u users, base text) RETURNS json
    LANGUAGE sql STABLE
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

-- The nested lists of GET /api/users/{id}/, in their stable orders.
CREATE FUNCTION profile_nested_json(uid bigint, base text) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'educations', coalesce((SELECT json_agg(education_json(e, base) ORDER BY e.start_year DESC, e.id)
                                FROM educations e WHERE e.user_id = uid), '[]'),
        'certificates', coalesce((SELECT json_agg(certificate_json(c, base) ORDER BY c.date DESC, c.id)
                                  FROM certificates c WHERE c.user_id = uid), '[]'),
        'achievements', coalesce((SELECT json_agg(achievement_json(a, base) ORDER BY a.date DESC, a.id)
                                  FROM achievements a WHERE a.user_id = uid), '[]'),
        'resume', (SELECT resume_json(r, base) FROM resumes r WHERE r.user_id = uid)) $$;

-- The admin view of a user: Me plus is_active and last_login.
CREATE FUNCTION admin_user_json(u users) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', u.id, 'username', u.username, 'email', u.email,
        'first_name', u.first_name, 'last_name', u.last_name, 'role', u.role,
        'is_staff', u.is_staff, 'is_superuser', u.is_superuser,
        'date_joined', rfc3339(u.date_joined),
        'is_active', u.is_active, 'last_login', rfc3339(u.last_login)) $$;
