-- audience_members and audience_bits (users): what audience counts read instead of the users heap.
-- Every user of a company has a member number; for every term (an equality-type fact a filter
-- can ask for, see app.audience_terms) and every segment of 1024 member numbers, one bitmap
-- holds who has it. Triggers on users keep both exactly in step, in the same transaction as the
-- write. Request roles read neither table: they count through the view audience_bitmaps, which
-- masks the bits to the people the caller may segment (see audience_users.sql).
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE audience_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE audience_members FORCE ROW LEVEL SECURITY;
REVOKE ALL ON audience_members FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON audience_members TO app_auth;
GRANT SELECT ON audience_members TO app_profiles;

-- The maintenance trigger (a definer of app_auth) writes every company's rows.
DROP POLICY IF EXISTS audience_members_definer ON audience_members;
CREATE POLICY audience_members_definer ON audience_members FOR ALL TO app_auth USING (true) WITH CHECK (true);

-- The view owner reads the caller's company, nothing else, and writes nothing.
DROP POLICY IF EXISTS audience_members_profiles ON audience_members;
CREATE POLICY audience_members_profiles ON audience_members FOR SELECT TO app_profiles
    USING (company_id = app.current_company_id());

ALTER TABLE audience_bits ENABLE ROW LEVEL SECURITY;
ALTER TABLE audience_bits FORCE ROW LEVEL SECURITY;
REVOKE ALL ON audience_bits FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON audience_bits TO app_auth;
GRANT SELECT ON audience_bits TO app_profiles;

DROP POLICY IF EXISTS audience_bits_definer ON audience_bits;
CREATE POLICY audience_bits_definer ON audience_bits FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS audience_bits_profiles ON audience_bits;
CREATE POLICY audience_bits_profiles ON audience_bits FOR SELECT TO app_profiles
    USING (company_id = app.current_company_id());

-- A number as a term: the 16 hex digits of its float8 whose byte order is the numbers' order
-- (the sign bit flipped for positives, every bit for negatives), so -0 and 0 are one term. The
-- server writes the same digits for the numbers of filters (server/src/audience/bits.rs).
CREATE OR REPLACE FUNCTION app.audience_number(p_value double precision) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT lpad(to_hex((CASE WHEN p_value < 0 THEN ~('x' || encode(float8send(p_value), 'hex'))::bit(64)
                             ELSE ('x' || encode(float8send(p_value), 'hex'))::bit(64) | x'8000000000000000'
                        END)::bigint), 16, '0')
$$;
REVOKE ALL ON FUNCTION app.audience_number(double precision) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.audience_number(double precision) TO app_auth;

