-- The `app` schema: who may use it, the per-transaction identity the policies read, what the
-- built-in roles may do (app.may), and the opening of request transactions.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

-- The login role reaches nothing: no function, no schema of the application, no TEMP.
-- All it can do is SET ROLE to app_user, app_anon or app_worker.
REVOKE ALL ON SCHEMA app FROM PUBLIC, app_authenticator;
GRANT USAGE ON SCHEMA app TO app_user, app_anon, app_auth, app_profiles, app_worker;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO app_auth, app_profiles;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC, app_authenticator, app_user, app_anon, '
                   'app_auth, app_profiles, app_worker', current_database());
END
$$;

-- An unset or empty variable means NULL: no rows match, nothing errors.
CREATE OR REPLACE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $$;
REVOKE ALL ON FUNCTION app.current_user_id() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.current_user_id() TO app_user, app_anon, app_auth, app_profiles, app_worker;

CREATE OR REPLACE FUNCTION app.current_company_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.company_id', true), '')::uuid $$;
REVOKE ALL ON FUNCTION app.current_company_id() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.current_company_id() TO app_user, app_anon, app_auth, app_profiles, app_worker;

CREATE OR REPLACE FUNCTION app.current_role() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.role', true), '') $$;
REVOKE ALL ON FUNCTION app.current_role() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.current_role() TO app_user, app_anon, app_auth, app_profiles, app_worker;

-- Keeps updated_at current on every UPDATE.
CREATE OR REPLACE FUNCTION app.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
REVOKE ALL ON FUNCTION app.touch_updated_at() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

-- Who may do what, as policies/policy.csv says for the built-in roles. Row rules that depend on
-- a permission ask app.may(object, action) instead of naming roles, so custom roles get the same
-- rows as the permissions they were granted. A test derives its expectations from
-- policies/policy.csv and fails when this table and the file disagree.
DELETE FROM app.builtin_grants;
INSERT INTO app.builtin_grants (role, object, action)
SELECT r.role, g.object, g.action
FROM (VALUES ('member', 0), ('manager', 1), ('admin', 2)) r (role, rank)
JOIN (VALUES
    ('company', 'read', 0), ('user', 'read', 0), ('user', 'update', 0), ('preset', 'manage', 0),
    ('audience', 'read', 0), ('friendship', 'manage', 0), ('conversation', 'manage', 0),
    ('message', 'manage', 0), ('session', 'manage', 0), ('activity', 'manage', 0),
    ('activity_kind', 'read', 0),
    ('audience', 'manage', 1), ('invitation', 'read', 1),
    ('company', 'manage', 2), ('user', 'manage', 2), ('invitation', 'manage', 2),
    ('activity_kind', 'manage', 2), ('training_data', 'read', 2)
) g (object, action, rank) ON g.rank <= r.rank;

REVOKE ALL ON app.builtin_grants FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT ON app.builtin_grants TO app_user, app_auth;