-- The terms of one user, each a fact an audience filter may ask for by equality or presence:
--   *                     everyone                 #shares            shares the whole profile
--   #role=<role>          #email_domain=<domain>   #is_active=<bool>  #last_active_at (ever active)
-- and for each attribute whose key could name a company field:
--   <key>:s  <key>:s=<text>   a string (<key>:d as well when it is shaped YYYY-MM-DD)
--   <key>:n  <key>:n=<hex>    a number float8 holds (0, or a magnitude from 1e-307 to 1e308)
--   <key>:b  <key>:b=<bool>   a boolean
--   <key>:a  <key>:a=<text>   an array, and each string in it
-- Texts longer than 500 characters (MAX_STRING_CHARS, the longest a filter compares) get no
-- value term: no filter can equal them. A string repeated in an array repeats its term. One plain
-- SELECT, so that PostgreSQL inlines it into the statements that list the terms of many users.
CREATE OR REPLACE FUNCTION app.audience_terms(p_attributes jsonb, p_role text, p_email text,
                                              p_is_active boolean,
                                              p_last_active_at timestamp with time zone,
                                              p_shares boolean)
    RETURNS SETOF text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT b.term
    FROM unnest(ARRAY['*',
                      CASE WHEN p_shares THEN '#shares' END,
                      CASE WHEN length(p_role) <= 500 THEN '#role=' || p_role END,
                      CASE WHEN length(lower(split_part(p_email, '@', 2))) <= 500
                           THEN '#email_domain=' || lower(split_part(p_email, '@', 2)) END,
                      '#is_active=' || p_is_active::text,
                      CASE WHEN p_last_active_at IS NOT NULL THEN '#last_active_at' END]) AS b (term)
    WHERE b.term IS NOT NULL
    UNION ALL
    SELECT a.key || v.suffix
    FROM jsonb_each(p_attributes) AS a (key, value)
    CROSS JOIN LATERAL unnest(CASE jsonb_typeof(a.value)
        WHEN 'string' THEN
            ARRAY[':s',
                  CASE WHEN length(a.value #>> '{}') <= 500 THEN ':s=' || (a.value #>> '{}') END,
                  CASE WHEN translate(a.value #>> '{}', '123456789', '000000000') = '0000-00-00'
                       THEN ':d' END]
        WHEN 'number' THEN
            CASE WHEN (a.value #>> '{}')::numeric = 0
                      OR abs((a.value #>> '{}')::numeric) BETWEEN 1e-307 AND 1e308
                 THEN ARRAY[':n', ':n=' || app.audience_number((a.value #>> '{}')::double precision)] END
        WHEN 'boolean' THEN ARRAY[':b', ':b=' || (a.value #>> '{}')]
        WHEN 'array' THEN
            array_prepend(':a', ARRAY(SELECT ':a=' || (e.value #>> '{}')
                                      FROM jsonb_array_elements(a.value) AS e (value)
                                      WHERE jsonb_typeof(e.value) = 'string'
                                        AND length(e.value #>> '{}') <= 500))
        END) AS v (suffix)
    WHERE v.suffix IS NOT NULL
      AND length(a.key) <= 63 AND ascii(a.key) BETWEEN 97 AND 122
      AND ltrim(a.key, 'abcdefghijklmnopqrstuvwxyz0123456789_') = ''
      AND a.key NOT IN ('role', 'email_domain', 'created_at', 'last_active_at', 'is_active')
$$;
REVOKE ALL ON FUNCTION app.audience_terms(jsonb, text, text, boolean, timestamp with time zone, boolean) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.audience_terms(jsonb, text, text, boolean, timestamp with time zone, boolean) TO app_auth;

-- Keeps audience_members and audience_bits in step with a statement on users (statement-level,
-- with its transition tables): newcomers take the next member numbers of their company (under a
-- lock per company, so that a number is handed out once), and the bits of every term a user
-- gains or loses flip. Flips are XORs applied in key order: writes of different users commute,
-- and two statements lock shared rows in the same order. A bitmap left empty goes.
CREATE OR REPLACE FUNCTION app.audience_users_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    v_company uuid;
    v_companies uuid[];
    v_terms text[];
    v_members integer[];
BEGIN
    -- Most updates of users change nothing audiences see (names, passwords): one look, and done.
    -- (Nested: a statement naming old_rows cannot even be planned for an insert.)
    IF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (
            SELECT 1 FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
            WHERE (o.company_id, o.attributes, o.role, o.email, o.is_active, o.last_active_at,
                   o.profile_visibility, o.visible_attributes)
                  IS DISTINCT FROM (n.company_id, n.attributes, n.role, n.email, n.is_active,
                                    n.last_active_at, n.profile_visibility, n.visible_attributes)) THEN
            RETURN NULL;
        END IF;
    END IF;

    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        FOR v_company IN
            SELECT DISTINCT n.company_id FROM new_rows n
            WHERE NOT EXISTS (SELECT 1 FROM audience_members m
                              WHERE m.company_id = n.company_id AND m.user_id = n.id)
            ORDER BY 1
        LOOP
            PERFORM pg_advisory_xact_lock(727274002, hashtext(v_company::text));
            INSERT INTO audience_members (company_id, user_id, member)
            SELECT v_company, n.id,
                   (SELECT COALESCE(max(m.member) + 1, 0) FROM audience_members m WHERE m.company_id = v_company)
                   + (row_number() OVER (ORDER BY n.id))::integer - 1
            FROM new_rows n
            WHERE n.company_id = v_company
              AND NOT EXISTS (SELECT 1 FROM audience_members m
                              WHERE m.company_id = v_company AND m.user_id = n.id);
        END LOOP;
    END IF;

    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(m.company_id), array_agg(t.term), array_agg(m.member)
          INTO v_companies, v_terms, v_members
        FROM new_rows u
        JOIN audience_members m ON m.company_id = u.company_id AND m.user_id = u.id
        CROSS JOIN LATERAL app.audience_terms(u.attributes, u.role, u.email, u.is_active, u.last_active_at,
                                             u.profile_visibility = 'company' AND u.visible_attributes IS NULL) AS t (term);
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(m.company_id), array_agg(t.term), array_agg(m.member)
          INTO v_companies, v_terms, v_members
        FROM old_rows u
        JOIN audience_members m ON m.company_id = u.company_id AND m.user_id = u.id
        CROSS JOIN LATERAL app.audience_terms(u.attributes, u.role, u.email, u.is_active, u.last_active_at,
                                             u.profile_visibility = 'company' AND u.visible_attributes IS NULL) AS t (term);
    ELSE
        WITH changed AS (
            SELECT o.id FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id
            WHERE (o.company_id, o.attributes, o.role, o.email, o.is_active, o.last_active_at,
                   o.profile_visibility, o.visible_attributes)
                  IS DISTINCT FROM (n.company_id, n.attributes, n.role, n.email, n.is_active, n.last_active_at,
                                    n.profile_visibility, n.visible_attributes)
            UNION
            SELECT n.id FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.id = n.id)
        ), before AS (
            SELECT m.company_id, m.member, t.term
            FROM old_rows u
            JOIN audience_members m ON m.company_id = u.company_id AND m.user_id = u.id
            CROSS JOIN LATERAL app.audience_terms(u.attributes, u.role, u.email, u.is_active, u.last_active_at,
                                                 u.profile_visibility = 'company' AND u.visible_attributes IS NULL) AS t (term)
            WHERE u.id IN (SELECT id FROM changed)
        ), after AS (
            SELECT m.company_id, m.member, t.term
            FROM new_rows u
            JOIN audience_members m ON m.company_id = u.company_id AND m.user_id = u.id
            CROSS JOIN LATERAL app.audience_terms(u.attributes, u.role, u.email, u.is_active, u.last_active_at,
                                                 u.profile_visibility = 'company' AND u.visible_attributes IS NULL) AS t (term)
            WHERE u.id IN (SELECT id FROM changed)
        ), flips AS (
            (SELECT * FROM before EXCEPT SELECT * FROM after)
            UNION ALL
            (SELECT * FROM after EXCEPT SELECT * FROM before)
        )
        SELECT array_agg(f.company_id), array_agg(f.term), array_agg(f.member)
          INTO v_companies, v_terms, v_members
        FROM flips f;
    END IF;

    IF v_terms IS NOT NULL THEN
        -- Not for a company being deleted: its bitmaps go with it.
        INSERT INTO audience_bits AS b (company_id, term, seg, bits)
        SELECT f.company_id, f.term, f.member / 1024, bit_or(set_bit(B'0'::bit(1024), f.member % 1024, 1))
        FROM unnest(v_companies, v_terms, v_members) AS f (company_id, term, member)
        WHERE EXISTS (SELECT 1 FROM companies c WHERE c.id = f.company_id)
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (company_id, term, seg) DO UPDATE SET bits = b.bits # EXCLUDED.bits;

        DELETE FROM audience_bits b
        USING (SELECT DISTINCT f.company_id, f.term, f.member / 1024 AS seg
               FROM unnest(v_companies, v_terms, v_members) AS f (company_id, term, member)) AS k
        WHERE b.company_id = k.company_id AND b.term = k.term AND b.seg = k.seg
          AND b.bits = B'0'::bit(1024);
    END IF;

    IF TG_OP = 'DELETE' THEN
        DELETE FROM audience_members m USING old_rows o
        WHERE m.company_id = o.company_id AND m.user_id = o.id;
    ELSIF TG_OP = 'UPDATE' THEN
        DELETE FROM audience_members m USING old_rows o
        WHERE m.company_id = o.company_id AND m.user_id = o.id
          AND NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.company_id = o.company_id AND n.id = o.id);
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.audience_users_changed() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.audience_users_changed() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER audience_users_inserted AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.audience_users_changed();
CREATE OR REPLACE TRIGGER audience_users_updated AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.audience_users_changed();
CREATE OR REPLACE TRIGGER audience_users_deleted AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.audience_users_changed();