-- What the caller's role may do, as app.begin_request set it for the transaction
-- (`app.grants`: `,object:action,...,`, the built-in role's grants or the custom role's, read
-- once per request); `manage` grants every action on its object. An unset variable grants
-- nothing. An inlinable SQL function over a variable of the transaction, so that the policies
-- that ask it read no table: on Citus they run on the worker that holds the row, where reading
-- another table would be a distributed query from within one (refused), and a policy may hold
-- no sub-select at all.
CREATE OR REPLACE FUNCTION app.may(p_object text, p_action text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT COALESCE(pg_catalog.strpos(pg_catalog.current_setting('app.grants', true),
                                      ',' || p_object || ':' || p_action || ',') > 0
                    OR pg_catalog.strpos(pg_catalog.current_setting('app.grants', true),
                                         ',' || p_object || ':manage,') > 0,
                    false)
$$;
REVOKE ALL ON FUNCTION app.may(text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.may(text, text) TO app_user;

-- The caller's accepted friends and the people in a blocked pair with the caller (either way),
-- as app.begin_request set them for the transaction (`app.friend_ids`, `app.blocked_ids`: uuid
-- array literals): what the activity policies ask about the owner of a row, without reading
-- friendships. Unset: NULL, so that neither a friend's row nor any row that a block might
-- hide passes the policy (closed).
CREATE OR REPLACE FUNCTION app.friend_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(pg_catalog.current_setting('app.friend_ids', true), '')::uuid[] $$;
REVOKE ALL ON FUNCTION app.friend_ids() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.friend_ids() TO app_user, app_profiles;

CREATE OR REPLACE FUNCTION app.blocked_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(pg_catalog.current_setting('app.blocked_ids', true), '')::uuid[] $$;
REVOKE ALL ON FUNCTION app.blocked_ids() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.blocked_ids() TO app_user, app_profiles;

-- Whether `p_user` is among them, as the policies ask it of every row they check. A text search
-- in the variable, not `= ANY(app.friend_ids())`: PostgreSQL evaluates a policy's expression row
-- by row, and casting a list of 200 friends to uuid[] on each row cost about 0.4 ms a row, the
-- search about 13 µs. The variable is the text of a uuid[] (`{uuid,uuid,...}`), whose elements
-- are 36-character uuids separated by commas: a 36-character uuid text holds no comma, so it
-- matches an element whole or not at all. Unset: NULL, as above (closed).
CREATE OR REPLACE FUNCTION app.is_friend(p_user uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT pg_catalog.strpos(NULLIF(pg_catalog.current_setting('app.friend_ids', true), ''), p_user::text) > 0 $$;
REVOKE ALL ON FUNCTION app.is_friend(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.is_friend(uuid) TO app_user, app_profiles;

CREATE OR REPLACE FUNCTION app.is_blocked(p_user uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT pg_catalog.strpos(NULLIF(pg_catalog.current_setting('app.blocked_ids', true), ''), p_user::text) > 0 $$;
REVOKE ALL ON FUNCTION app.is_blocked(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.is_blocked(uuid) TO app_user, app_profiles;

--
-- Definer functions that run a query are written in PL/pgSQL, not SQL: PostgreSQL never inlines
-- a SQL function that has SECURITY DEFINER or a SET clause, and it parses and plans such a
-- function's body again at every call, while PL/pgSQL keeps its plans for the session. For
-- app.identity_is_live and app.request_grants, which every request runs, that was most of
-- PostgreSQL's work for a page of users (BENCHMARKS.md).

-- The grants of role `p_role` in company `p_company`, as app.may reads them: the built-in
-- role's (app.builtin_grants) or the custom role's of that name (roles.grants), as
-- `,object:action,...,` (`,` when there are none; a custom grant whose object or action is not
-- a plain name, which could smuggle in a separator, is left out). A definer, so that it holds whatever the
-- caller may read; called by app.begin_request only.
CREATE OR REPLACE FUNCTION app.request_grants(p_company uuid, p_role text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    -- A custom role never has a built-in role's name (roles.name's CHECK): one of the two.
    IF p_role IN ('admin', 'manager', 'member') THEN
        RETURN ',' || COALESCE((
            SELECT string_agg(b.object || ':' || b.action, ',' ORDER BY b.object, b.action) || ','
            FROM app.builtin_grants b WHERE b.role = p_role), '');
    END IF;
    RETURN ',' || COALESCE((
        SELECT string_agg(DISTINCT (e.grant_ ->> 'object') || ':' || (e.grant_ ->> 'action'), ',') || ','
        FROM public.roles r CROSS JOIN LATERAL jsonb_array_elements(r.grants) e (grant_)
        WHERE r.company_id = p_company AND r.name = p_role
          AND e.grant_ ->> 'object' ~ '^[a-z_]+$' AND e.grant_ ->> 'action' ~ '^[a-z_]+$'), '');
END
$$;
ALTER FUNCTION app.request_grants(uuid, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.request_grants(uuid, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.request_grants(uuid, text) TO app_user;

-- Whether a token's identity is live: an active member of that company with that role, with a
-- live session. A definer, so that it holds whatever the role may read.
CREATE OR REPLACE FUNCTION app.identity_is_live(p_user uuid, p_company uuid, p_role text, p_session uuid)
    RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM users u
        WHERE u.id = p_user AND u.company_id = p_company AND u.role = p_role AND u.is_active
    ) AND EXISTS (
        SELECT 1 FROM sessions s
        WHERE s.id = p_session AND s.company_id = p_company AND s.user_id = p_user
          AND s.revoked_at IS NULL AND s.absolute_expires_at > now()
    );
END
$$;
ALTER FUNCTION app.identity_is_live(uuid, uuid, text, uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.identity_is_live(uuid, uuid, text, uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.identity_is_live(uuid, uuid, text, uuid) TO app_user;

-- Request transactions: the server runs `SET LOCAL ROLE app_user` and then this, as app_user, in
-- one round trip. It sets the identity the policies read and raises `28000` unless the token's
-- user is an active member of that company with that role and its session is live; then it
-- sets what the policies ask of the caller beyond the row (app.may's grants, the friends and
-- blocks of the activity policies), read once here so that no policy reads a table. (Anonymous
-- requests only `SET LOCAL ROLE app_anon`.) No SET clause on purpose: names are
-- schema-qualified instead.
-- The identity is set with `SET LOCAL`, one command each, not with set_config: on Citus, the
-- SET LOCAL commands of a transaction are repeated on every connection it opens to a worker
-- (`citus.propagate_set_commands = 'local'`, turned on here for this transaction only: turned
-- on for the whole server, the SET LOCAL ROLE above, which shares its query text with BEGIN and
-- this call, would be repeated with all of that text), so that the same policies see the same
-- identity on the node that holds the rows. On plain PostgreSQL the citus setting is an unused
-- placeholder and SET LOCAL is what set_config(..., true) is.
CREATE OR REPLACE FUNCTION app.begin_request(p_user uuid, p_company uuid, p_role text, p_session uuid, p_read_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    friends uuid[];
    blocked uuid[];
BEGIN
    PERFORM pg_catalog.set_config('citus.propagate_set_commands', 'local', true);
    IF p_read_only THEN
        SET LOCAL transaction_read_only = on;
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL app.user_id = %L', p_user);
    EXECUTE pg_catalog.format('SET LOCAL app.company_id = %L', p_company);
    EXECUTE pg_catalog.format('SET LOCAL app.role = %L', p_role);
    IF NOT app.identity_is_live(p_user, p_company, p_role, p_session) THEN
        RAISE EXCEPTION 'the session has ended, or its user is no longer an active member of that company with that role'
            USING ERRCODE = '28000';
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL app.grants = %L', app.request_grants(p_company, p_role));
    SELECT r.friends, r.blocked INTO friends, blocked FROM app.request_relationships() r;
    EXECUTE pg_catalog.format('SET LOCAL app.friend_ids = %L', friends);
    EXECUTE pg_catalog.format('SET LOCAL app.blocked_ids = %L', blocked);
END
$$;
REVOKE ALL ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) TO app_user;
