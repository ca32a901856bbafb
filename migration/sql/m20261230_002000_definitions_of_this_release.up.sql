-- The definitions of this release, as migration/sql/current/ holds them now (a frozen copy, in
-- the order migration/src/current.rs applies them): the activities, training-data, company
-- OpenID, directory and Citus changes defined some of their grants, policies, triggers and
-- functions in the current files only. Every statement is re-runnable, so this changes nothing
-- where they were already applied. Its down changes nothing: the downs of the migrations that
-- created those objects drop them.
GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

-- migration/sql/current/app.sql ---------------------------------------------------------------
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

--
-- Definer functions that run a query are written in PL/pgSQL, not SQL: PostgreSQL never inlines
-- a SQL function that has SECURITY DEFINER or a SET clause, and it parses and plans such a
-- function's body again at every statement that calls it, while PL/pgSQL keeps its plans for
-- the session. For app.may and app.identity_is_live, which every request runs, that was most of
-- PostgreSQL's work for a page of users (BENCHMARKS.md).
CREATE OR REPLACE FUNCTION app.may(p_object text, p_action text) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM app.builtin_grants g
        WHERE g.role = app.current_role() AND g.object = p_object AND g.action IN (p_action, 'manage')
    ) OR EXISTS (
        SELECT 1 FROM public.roles r CROSS JOIN LATERAL jsonb_array_elements(r.grants) e (grant_)
        WHERE r.company_id = app.current_company_id() AND r.name = app.current_role()
          AND e.grant_ ->> 'object' = p_object AND e.grant_ ->> 'action' IN (p_action, 'manage')
    );
END
$$;
ALTER FUNCTION app.may(text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.may(text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.may(text, text) TO app_user;

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
-- user is an active member of that company with that role and its session is live. (Anonymous
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
END
$$;
REVOKE ALL ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) TO app_user;

-- migration/sql/current/auth.sql --------------------------------------------------------------
-- Signing in, sessions, password resets and invitations: the SECURITY DEFINER functions (of the
-- NOLOGIN role app_auth) that run before there is a user, for anonymous request transactions.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

-- 'active', 'revoked' (or expired) or 'missing': what the session cache stores, for session
-- p_session of company p_company (the access token names both).
-- (PL/pgSQL, as the definer functions that run a query are: see app.may in app.sql.)
CREATE OR REPLACE FUNCTION app.session_state(p_company uuid, p_session uuid) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN COALESCE((
        SELECT CASE WHEN s.revoked_at IS NULL AND s.absolute_expires_at > now() AND u.is_active
                    THEN 'active' ELSE 'revoked' END
        FROM sessions s JOIN users u ON u.company_id = s.company_id AND u.id = s.user_id
        WHERE s.company_id = p_company AND s.id = p_session), 'missing');
END
$$;
ALTER FUNCTION app.session_state(uuid, uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.session_state(uuid, uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.session_state(uuid, uuid) TO app_anon;

-- The user of an address, of whichever company: the directory login_emails by its key, then
-- that company's user (each a lookup by a key; see directories.sql).
CREATE OR REPLACE FUNCTION app.login_lookup(p_email text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text, password_hash text, is_active boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE e login_emails%ROWTYPE;
BEGIN
    SELECT * INTO e FROM login_emails l WHERE l.email = lower(btrim(p_email));
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT u.id, u.company_id, u.role, u.password_hash, u.is_active
        FROM users u WHERE u.company_id = e.company_id AND u.id = e.user_id;
END
$$;
ALTER FUNCTION app.login_lookup(text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.login_lookup(text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.login_lookup(text) TO app_anon;

CREATE OR REPLACE FUNCTION app.sign_up(p_company uuid, p_company_name text, p_user uuid, p_email text,
                                       p_password_hash text, p_display_name text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    INSERT INTO companies (id, name) VALUES (p_company, btrim(p_company_name));
    INSERT INTO users (id, company_id, email, password_hash, display_name, role)
        VALUES (p_user, p_company, btrim(p_email), p_password_hash, btrim(p_display_name), 'admin');
END
$$;
ALTER FUNCTION app.sign_up(uuid, text, uuid, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.sign_up(uuid, text, uuid, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.sign_up(uuid, text, uuid, text, text, text) TO app_anon;

CREATE OR REPLACE FUNCTION app.create_session(p_session uuid, p_user uuid, p_company uuid, p_token_hash text,
                                              p_expires_at timestamptz, p_absolute_expires_at timestamptz,
                                              p_user_agent text, p_ip text, p_fingerprint text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user AND company_id = p_company AND is_active) THEN
        RETURN false;
    END IF;
    INSERT INTO sessions (id, company_id, user_id, expires_at, absolute_expires_at, user_agent, ip, fingerprint_hash)
        VALUES (p_session, p_company, p_user, p_expires_at, p_absolute_expires_at, p_user_agent, p_ip, p_fingerprint);
    INSERT INTO refresh_tokens (token_hash, company_id, session_id, user_id)
        VALUES (p_token_hash, p_company, p_session, p_user);
    RETURN true;
END
$$;
ALTER FUNCTION app.create_session(uuid, uuid, uuid, text, timestamptz, timestamptz, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.create_session(uuid, uuid, uuid, text, timestamptz, timestamptz, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.create_session(uuid, uuid, uuid, text, timestamptz, timestamptz, text, text, text) TO app_anon;

-- Rotates a refresh token of company p_company (the server reads it from the token: see
-- server/src/auth/tokens.rs; every row is looked up by its company). The successor of a token
-- is derived from it (an HMAC the server computes), so p_next_hash is the same for every
-- presentation of the same token: a retry of the direct predecessor within the grace window
-- gets the same live family, never a second.
-- outcome: rotated | replayed | invalid | revoked | expired | inactive | fingerprint | reused
CREATE OR REPLACE FUNCTION app.refresh_session(p_company uuid, p_token_hash text, p_next_hash text,
                                               p_fingerprint text, p_grace interval, p_sliding interval)
    RETURNS TABLE (outcome text, session_id uuid, user_id uuid, company_id uuid, role text, expires_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    t refresh_tokens%ROWTYPE;
    s sessions%ROWTYPE;
    u users%ROWTYPE;
    next_expiry timestamptz;
BEGIN
    SELECT * INTO t FROM refresh_tokens r WHERE r.company_id = p_company AND r.token_hash = p_token_hash;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::timestamptz;
        RETURN;
    END IF;
    -- Serialize refreshes of one family.
    SELECT * INTO s FROM sessions WHERE sessions.company_id = t.company_id AND id = t.session_id FOR UPDATE;
    SELECT * INTO t FROM refresh_tokens r WHERE r.company_id = p_company AND r.token_hash = p_token_hash;
    SELECT * INTO u FROM users WHERE users.company_id = s.company_id AND id = s.user_id;
    IF s.revoked_at IS NOT NULL THEN
        RETURN QUERY SELECT 'revoked'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    IF now() >= s.expires_at OR now() >= s.absolute_expires_at THEN
        RETURN QUERY SELECT 'expired'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    IF NOT u.is_active THEN
        UPDATE sessions SET revoked_at = now(), revoked_reason = 'inactive' WHERE sessions.company_id = s.company_id AND id = s.id;
        RETURN QUERY SELECT 'inactive'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    IF s.fingerprint_hash <> p_fingerprint THEN
        UPDATE sessions SET revoked_at = now(), revoked_reason = 'fingerprint' WHERE sessions.company_id = s.company_id AND id = s.id;
        RETURN QUERY SELECT 'fingerprint'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    next_expiry := least(now() + p_sliding, s.absolute_expires_at);
    IF t.superseded_at IS NULL THEN
        UPDATE refresh_tokens r SET superseded_at = now() WHERE r.company_id = s.company_id AND r.token_hash = p_token_hash;
        INSERT INTO refresh_tokens (token_hash, company_id, session_id, user_id)
            VALUES (p_next_hash, s.company_id, s.id, s.user_id);
        UPDATE sessions SET last_used_at = now(), expires_at = next_expiry WHERE sessions.company_id = s.company_id AND id = s.id;
        RETURN QUERY SELECT 'rotated'::text, s.id, s.user_id, s.company_id, u.role, next_expiry;
        RETURN;
    END IF;
    IF now() - t.superseded_at <= p_grace AND EXISTS (
        SELECT 1 FROM refresh_tokens r
        WHERE r.company_id = s.company_id AND r.session_id = s.id AND r.token_hash = p_next_hash
          AND r.superseded_at IS NULL
    ) THEN
        RETURN QUERY SELECT 'replayed'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    UPDATE sessions SET revoked_at = now(), revoked_reason = 'reuse' WHERE sessions.company_id = s.company_id AND id = s.id;
    RETURN QUERY SELECT 'reused'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
END
$$;
ALTER FUNCTION app.refresh_session(uuid, text, text, text, interval, interval) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.refresh_session(uuid, text, text, text, interval, interval) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.refresh_session(uuid, text, text, text, interval, interval) TO app_anon;

-- The token is for the user of address p_email, when that user is an active member of p_company
-- (the company the server put in the token).
CREATE OR REPLACE FUNCTION app.create_password_reset(p_company uuid, p_email text, p_token_hash text,
                                                     p_expires_at timestamptz, p_subject text, p_body text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    e login_emails%ROWTYPE;
    u users%ROWTYPE;
BEGIN
    SELECT * INTO e FROM login_emails WHERE email = lower(btrim(p_email)) AND company_id = p_company;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    SELECT * INTO u FROM users WHERE company_id = e.company_id AND id = e.user_id AND is_active;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO password_resets (company_id, user_id, token_hash, expires_at)
        VALUES (u.company_id, u.id, p_token_hash, p_expires_at);
    INSERT INTO outbound_emails (company_id, recipient, template, subject, body)
        VALUES (u.company_id, u.email, 'password_reset', p_subject, p_body);
    RETURN true;
END
$$;
ALTER FUNCTION app.create_password_reset(uuid, text, text, timestamptz, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.create_password_reset(uuid, text, text, timestamptz, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.create_password_reset(uuid, text, text, timestamptz, text, text) TO app_anon;

-- Uses a reset token once: sets the password and revokes every session of that user. The token
-- came by e-mail, so the address is verified too.
-- Returns the revoked session ids (and the user) or nothing when the token is not usable.
CREATE OR REPLACE FUNCTION app.consume_password_reset(p_company uuid, p_token_hash text, p_password_hash text)
    RETURNS TABLE (user_id uuid, company_id uuid, revoked_session uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE r password_resets%ROWTYPE;
BEGIN
    SELECT * INTO r FROM password_resets
        WHERE password_resets.company_id = p_company AND token_hash = p_token_hash AND used_at IS NULL
          AND expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE password_resets SET used_at = now() WHERE password_resets.company_id = r.company_id AND id = r.id;
    UPDATE users SET password_hash = p_password_hash, email_verified_at = COALESCE(email_verified_at, now())
     WHERE id = r.user_id AND users.company_id = r.company_id AND is_active;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
        WITH revoked AS (
            UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_reset'
            WHERE sessions.user_id = r.user_id AND sessions.company_id = r.company_id AND revoked_at IS NULL
            RETURNING sessions.id
        )
        SELECT r.user_id, r.company_id, revoked.id FROM revoked
        UNION ALL SELECT r.user_id, r.company_id, NULL::uuid;
END
$$;
ALTER FUNCTION app.consume_password_reset(uuid, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.consume_password_reset(uuid, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.consume_password_reset(uuid, text, text) TO app_anon;

CREATE OR REPLACE FUNCTION app.accept_invitation(p_company uuid, p_token_hash text, p_user uuid, p_password_hash text,
                                                 p_display_name text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE i invitations%ROWTYPE;
BEGIN
    SELECT * INTO i FROM invitations
        WHERE invitations.company_id = p_company AND token_hash = p_token_hash AND accepted_at IS NULL
          AND expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The invitation came to that address: it is verified.
    INSERT INTO users (id, company_id, email, password_hash, display_name, role, email_verified_at)
        VALUES (p_user, i.company_id, i.email, p_password_hash, btrim(p_display_name), i.role, now());
    UPDATE invitations SET accepted_at = now(), accepted_user_id = p_user
     WHERE invitations.company_id = i.company_id AND id = i.id;
    RETURN QUERY SELECT p_user, i.company_id, i.role;
END
$$;
ALTER FUNCTION app.accept_invitation(uuid, text, uuid, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.accept_invitation(uuid, text, uuid, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.accept_invitation(uuid, text, uuid, text, text) TO app_anon;

-- The e-mail a usable reset token or invitation is for (to check the password policy first).
CREATE OR REPLACE FUNCTION app.pending_password_reset(p_company uuid, p_token_hash text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT u.email FROM password_resets r JOIN users u ON u.company_id = r.company_id AND u.id = r.user_id
    WHERE r.company_id = p_company AND r.token_hash = p_token_hash AND r.used_at IS NULL AND r.expires_at > now()
      AND u.is_active
$$;
ALTER FUNCTION app.pending_password_reset(uuid, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.pending_password_reset(uuid, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.pending_password_reset(uuid, text) TO app_anon;

CREATE OR REPLACE FUNCTION app.pending_invitation(p_company uuid, p_token_hash text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT i.email FROM invitations i
    WHERE i.company_id = p_company AND i.token_hash = p_token_hash AND i.accepted_at IS NULL AND i.expires_at > now()
$$;
ALTER FUNCTION app.pending_invitation(uuid, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.pending_invitation(uuid, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.pending_invitation(uuid, text) TO app_anon;

-- Stores a verification token for the current address of user p_user, unless it is verified,
-- and queues the e-mail with its link; the user's earlier tokens stop working. Whether it did.
CREATE OR REPLACE FUNCTION app.create_email_verification(p_user uuid, p_company uuid, p_token_hash text,
                                                         p_expires_at timestamptz, p_subject text, p_body text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE u users%ROWTYPE;
BEGIN
    SELECT * INTO u FROM users WHERE id = p_user AND company_id = p_company AND email_verified_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE email_verifications SET expires_at = now()
     WHERE user_id = u.id AND company_id = u.company_id AND used_at IS NULL AND expires_at > now();
    INSERT INTO email_verifications (company_id, user_id, email, token_hash, expires_at)
        VALUES (u.company_id, u.id, u.email, p_token_hash, p_expires_at);
    INSERT INTO outbound_emails (company_id, recipient, template, subject, body)
        VALUES (u.company_id, u.email, 'email_verification', p_subject, p_body);
    RETURN true;
END
$$;
ALTER FUNCTION app.create_email_verification(uuid, uuid, text, timestamptz, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.create_email_verification(uuid, uuid, text, timestamptz, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.create_email_verification(uuid, uuid, text, timestamptz, text, text) TO app_anon;

-- Uses a verification token once: while the address it was sent to is still its user's, that
-- address is verified, and a member who joined by the company's domain becomes active. The user,
-- or no row.
CREATE OR REPLACE FUNCTION app.verify_email(p_company uuid, p_token_hash text)
    RETURNS TABLE (user_id uuid, company_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE v email_verifications%ROWTYPE;
BEGIN
    SELECT * INTO v FROM email_verifications
     WHERE email_verifications.company_id = p_company AND token_hash = p_token_hash AND used_at IS NULL
       AND expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE email_verifications SET used_at = now() WHERE email_verifications.company_id = v.company_id AND id = v.id;
    UPDATE users SET email_verified_at = COALESCE(email_verified_at, now()),
                     is_active = is_active OR awaiting_verification, awaiting_verification = false
     WHERE id = v.user_id AND users.company_id = v.company_id AND lower(email) = lower(v.email);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT v.user_id, v.company_id;
END
$$;
ALTER FUNCTION app.verify_email(uuid, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.verify_email(uuid, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.verify_email(uuid, text) TO app_anon;

-- User p_user (active) changes their address to p_email: it is unverified until the link
-- queued to it is followed, and their pending password resets and verification links stop
-- working. Whether the user was changed.
CREATE OR REPLACE FUNCTION app.change_email(p_user uuid, p_company uuid, p_email text, p_token_hash text,
                                            p_expires_at timestamptz, p_subject text, p_body text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE users SET email = btrim(p_email), email_verified_at = NULL
     WHERE id = p_user AND company_id = p_company AND is_active;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE password_resets SET expires_at = now()
     WHERE user_id = p_user AND company_id = p_company AND used_at IS NULL AND expires_at > now();
    UPDATE email_verifications SET expires_at = now()
     WHERE user_id = p_user AND company_id = p_company AND used_at IS NULL AND expires_at > now();
    INSERT INTO email_verifications (company_id, user_id, email, token_hash, expires_at)
        VALUES (p_company, p_user, btrim(p_email), p_token_hash, p_expires_at);
    INSERT INTO outbound_emails (company_id, recipient, template, subject, body)
        VALUES (p_company, btrim(p_email), 'email_verification', p_subject, p_body);
    RETURN true;
END
$$;
ALTER FUNCTION app.change_email(uuid, uuid, text, text, timestamptz, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.change_email(uuid, uuid, text, text, timestamptz, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.change_email(uuid, uuid, text, text, timestamptz, text, text) TO app_anon;

-- Signs up user p_user as a member of the company that verified the domain of p_email, if one
-- did: inactive until the address is verified (app.verify_email). The company, or NULL when no
-- company verified that domain.
CREATE OR REPLACE FUNCTION app.sign_up_member(p_user uuid, p_email text, p_password_hash text, p_display_name text)
    RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE v_company uuid;
BEGIN
    SELECT v.company_id INTO v_company FROM verified_domains v
     WHERE v.domain = lower(split_part(btrim(p_email), '@', 2));
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO users (id, company_id, email, password_hash, display_name, role, is_active, awaiting_verification)
        VALUES (p_user, v_company, btrim(p_email), p_password_hash, btrim(p_display_name), 'member', false, true);
    RETURN v_company;
END
$$;
ALTER FUNCTION app.sign_up_member(uuid, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.sign_up_member(uuid, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.sign_up_member(uuid, text, text, text) TO app_anon;

-- The signed-in caller, an active admin whose own address is verified and in the domain of
-- their company's domain p_id, confirms it: from then on it counts (one company per domain).
-- outcome: confirmed | missing | not_admin | unverified | other_domain | taken
CREATE OR REPLACE FUNCTION app.confirm_company_domain(p_id uuid)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    d company_domains%ROWTYPE;
    u users%ROWTYPE;
BEGIN
    SELECT * INTO d FROM company_domains
     WHERE id = p_id AND company_id = app.current_company_id() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'missing';
    END IF;
    SELECT * INTO u FROM users
     WHERE id = app.current_user_id() AND company_id = d.company_id AND is_active;
    IF NOT FOUND OR u.role <> 'admin' THEN
        RETURN 'not_admin';
    END IF;
    IF u.email_verified_at IS NULL THEN
        RETURN 'unverified';
    END IF;
    IF lower(split_part(u.email, '@', 2)) <> d.domain THEN
        RETURN 'other_domain';
    END IF;
    IF d.verified_at IS NOT NULL THEN
        RETURN 'confirmed';
    END IF;
    IF EXISTS (SELECT 1 FROM verified_domains v WHERE v.domain = d.domain) THEN
        RETURN 'taken';
    END IF;
    UPDATE company_domains SET verified_at = now(), verified_by = u.id WHERE company_id = d.company_id AND id = d.id;
    RETURN 'confirmed';
END
$$;
ALTER FUNCTION app.confirm_company_domain(uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.confirm_company_domain(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.confirm_company_domain(uuid) TO app_user;

-- Signs up user p_user into the company of a live invite link, with the link's role, counting
-- one use: the row lock of the UPDATE serialises concurrent uses, so they never exceed max_uses,
-- and a sign-up that fails (a taken address) counts none. The user, or no row when the link is
-- unknown, revoked, expired or used up.
CREATE OR REPLACE FUNCTION app.accept_invite_link(p_company uuid, p_token_hash text, p_user uuid, p_email text,
                                                  p_password_hash text, p_display_name text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE l invite_links%ROWTYPE;
BEGIN
    UPDATE invite_links SET uses = uses + 1
     WHERE invite_links.company_id = p_company AND token_hash = p_token_hash AND revoked_at IS NULL
       AND expires_at > now() AND uses < max_uses
    RETURNING * INTO l;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO users (id, company_id, email, password_hash, display_name, role)
        VALUES (p_user, l.company_id, btrim(p_email), p_password_hash, btrim(p_display_name), l.role);
    RETURN QUERY SELECT p_user, l.company_id, l.role;
END
$$;
ALTER FUNCTION app.accept_invite_link(uuid, text, uuid, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.accept_invite_link(uuid, text, uuid, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.accept_invite_link(uuid, text, uuid, text, text, text) TO app_anon;

-- migration/sql/current/companies.sql ---------------------------------------------------------
-- companies: members read their company; who manages it renames it and sets its training-data
-- policy (the default for conversations, and whether its people may choose otherwise). Created by
-- app.sign_up.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
REVOKE ALL ON companies FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON companies TO app_auth;
GRANT SELECT, UPDATE (name, training_default_allowed, training_users_may_change) ON companies TO app_user;

DROP POLICY IF EXISTS companies_definer ON companies;
CREATE POLICY companies_definer ON companies FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS companies_select ON companies;
CREATE POLICY companies_select ON companies FOR SELECT TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'read')));

DROP POLICY IF EXISTS companies_update ON companies;
CREATE POLICY companies_update ON companies FOR UPDATE TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'update')))
    WITH CHECK (id = (SELECT app.current_company_id()));

CREATE OR REPLACE TRIGGER companies_touch_updated_at BEFORE UPDATE ON companies
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/company_llm_providers.sql ---------------------------------------------
-- company_llm_providers: a company's own LLM provider (base URL, model, API key). Its admins
-- (whoever manages the company) read and write it; the API key is stored only sealed by the
-- server (AES-256-GCM, see server/src/secrets.rs), and no request role may read the sealed
-- column: requests see `has_api_key`. Background work (app_worker) reads the row of the
-- company whose reply it streams, and rotate-secrets re-seals keys, through definer functions
-- of app_auth.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE company_llm_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE company_llm_providers FORCE ROW LEVEL SECURITY;
REVOKE ALL ON company_llm_providers FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE (api_key_sealed) ON company_llm_providers TO app_auth;
GRANT SELECT (company_id, base_url, model, has_api_key, created_at, updated_at) ON company_llm_providers TO app_user;
GRANT INSERT (company_id, base_url, model, api_key_sealed) ON company_llm_providers TO app_user;
GRANT UPDATE (base_url, model, api_key_sealed) ON company_llm_providers TO app_user;
GRANT DELETE ON company_llm_providers TO app_user;

DROP POLICY IF EXISTS company_llm_providers_select ON company_llm_providers;
CREATE POLICY company_llm_providers_select ON company_llm_providers FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_llm_providers_insert ON company_llm_providers;
CREATE POLICY company_llm_providers_insert ON company_llm_providers FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_llm_providers_update ON company_llm_providers;
CREATE POLICY company_llm_providers_update ON company_llm_providers FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS company_llm_providers_delete ON company_llm_providers;
CREATE POLICY company_llm_providers_delete ON company_llm_providers FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

-- The definer role reads every company's row and replaces a sealed key, nothing else.
DROP POLICY IF EXISTS company_llm_providers_definer_select ON company_llm_providers;
CREATE POLICY company_llm_providers_definer_select ON company_llm_providers FOR SELECT TO app_auth
    USING (true);

DROP POLICY IF EXISTS company_llm_providers_definer_reseal ON company_llm_providers;
CREATE POLICY company_llm_providers_definer_reseal ON company_llm_providers FOR UPDATE TO app_auth
    USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER company_llm_providers_touch_updated_at BEFORE UPDATE ON company_llm_providers
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- The provider of the company a reply streams for, its key sealed: the server opens it.
CREATE OR REPLACE FUNCTION app.company_llm_provider(p_company uuid)
    RETURNS TABLE (base_url text, model text, api_key_sealed text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
    SELECT p.base_url, p.model, p.api_key_sealed FROM company_llm_providers p WHERE p.company_id = p_company;
END
$$;
ALTER FUNCTION app.company_llm_provider(uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.company_llm_provider(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.company_llm_provider(uuid) TO app_worker;

-- rotate-secrets: the sealed keys after (p_after_company, p_after_row), in that order, locked
-- until the end of the caller's transaction. A company's row is the company: row_id = company_id.
CREATE OR REPLACE FUNCTION app.sealed_company_llm_keys(p_after_company uuid, p_after_row uuid, p_limit integer)
    RETURNS TABLE (company_id uuid, row_id uuid, sealed text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
    SELECT p.company_id, p.company_id, p.api_key_sealed
      FROM company_llm_providers p
     WHERE p.api_key_sealed IS NOT NULL
       AND (p_after_company IS NULL OR p.company_id > p_after_company)
     ORDER BY p.company_id
     LIMIT p_limit
       FOR UPDATE;
END
$$;
ALTER FUNCTION app.sealed_company_llm_keys(uuid, uuid, integer) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.sealed_company_llm_keys(uuid, uuid, integer) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.sealed_company_llm_keys(uuid, uuid, integer) TO app_worker;

-- rotate-secrets: replaces a sealed key by its re-sealed form, unless it changed meanwhile.
CREATE OR REPLACE FUNCTION app.reseal_company_llm_key(p_company uuid, p_row uuid, p_old text, p_new text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF p_row IS DISTINCT FROM p_company OR p_new IS NULL THEN
        RETURN false;
    END IF;
    UPDATE company_llm_providers SET api_key_sealed = p_new
     WHERE company_id = p_company AND api_key_sealed = p_old;
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.reseal_company_llm_key(uuid, uuid, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.reseal_company_llm_key(uuid, uuid, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.reseal_company_llm_key(uuid, uuid, text, text) TO app_worker;

-- migration/sql/current/users.sql -------------------------------------------------------------
-- users: people are created by invitation or sign-up (definer functions) and never deleted by a
-- request; e-mail addresses do not change through requests, and request roles read no e-mail
-- or password hash (user_profiles and the audience views show what a caller may see). Which
-- column of whose row may change is decided by app.users_guard.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
REVOKE ALL ON users FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON users TO app_auth;
GRANT SELECT ON users TO app_profiles;
GRANT SELECT (id, company_id, display_name, role, is_active, created_at, updated_at,
              last_active_at, profile_visibility, visible_attributes) ON users TO app_user;
GRANT UPDATE (display_name, attributes, role, is_active, password_hash, profile_visibility,
              visible_attributes) ON users TO app_user;

DROP POLICY IF EXISTS users_definer ON users;
CREATE POLICY users_definer ON users FOR ALL TO app_auth USING (true) WITH CHECK (true);

-- The profile role reads the caller's company, nothing else, and writes nothing.
DROP POLICY IF EXISTS users_profiles ON users;
CREATE POLICY users_profiles ON users FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS users_select ON users;
CREATE POLICY users_select ON users FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (id = (SELECT app.current_user_id()) OR (SELECT app.may('user', 'read'))));

DROP POLICY IF EXISTS users_update_self ON users;
CREATE POLICY users_update_self ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS users_update_managed ON users;
CREATE POLICY users_update_managed ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('user', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

-- What a request may change in a user row: its own profile and privacy (`user update`) and its
-- own password (`session update`, as changePassword); another's profile, role and active state
-- only as someone who manages users, and never its own role; and the company keeps an active
-- admin. Definer functions and the owner are not requests.
CREATE OR REPLACE FUNCTION app.users_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    me uuid := app.current_user_id();
    manages boolean;
BEGIN
    IF current_user <> 'app_user' THEN
        RETURN NEW;
    END IF;
    manages := app.may('user', 'manage');
    IF (NEW.role IS DISTINCT FROM OLD.role OR NEW.is_active IS DISTINCT FROM OLD.is_active) AND NOT manages THEN
        RAISE EXCEPTION 'only those who manage users change roles and active state' USING ERRCODE = '42501';
    END IF;
    IF NEW.role IS DISTINCT FROM OLD.role AND OLD.id = me THEN
        RAISE EXCEPTION 'nobody can change their own role' USING ERRCODE = '42501';
    END IF;
    IF (NEW.display_name IS DISTINCT FROM OLD.display_name OR NEW.attributes IS DISTINCT FROM OLD.attributes)
       AND NOT (manages OR (OLD.id = me AND app.may('user', 'update'))) THEN
        RAISE EXCEPTION 'only the user themselves or those who manage users change a profile' USING ERRCODE = '42501';
    END IF;
    IF (NEW.profile_visibility IS DISTINCT FROM OLD.profile_visibility
        OR NEW.visible_attributes IS DISTINCT FROM OLD.visible_attributes)
       AND NOT (OLD.id = me AND app.may('user', 'update')) THEN
        RAISE EXCEPTION 'only the user themselves changes their privacy settings' USING ERRCODE = '42501';
    END IF;
    IF NEW.password_hash IS DISTINCT FROM OLD.password_hash AND NOT (OLD.id = me AND app.may('session', 'update')) THEN
        RAISE EXCEPTION 'only the user themselves changes their password' USING ERRCODE = '42501';
    END IF;
    IF OLD.role = 'admin' AND OLD.is_active AND NOT (NEW.role = 'admin' AND NEW.is_active) THEN
        -- Serialises with concurrent demotions, as the API does.
        PERFORM 1 FROM companies WHERE id = OLD.company_id FOR NO KEY UPDATE;
        IF NOT EXISTS (SELECT 1 FROM users u WHERE u.company_id = OLD.company_id AND u.id <> OLD.id
                       AND u.role = 'admin' AND u.is_active) THEN
            RAISE EXCEPTION 'the last active admin of a company cannot be demoted or deactivated'
                USING ERRCODE = '23514';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.users_guard() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER users_guard BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION app.users_guard();

CREATE OR REPLACE TRIGGER users_touch_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- The caller's own password hash, for changePassword (app_user reads no password_hash).
CREATE OR REPLACE FUNCTION app.current_password_hash() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN (SELECT u.password_hash FROM users u
            WHERE u.id = app.current_user_id() AND u.company_id = app.current_company_id() AND u.is_active);
END
$$;
ALTER FUNCTION app.current_password_hash() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.current_password_hash() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.current_password_hash() TO app_user;

-- migration/sql/current/sessions.sql ----------------------------------------------------------
-- sessions: created by definer functions. A request sees and revokes its user's own live
-- sessions, or any of the company's as someone who manages users (deactivation); a revoked
-- session never comes back and none is extended.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
REVOKE ALL ON sessions FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON sessions TO app_auth;
GRANT SELECT, UPDATE (revoked_at, revoked_reason) ON sessions TO app_user;

DROP POLICY IF EXISTS sessions_definer ON sessions;
CREATE POLICY sessions_definer ON sessions FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS sessions_select ON sessions;
CREATE POLICY sessions_select ON sessions FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND ((user_id = (SELECT app.current_user_id()) AND (SELECT app.may('session', 'read')))
                OR (SELECT app.may('user', 'manage'))));

DROP POLICY IF EXISTS sessions_revoke ON sessions;
CREATE POLICY sessions_revoke ON sessions FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND revoked_at IS NULL
           AND ((user_id = (SELECT app.current_user_id()) AND (SELECT app.may('session', 'delete')))
                OR (SELECT app.may('user', 'manage'))))
    WITH CHECK (revoked_at IS NOT NULL);

CREATE OR REPLACE TRIGGER sessions_touch_updated_at BEFORE UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/refresh_tokens.sql ----------------------------------------------------
-- refresh_tokens: only the definer functions (app_auth) touch them; request roles have no grant.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
REVOKE ALL ON refresh_tokens FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO app_auth;

DROP POLICY IF EXISTS refresh_tokens_definer ON refresh_tokens;
CREATE POLICY refresh_tokens_definer ON refresh_tokens FOR ALL TO app_auth USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER refresh_tokens_touch_updated_at BEFORE UPDATE ON refresh_tokens
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/password_resets.sql ---------------------------------------------------
-- password_resets: only the definer functions (app_auth) touch them; request roles have no grant.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_resets FORCE ROW LEVEL SECURITY;
REVOKE ALL ON password_resets FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON password_resets TO app_auth;

DROP POLICY IF EXISTS password_resets_definer ON password_resets;
CREATE POLICY password_resets_definer ON password_resets FOR ALL TO app_auth USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER password_resets_touch_updated_at BEFORE UPDATE ON password_resets
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/email_verifications.sql -----------------------------------------------
-- email_verifications: one-time tokens that verify a user's address; only the definer
-- functions (app_auth) touch them; request roles have no grant.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE email_verifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_verifications FORCE ROW LEVEL SECURITY;
REVOKE ALL ON email_verifications FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON email_verifications TO app_auth;

DROP POLICY IF EXISTS email_verifications_definer ON email_verifications;
CREATE POLICY email_verifications_definer ON email_verifications FOR ALL TO app_auth USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER email_verifications_touch_updated_at BEFORE UPDATE ON email_verifications
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/invitations.sql -------------------------------------------------------
-- invitations: read by whoever may read invitations, made by whoever may create them, in their
-- own name; accepted only through app.accept_invitation.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
REVOKE ALL ON invitations FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON invitations TO app_auth;
GRANT SELECT, INSERT ON invitations TO app_user;

DROP POLICY IF EXISTS invitations_definer ON invitations;
CREATE POLICY invitations_definer ON invitations FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS invitations_select ON invitations;
CREATE POLICY invitations_select ON invitations FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'read')));

DROP POLICY IF EXISTS invitations_insert ON invitations;
CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND invited_by = (SELECT app.current_user_id()) AND accepted_at IS NULL
                AND accepted_user_id IS NULL);

CREATE OR REPLACE TRIGGER invitations_touch_updated_at BEFORE UPDATE ON invitations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/identities.sql --------------------------------------------------------
-- identities: identities of OpenID providers linked to users. Sign-in finds, links and creates
-- them through the definer functions below (app_anon calls them, before there is a caller); a
-- request sees its user's own and removes them, never the last way its user has to sign in
-- (app.identities_guard, whatever the request says).
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE identities FORCE ROW LEVEL SECURITY;
REVOKE ALL ON identities FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON identities TO app_auth;
GRANT SELECT, DELETE ON identities TO app_user;

DROP POLICY IF EXISTS identities_definer ON identities;
CREATE POLICY identities_definer ON identities FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS identities_select ON identities;
CREATE POLICY identities_select ON identities FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('session', 'read')));

DROP POLICY IF EXISTS identities_delete ON identities;
CREATE POLICY identities_delete ON identities FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('session', 'delete')));

-- Whether the caller (only ever asked of the caller themselves) keeps a way to sign in once
-- identity p_removed is gone: a password, or another linked identity. The user's row is locked
-- first, so that two removals at once are decided one after the other.
CREATE OR REPLACE FUNCTION app.keeps_a_way_in(p_user uuid, p_company uuid, p_removed uuid)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF p_user IS DISTINCT FROM app.current_user_id() OR p_company IS DISTINCT FROM app.current_company_id() THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM users WHERE id = p_user AND company_id = p_company FOR UPDATE;
    RETURN EXISTS (SELECT 1 FROM users u
                   WHERE u.id = p_user AND u.company_id = p_company AND u.password_hash IS NOT NULL)
        OR EXISTS (SELECT 1 FROM identities i
                   WHERE i.company_id = p_company AND i.user_id = p_user AND i.id <> p_removed);
END
$$;
ALTER FUNCTION app.keeps_a_way_in(uuid, uuid, uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.keeps_a_way_in(uuid, uuid, uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.keeps_a_way_in(uuid, uuid, uuid) TO app_user;

-- A request never removes its user's last way to sign in. Definer functions, the owner and the
-- cascade of a removed user are not requests.
CREATE OR REPLACE FUNCTION app.identities_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF current_user = 'app_user' AND NOT app.keeps_a_way_in(OLD.user_id, OLD.company_id, OLD.id) THEN
        RAISE EXCEPTION 'the last way to sign in (no password, no other identity) cannot be removed'
            USING ERRCODE = '42501';
    END IF;
    RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION app.identities_guard() FROM PUBLIC;

CREATE OR REPLACE TRIGGER identities_keep_a_way_in BEFORE DELETE ON identities
    FOR EACH ROW EXECUTE FUNCTION app.identities_guard();

-- The user an identity is linked to, of whichever company (the directory oidc_subjects by its
-- key, then that company's rows; see directories.sql); notes that it was used.
CREATE OR REPLACE FUNCTION app.oidc_identity(p_issuer text, p_subject text)
    RETURNS TABLE (identity_id uuid, user_id uuid, company_id uuid, role text, is_active boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE d oidc_subjects%ROWTYPE;
BEGIN
    SELECT * INTO d FROM oidc_subjects s WHERE s.issuer = p_issuer AND s.subject = p_subject;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
        UPDATE identities i SET last_used_at = now()
        FROM users u
        WHERE i.company_id = d.company_id AND i.id = d.identity_id
          AND u.company_id = i.company_id AND u.id = i.user_id
        RETURNING i.id, u.id, u.company_id, u.role, u.is_active;
END
$$;
ALTER FUNCTION app.oidc_identity(text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.oidc_identity(text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.oidc_identity(text, text) TO app_anon;

-- Links an identity to an active user. outcome: linked | already (to this user) | taken (by
-- another user) | no_user (no such active user)
CREATE OR REPLACE FUNCTION app.oidc_link(p_id uuid, p_user uuid, p_company uuid, p_provider text,
                                         p_issuer text, p_subject text, p_email text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    linked_company uuid;
    linked_user uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user AND company_id = p_company AND is_active) THEN
        RETURN 'no_user';
    END IF;
    BEGIN
        INSERT INTO identities (id, company_id, user_id, provider, issuer, subject, email, last_used_at)
            VALUES (p_id, p_company, p_user, p_provider, p_issuer, p_subject, p_email, now());
        RETURN 'linked';
    EXCEPTION WHEN unique_violation THEN
        -- Linked already (oidc_subjects_pkey, see directories.sql): to whom?
        SELECT s.company_id, s.user_id INTO linked_company, linked_user
          FROM oidc_subjects s WHERE s.issuer = p_issuer AND s.subject = p_subject;
    END;
    IF linked_company = p_company AND linked_user = p_user THEN
        RETURN 'already';
    END IF;
    RETURN 'taken';
END
$$;
ALTER FUNCTION app.oidc_link(uuid, uuid, uuid, text, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.oidc_link(uuid, uuid, uuid, text, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.oidc_link(uuid, uuid, uuid, text, text, text, text) TO app_anon;

-- A first sign-in with a server-wide provider: a new company, its first admin (with no
-- password) and the identity, as app.sign_up does for a password. The address is verified:
-- a first sign-in is taken only with an address its provider asserts as verified.
CREATE OR REPLACE FUNCTION app.oidc_sign_up(p_company uuid, p_company_name text, p_user uuid, p_email text,
                                            p_display_name text, p_identity uuid, p_provider text,
                                            p_issuer text, p_subject text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    INSERT INTO companies (id, name) VALUES (p_company, btrim(p_company_name));
    INSERT INTO users (id, company_id, email, password_hash, display_name, role, email_verified_at)
        VALUES (p_user, p_company, btrim(p_email), NULL, btrim(p_display_name), 'admin', now());
    INSERT INTO identities (id, company_id, user_id, provider, issuer, subject, email, last_used_at)
        VALUES (p_identity, p_company, p_user, p_provider, p_issuer, p_subject, btrim(p_email), now());
END
$$;
ALTER FUNCTION app.oidc_sign_up(uuid, text, uuid, text, text, uuid, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.oidc_sign_up(uuid, text, uuid, text, text, uuid, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.oidc_sign_up(uuid, text, uuid, text, text, uuid, text, text, text) TO app_anon;

-- A first sign-in with a provider of a company: a new member of that company with the
-- provider's role (and no password), and the identity; the address verified, as above.
CREATE OR REPLACE FUNCTION app.oidc_join(p_company uuid, p_user uuid, p_email text, p_display_name text,
                                         p_role text, p_identity uuid, p_provider text, p_issuer text,
                                         p_subject text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    INSERT INTO users (id, company_id, email, password_hash, display_name, role, email_verified_at)
        VALUES (p_user, p_company, btrim(p_email), NULL, btrim(p_display_name), p_role, now());
    INSERT INTO identities (id, company_id, user_id, provider, issuer, subject, email, last_used_at)
        VALUES (p_identity, p_company, p_user, p_provider, p_issuer, p_subject, btrim(p_email), now());
END
$$;
ALTER FUNCTION app.oidc_join(uuid, uuid, text, text, text, uuid, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.oidc_join(uuid, uuid, text, text, text, uuid, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.oidc_join(uuid, uuid, text, text, text, uuid, text, text, text) TO app_anon;

-- migration/sql/current/company_oidc_providers.sql --------------------------------------------
-- company_oidc_providers: OpenID providers a company's admins configure for it (issuer, client
-- id, client secret, the role new users get, the e-mail domains allowed, whether a verified
-- address links to its existing account). Its admins (whoever manages the company) read and
-- write it; the client secret is stored only sealed by the server (AES-256-GCM, see
-- server/src/secrets.rs) and no request role may read the sealed column: requests see
-- `has_client_secret`. The sign-in flow (app_anon, before there is a caller) finds a provider by
-- its company and name through app.company_oidc_provider, which answers what the flow needs and
-- never the secret; app_worker reads the sealed secret to exchange a code and re-seals it for
-- rotate-secrets; new members and links by address go through definer functions that check the
-- provider's rules again.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE company_oidc_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE company_oidc_providers FORCE ROW LEVEL SECURITY;
REVOKE ALL ON company_oidc_providers FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE (client_secret_sealed) ON company_oidc_providers TO app_auth;
GRANT SELECT (company_id, id, name, issuer, client_id, has_client_secret, role, allowed_domains,
              link_verified_email, created_at, updated_at) ON company_oidc_providers TO app_user;
GRANT INSERT (company_id, id, name, issuer, client_id, client_secret_sealed, role, allowed_domains,
              link_verified_email) ON company_oidc_providers TO app_user;
GRANT UPDATE (issuer, client_id, client_secret_sealed, role, allowed_domains, link_verified_email)
    ON company_oidc_providers TO app_user;
GRANT DELETE ON company_oidc_providers TO app_user;

DROP POLICY IF EXISTS company_oidc_providers_select ON company_oidc_providers;
CREATE POLICY company_oidc_providers_select ON company_oidc_providers FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_oidc_providers_insert ON company_oidc_providers;
CREATE POLICY company_oidc_providers_insert ON company_oidc_providers FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_oidc_providers_update ON company_oidc_providers;
CREATE POLICY company_oidc_providers_update ON company_oidc_providers FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS company_oidc_providers_delete ON company_oidc_providers;
CREATE POLICY company_oidc_providers_delete ON company_oidc_providers FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

-- The definer role reads every company's providers and replaces a sealed secret, nothing else.
DROP POLICY IF EXISTS company_oidc_providers_definer_select ON company_oidc_providers;
CREATE POLICY company_oidc_providers_definer_select ON company_oidc_providers FOR SELECT TO app_auth
    USING (true);

DROP POLICY IF EXISTS company_oidc_providers_definer_reseal ON company_oidc_providers;
CREATE POLICY company_oidc_providers_definer_reseal ON company_oidc_providers FOR UPDATE TO app_auth
    USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER company_oidc_providers_touch_updated_at BEFORE UPDATE ON company_oidc_providers
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- The provider `p_name` of company p_company, as the sign-in flow needs it (never its secret).
CREATE OR REPLACE FUNCTION app.company_oidc_provider(p_company uuid, p_name text)
    RETURNS TABLE (id uuid, issuer text, client_id text, role text, allowed_domains jsonb,
                   link_verified_email boolean, updated_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
    SELECT p.id, p.issuer, p.client_id, p.role, p.allowed_domains, p.link_verified_email, p.updated_at
      FROM company_oidc_providers p WHERE p.company_id = p_company AND p.name = p_name;
END
$$;
ALTER FUNCTION app.company_oidc_provider(uuid, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.company_oidc_provider(uuid, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.company_oidc_provider(uuid, text) TO app_anon;

-- The sealed client secret of provider p_id of company p_company: the server opens it to
-- exchange an authorization code.
CREATE OR REPLACE FUNCTION app.company_oidc_client_secret(p_company uuid, p_id uuid)
    RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN (SELECT p.client_secret_sealed FROM company_oidc_providers p
            WHERE p.company_id = p_company AND p.id = p_id);
END
$$;
ALTER FUNCTION app.company_oidc_client_secret(uuid, uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.company_oidc_client_secret(uuid, uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.company_oidc_client_secret(uuid, uuid) TO app_worker;

-- A first sign-in with provider p_provider of company p_company: a new member of the company with
-- the provider's role (and no password) and the identity, the address verified (the provider
-- asserted it). outcome: joined | no_provider | issuer (another issuer's identity) | domain (the
-- address's domain is not allowed). The role was checked when the provider was set (a custom
-- role deleted since grants nothing). A taken address fails with the unique violation of
-- users' e-mail.
CREATE OR REPLACE FUNCTION app.company_oidc_join(p_company uuid, p_provider uuid, p_user uuid, p_email text,
                                                 p_display_name text, p_identity uuid, p_issuer text,
                                                 p_subject text)
    RETURNS TABLE (outcome text, role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE p company_oidc_providers%ROWTYPE;
BEGIN
    SELECT * INTO p FROM company_oidc_providers c WHERE c.company_id = p_company AND c.id = p_provider;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_provider'::text, NULL::text;
        RETURN;
    END IF;
    IF p.issuer IS DISTINCT FROM p_issuer THEN
        RETURN QUERY SELECT 'issuer'::text, NULL::text;
        RETURN;
    END IF;
    IF jsonb_array_length(p.allowed_domains) > 0
       AND NOT p.allowed_domains ? substring(lower(btrim(p_email)) FROM '@([^@]+)$') THEN
        RETURN QUERY SELECT 'domain'::text, NULL::text;
        RETURN;
    END IF;
    INSERT INTO users (id, company_id, email, password_hash, display_name, role, email_verified_at)
        VALUES (p_user, p_company, btrim(p_email), NULL, btrim(p_display_name), p.role, now());
    INSERT INTO identities (id, company_id, user_id, provider, issuer, subject, email, last_used_at)
        VALUES (p_identity, p_company, p_user, p_company::text || '.' || p.name, p_issuer, p_subject,
                btrim(p_email), now());
    RETURN QUERY SELECT 'joined'::text, p.role;
END
$$;
ALTER FUNCTION app.company_oidc_join(uuid, uuid, uuid, text, text, uuid, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.company_oidc_join(uuid, uuid, uuid, text, text, uuid, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.company_oidc_join(uuid, uuid, uuid, text, text, uuid, text, text) TO app_anon;

-- A first sign-in with provider p_provider of company p_company asserting verified address
-- p_email: links the identity to the company's active account of that address, where the
-- provider allows it. outcome: linked | already (to that account) | taken (by another account)
-- | no_provider | issuer | domain | not_allowed (the provider does not link by address) |
-- no_user (no active account of the company has that address).
CREATE OR REPLACE FUNCTION app.company_oidc_link_email(p_company uuid, p_provider uuid, p_identity uuid,
                                                       p_issuer text, p_subject text, p_email text)
    RETURNS TABLE (outcome text, user_id uuid, role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    p company_oidc_providers%ROWTYPE;
    u users%ROWTYPE;
    linked_user uuid;
BEGIN
    SELECT * INTO p FROM company_oidc_providers c WHERE c.company_id = p_company AND c.id = p_provider;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_provider'::text, NULL::uuid, NULL::text;
        RETURN;
    END IF;
    IF p.issuer IS DISTINCT FROM p_issuer THEN
        RETURN QUERY SELECT 'issuer'::text, NULL::uuid, NULL::text;
        RETURN;
    END IF;
    IF jsonb_array_length(p.allowed_domains) > 0
       AND NOT p.allowed_domains ? substring(lower(btrim(p_email)) FROM '@([^@]+)$') THEN
        RETURN QUERY SELECT 'domain'::text, NULL::uuid, NULL::text;
        RETURN;
    END IF;
    IF NOT p.link_verified_email THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::uuid, NULL::text;
        RETURN;
    END IF;
    SELECT * INTO u FROM users x
     WHERE x.company_id = p_company AND lower(x.email) = lower(btrim(p_email)) AND x.is_active;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_user'::text, NULL::uuid, NULL::text;
        RETURN;
    END IF;
    SELECT i.user_id INTO linked_user FROM identities i WHERE i.issuer = p_issuer AND i.subject = p_subject;
    IF FOUND THEN
        IF linked_user = u.id THEN
            RETURN QUERY SELECT 'already'::text, u.id, u.role;
        ELSE
            RETURN QUERY SELECT 'taken'::text, NULL::uuid, NULL::text;
        END IF;
        RETURN;
    END IF;
    -- Two sign-ins at once: the second fails with the identities' unique violation.
    INSERT INTO identities (id, company_id, user_id, provider, issuer, subject, email, last_used_at)
        VALUES (p_identity, p_company, u.id, p_company::text || '.' || p.name, p_issuer, p_subject,
                btrim(p_email), now());
    RETURN QUERY SELECT 'linked'::text, u.id, u.role;
END
$$;
ALTER FUNCTION app.company_oidc_link_email(uuid, uuid, uuid, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.company_oidc_link_email(uuid, uuid, uuid, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.company_oidc_link_email(uuid, uuid, uuid, text, text, text) TO app_anon;

-- rotate-secrets: the sealed client secrets after (p_after_company, p_after_row), in that order,
-- locked until the end of the caller's transaction.
CREATE OR REPLACE FUNCTION app.sealed_company_oidc_secrets(p_after_company uuid, p_after_row uuid, p_limit integer)
    RETURNS TABLE (company_id uuid, row_id uuid, sealed text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
    SELECT p.company_id, p.id, p.client_secret_sealed
      FROM company_oidc_providers p
     WHERE p.client_secret_sealed IS NOT NULL
       AND (p_after_company IS NULL OR (p.company_id, p.id) > (p_after_company, p_after_row))
     ORDER BY p.company_id, p.id
     LIMIT p_limit
       FOR UPDATE;
END
$$;
ALTER FUNCTION app.sealed_company_oidc_secrets(uuid, uuid, integer) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.sealed_company_oidc_secrets(uuid, uuid, integer) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.sealed_company_oidc_secrets(uuid, uuid, integer) TO app_worker;

-- rotate-secrets: replaces a sealed client secret by its re-sealed form, unless it changed
-- meanwhile.
CREATE OR REPLACE FUNCTION app.reseal_company_oidc_secret(p_company uuid, p_row uuid, p_old text, p_new text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF p_new IS NULL THEN
        RETURN false;
    END IF;
    UPDATE company_oidc_providers SET client_secret_sealed = p_new
     WHERE company_id = p_company AND id = p_row AND client_secret_sealed = p_old;
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.reseal_company_oidc_secret(uuid, uuid, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.reseal_company_oidc_secret(uuid, uuid, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.reseal_company_oidc_secret(uuid, uuid, text, text) TO app_worker;

-- migration/sql/current/company_domains.sql ---------------------------------------------------
-- company_domains: a company's e-mail domains. Its admins add and remove them; a domain counts
-- (verified_at) once an admin whose own address is verified and in that domain confirms it,
-- through app.confirm_company_domain; one company at most verifies a domain.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE company_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE company_domains FORCE ROW LEVEL SECURITY;
REVOKE ALL ON company_domains FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE ON company_domains TO app_auth;
GRANT SELECT, INSERT, DELETE ON company_domains TO app_user;

DROP POLICY IF EXISTS company_domains_definer ON company_domains;
CREATE POLICY company_domains_definer ON company_domains FOR ALL TO app_auth USING (true) WITH CHECK (true);

-- Those who manage the company see, add (unconfirmed, as themselves) and remove its domains.
DROP POLICY IF EXISTS company_domains_manage ON company_domains;
CREATE POLICY company_domains_manage ON company_domains FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'update'))
                AND verified_at IS NULL AND verified_by IS NULL
                AND added_by = (SELECT app.current_user_id()));

CREATE OR REPLACE TRIGGER company_domains_touch_updated_at BEFORE UPDATE ON company_domains
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/directories.sql -------------------------------------------------------
-- Directory tables: what must be unique across companies, keyed by that value, with the
-- company (and row) it belongs to. A lookup that starts without a company (signing in by
-- e-mail, by an OpenID identity, signing up by a verified domain) reads one row here by its
-- key, then the tenant tables by (company_id, ...): never a search of every company. Each is
-- kept in step with its tenant table by the triggers below, in the same transaction as the
-- write; its primary key is what enforces the uniqueness across companies. Only the definer
-- role app_auth reads or writes them (through the definer functions and these triggers);
-- request roles have no grant at all. `migration::DIRECTORY_TABLES` lists them with how a
-- distributed deployment places each.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE login_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE login_emails FORCE ROW LEVEL SECURITY;
REVOKE ALL ON login_emails FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE ON login_emails TO app_auth;
DROP POLICY IF EXISTS login_emails_definer ON login_emails;
CREATE POLICY login_emails_definer ON login_emails FOR ALL TO app_auth USING (true) WITH CHECK (true);

ALTER TABLE oidc_subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_subjects FORCE ROW LEVEL SECURITY;
REVOKE ALL ON oidc_subjects FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE ON oidc_subjects TO app_auth;
DROP POLICY IF EXISTS oidc_subjects_definer ON oidc_subjects;
CREATE POLICY oidc_subjects_definer ON oidc_subjects FOR ALL TO app_auth USING (true) WITH CHECK (true);

ALTER TABLE verified_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE verified_domains FORCE ROW LEVEL SECURITY;
REVOKE ALL ON verified_domains FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE ON verified_domains TO app_auth;
DROP POLICY IF EXISTS verified_domains_definer ON verified_domains;
CREATE POLICY verified_domains_definer ON verified_domains FOR ALL TO app_auth USING (true) WITH CHECK (true);

-- users -> login_emails: one row per address (lowercase). An address another user has already
-- fails the write with a violation of login_emails_pkey.
CREATE OR REPLACE FUNCTION app.login_emails_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO login_emails (email, company_id, user_id)
        SELECT lower(n.email), n.company_id, n.id FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM login_emails e USING old_rows o
         WHERE e.email = lower(o.email) AND e.company_id = o.company_id AND e.user_id = o.id;
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.login_emails_sync() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.login_emails_sync() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

-- A changed address: the old key goes and the new one comes (a key is never updated in place,
-- so a directory distributed by its key moves the row between shards).
CREATE OR REPLACE FUNCTION app.login_emails_readdress() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    DELETE FROM login_emails e
     WHERE e.email = lower(OLD.email) AND e.company_id = OLD.company_id AND e.user_id = OLD.id;
    INSERT INTO login_emails (email, company_id, user_id) VALUES (lower(NEW.email), NEW.company_id, NEW.id);
    RETURN NULL;
END
$$;
ALTER FUNCTION app.login_emails_readdress() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.login_emails_readdress() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER users_login_emails_inserted AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.login_emails_sync();
CREATE OR REPLACE TRIGGER users_login_emails_deleted AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.login_emails_sync();
CREATE OR REPLACE TRIGGER users_login_emails_readdressed AFTER UPDATE OF email, company_id, id ON users
    FOR EACH ROW WHEN ((lower(OLD.email), OLD.company_id, OLD.id) IS DISTINCT FROM (lower(NEW.email), NEW.company_id, NEW.id))
    EXECUTE FUNCTION app.login_emails_readdress();

-- identities -> oidc_subjects: one row per (issuer, subject). An identity another user has
-- linked already fails the write with a violation of oidc_subjects_pkey.
CREATE OR REPLACE FUNCTION app.oidc_subjects_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM oidc_subjects s
         WHERE s.issuer = OLD.issuer AND s.subject = OLD.subject AND s.company_id = OLD.company_id
           AND s.identity_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO oidc_subjects (issuer, subject, company_id, user_id, identity_id)
            VALUES (NEW.issuer, NEW.subject, NEW.company_id, NEW.user_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.oidc_subjects_sync() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.oidc_subjects_sync() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER identities_oidc_subjects_added_or_removed AFTER INSERT OR DELETE ON identities
    FOR EACH ROW EXECUTE FUNCTION app.oidc_subjects_sync();
CREATE OR REPLACE TRIGGER identities_oidc_subjects_updated AFTER UPDATE OF issuer, subject, company_id, user_id, id ON identities
    FOR EACH ROW WHEN ((OLD.issuer, OLD.subject, OLD.company_id, OLD.user_id, OLD.id)
                       IS DISTINCT FROM (NEW.issuer, NEW.subject, NEW.company_id, NEW.user_id, NEW.id))
    EXECUTE FUNCTION app.oidc_subjects_sync();

-- company_domains -> verified_domains: one row per verified domain. A domain another company
-- has verified already fails the write with a violation of verified_domains_pkey.
CREATE OR REPLACE FUNCTION app.verified_domains_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.verified_at IS NOT NULL THEN
        DELETE FROM verified_domains v
         WHERE v.domain = OLD.domain AND v.company_id = OLD.company_id AND v.domain_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.verified_at IS NOT NULL THEN
        INSERT INTO verified_domains (domain, company_id, domain_id) VALUES (NEW.domain, NEW.company_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.verified_domains_sync() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.verified_domains_sync() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER company_domains_verified_domains_added_or_removed AFTER INSERT OR DELETE ON company_domains
    FOR EACH ROW EXECUTE FUNCTION app.verified_domains_sync();
CREATE OR REPLACE TRIGGER company_domains_verified_domains_updated
    AFTER UPDATE OF verified_at, domain, company_id, id ON company_domains
    FOR EACH ROW WHEN ((OLD.verified_at IS NULL, OLD.domain, OLD.company_id, OLD.id)
                       IS DISTINCT FROM (NEW.verified_at IS NULL, NEW.domain, NEW.company_id, NEW.id))
    EXECUTE FUNCTION app.verified_domains_sync();

-- migration/sql/current/invite_links.sql ------------------------------------------------------
-- invite_links: links anyone may sign up with into the company, with the link's role, until it
-- expires, is revoked or is used up. Read by whoever may read invitations, made by whoever may
-- create them (in their own name, unused), revoked by whoever may delete them; used only through
-- app.accept_invite_link, which counts each use atomically.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE invite_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE invite_links FORCE ROW LEVEL SECURITY;
REVOKE ALL ON invite_links FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE ON invite_links TO app_auth;
GRANT SELECT, INSERT ON invite_links TO app_user;
GRANT UPDATE (revoked_at) ON invite_links TO app_user;

DROP POLICY IF EXISTS invite_links_definer ON invite_links;
CREATE POLICY invite_links_definer ON invite_links FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS invite_links_select ON invite_links;
CREATE POLICY invite_links_select ON invite_links FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'read')));

DROP POLICY IF EXISTS invite_links_insert ON invite_links;
CREATE POLICY invite_links_insert ON invite_links FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND created_by = (SELECT app.current_user_id()) AND uses = 0 AND revoked_at IS NULL);

DROP POLICY IF EXISTS invite_links_revoke ON invite_links;
CREATE POLICY invite_links_revoke ON invite_links FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'delete')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND revoked_at IS NOT NULL);

CREATE OR REPLACE TRIGGER invite_links_touch_updated_at BEFORE UPDATE ON invite_links
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/outbound_emails.sql ---------------------------------------------------
-- outbound_emails: a request queues only the e-mail of an invitation it made in the same
-- transaction, to the invited address. Other mail is queued by definer functions. Every new
-- message starts pending and due; the mailer of every instance claims, sends and marks messages
-- through the definer functions below, which only app_worker may execute.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE outbound_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbound_emails FORCE ROW LEVEL SECURITY;
REVOKE ALL ON outbound_emails FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON outbound_emails TO app_auth;
GRANT INSERT ON outbound_emails TO app_user;

DROP POLICY IF EXISTS outbound_emails_definer ON outbound_emails;
CREATE POLICY outbound_emails_definer ON outbound_emails FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS outbound_emails_insert ON outbound_emails;
CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND template = 'invitation' AND sent_at IS NULL AND attempts = 0 AND last_error IS NULL
                AND EXISTS (SELECT 1 FROM invitations i
                            WHERE i.company_id = outbound_emails.company_id
                              AND lower(i.email) = lower(outbound_emails.recipient)
                              AND i.invited_by = (SELECT app.current_user_id())
                              AND i.created_at = now()));

CREATE OR REPLACE TRIGGER outbound_emails_touch_updated_at BEFORE UPDATE ON outbound_emails
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Whoever queues a message, it starts pending, due now, never tried.
CREATE OR REPLACE FUNCTION app.outbound_emails_stamp() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    NEW.status := 'pending';
    NEW.next_attempt_at := now();
    NEW.attempts := 0;
    NEW.sent_at := NULL;
    NEW.last_error := NULL;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.outbound_emails_stamp() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
CREATE OR REPLACE TRIGGER outbound_emails_stamp BEFORE INSERT ON outbound_emails
    FOR EACH ROW EXECUTE FUNCTION app.outbound_emails_stamp();

-- Claims at most p_limit due messages, oldest due first: each is counted as one more attempt
-- and is not due again for p_lease (the sender's lease; if it never reports, the message is
-- retried then). A message another caller has locked is skipped, one it claimed is not due:
-- two instances never claim the same message at once.
CREATE OR REPLACE FUNCTION app.mail_claim(p_lease interval, p_limit integer)
    RETURNS TABLE (id uuid, recipient text, subject text, body text, attempts integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    UPDATE outbound_emails o
       SET attempts = o.attempts + 1, next_attempt_at = now() + p_lease
     WHERE o.id IN (SELECT d.id FROM outbound_emails d
                     WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                     ORDER BY d.next_attempt_at
                     LIMIT p_limit
                     FOR UPDATE SKIP LOCKED)
    RETURNING o.id, o.recipient, o.subject, o.body, o.attempts
$$;
ALTER FUNCTION app.mail_claim(interval, integer) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.mail_claim(interval, integer) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.mail_claim(interval, integer) TO app_worker;

-- A claimed message was accepted by the SMTP server: `sent`. Whether it was still pending.
CREATE OR REPLACE FUNCTION app.mail_sent(p_id uuid)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE outbound_emails SET status = 'sent', sent_at = now(), last_error = NULL
     WHERE id = p_id AND status = 'pending';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.mail_sent(uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.mail_sent(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.mail_sent(uuid) TO app_worker;

-- An attempt at a claimed message failed with p_error: it is due again after p_retry_in, or,
-- when p_retry_in is NULL (no attempt left, or a permanent refusal), `failed`. Returns the
-- message's status, or NULL when it was no longer pending.
CREATE OR REPLACE FUNCTION app.mail_attempt_failed(p_id uuid, p_error text, p_retry_in interval)
    RETURNS text
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    UPDATE outbound_emails
       SET status = CASE WHEN p_retry_in IS NULL THEN 'failed' ELSE 'pending' END,
           next_attempt_at = CASE WHEN p_retry_in IS NULL THEN next_attempt_at
                                  ELSE now() + p_retry_in END,
           last_error = left(p_error, 2000)
     WHERE id = p_id AND status = 'pending'
    RETURNING status
$$;
ALTER FUNCTION app.mail_attempt_failed(uuid, text, interval) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.mail_attempt_failed(uuid, text, interval) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.mail_attempt_failed(uuid, text, interval) TO app_worker;

-- migration/sql/current/roles.sql -------------------------------------------------------------
-- roles (custom roles): read by everyone of the company (each request's permissions are read
-- from here, in its own transaction), written by whoever manages the company. app.may, a
-- definer of app_auth, reads the caller's company's roles and nothing else.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
REVOKE ALL ON roles FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT ON roles TO app_auth;
GRANT SELECT, INSERT, UPDATE, DELETE ON roles TO app_user;

DROP POLICY IF EXISTS roles_definer ON roles;
CREATE POLICY roles_definer ON roles FOR SELECT TO app_auth
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS roles_select ON roles;
CREATE POLICY roles_select ON roles FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS roles_insert ON roles;
CREATE POLICY roles_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS roles_update ON roles;
CREATE POLICY roles_update ON roles FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS roles_delete ON roles;
CREATE POLICY roles_delete ON roles FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

CREATE OR REPLACE TRIGGER roles_touch_updated_at BEFORE UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/presets.sql -----------------------------------------------------------
-- presets: one's own and the company's shared ones; whoever manages audiences sees and changes
-- every preset of the company. A preset keeps its owner.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE presets ENABLE ROW LEVEL SECURITY;
ALTER TABLE presets FORCE ROW LEVEL SECURITY;
REVOKE ALL ON presets FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE, UPDATE (name, description, filter, visibility) ON presets TO app_user;

DROP POLICY IF EXISTS presets_select ON presets;
CREATE POLICY presets_select ON presets FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'read'))
           AND (owner_id = (SELECT app.current_user_id()) OR visibility = 'company'
                OR (SELECT app.may('audience', 'manage'))));

DROP POLICY IF EXISTS presets_insert ON presets;
CREATE POLICY presets_insert ON presets FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'create'))
                AND owner_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS presets_update ON presets;
CREATE POLICY presets_update ON presets FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'update'))
           AND (owner_id = (SELECT app.current_user_id()) OR (SELECT app.may('audience', 'manage'))))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS presets_delete ON presets;
CREATE POLICY presets_delete ON presets FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'delete'))
           AND (owner_id = (SELECT app.current_user_id()) OR (SELECT app.may('audience', 'manage'))));

CREATE OR REPLACE TRIGGER presets_touch_updated_at BEFORE UPDATE ON presets
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/audience_fields.sql ---------------------------------------------------
-- audience_fields: read with audiences, written by whoever manages audiences.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE audience_fields ENABLE ROW LEVEL SECURITY;
ALTER TABLE audience_fields FORCE ROW LEVEL SECURITY;
REVOKE ALL ON audience_fields FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON audience_fields TO app_user;

DROP POLICY IF EXISTS audience_fields_select ON audience_fields;
CREATE POLICY audience_fields_select ON audience_fields FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'read')));

DROP POLICY IF EXISTS audience_fields_insert ON audience_fields;
CREATE POLICY audience_fields_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')));

DROP POLICY IF EXISTS audience_fields_update ON audience_fields;
CREATE POLICY audience_fields_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS audience_fields_delete ON audience_fields;
CREATE POLICY audience_fields_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')));

CREATE OR REPLACE TRIGGER audience_fields_touch_updated_at BEFORE UPDATE ON audience_fields
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/audience_bits.sql -----------------------------------------------------
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
    USING (company_id = (SELECT app.current_company_id()));

ALTER TABLE audience_bits ENABLE ROW LEVEL SECURITY;
ALTER TABLE audience_bits FORCE ROW LEVEL SECURITY;
REVOKE ALL ON audience_bits FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON audience_bits TO app_auth;
GRANT SELECT ON audience_bits TO app_profiles;

DROP POLICY IF EXISTS audience_bits_definer ON audience_bits;
CREATE POLICY audience_bits_definer ON audience_bits FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS audience_bits_profiles ON audience_bits;
CREATE POLICY audience_bits_profiles ON audience_bits FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));

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

-- migration/sql/current/friendships.sql -------------------------------------------------------
-- friendships: the pair's two members, as their friendship permissions allow; the state machine
-- of requests and blocks is app.friendships_guard.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE friendships ENABLE ROW LEVEL SECURITY;
ALTER TABLE friendships FORCE ROW LEVEL SECURITY;
REVOKE ALL ON friendships FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT ON friendships TO app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON friendships TO app_user;

-- The profile role reads the caller's company, nothing else, and writes nothing.
DROP POLICY IF EXISTS friendships_profiles ON friendships;
CREATE POLICY friendships_profiles ON friendships FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS friendships_select ON friendships;
CREATE POLICY friendships_select ON friendships FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'read')));

DROP POLICY IF EXISTS friendships_insert ON friendships;
CREATE POLICY friendships_insert ON friendships FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
                AND (SELECT app.may('friendship', 'create')));

DROP POLICY IF EXISTS friendships_update ON friendships;
CREATE POLICY friendships_update ON friendships FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b));

DROP POLICY IF EXISTS friendships_delete ON friendships;
CREATE POLICY friendships_delete ON friendships FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'delete')));

-- The state machine of requests and blocks, for requests. A request is sent
-- pending by its requester; only the other member of the pair accepts it; a block is made by
-- the blocker and lifted (updated or deleted) only by them; the pair never changes.
CREATE OR REPLACE FUNCTION app.friendships_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE me uuid := app.current_user_id();
BEGIN
    IF current_user <> 'app_user' THEN
        RETURN COALESCE(NEW, OLD);
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT ((NEW.status = 'pending' AND NEW.requested_by = me AND NEW.responded_at IS NULL)
                OR (NEW.status = 'blocked' AND NEW.blocked_by = me)) THEN
            RAISE EXCEPTION 'a friendship starts as a request of yours or a block of yours' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status = 'blocked' AND OLD.blocked_by IS DISTINCT FROM me THEN
        RAISE EXCEPTION 'only the blocker lifts a block' USING ERRCODE = '42501';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF (NEW.company_id, NEW.user_a, NEW.user_b) IS DISTINCT FROM (OLD.company_id, OLD.user_a, OLD.user_b) THEN
        RAISE EXCEPTION 'a friendship keeps its pair' USING ERRCODE = '42501';
    END IF;
    IF NEW.status = 'accepted' AND OLD.status IS DISTINCT FROM 'accepted'
       AND NOT (OLD.status = 'pending' AND OLD.requested_by IS DISTINCT FROM me
                AND NEW.requested_by = OLD.requested_by) THEN
        RAISE EXCEPTION 'only the recipient of a pending request accepts it' USING ERRCODE = '42501';
    END IF;
    IF NEW.status = 'blocked' AND NEW.blocked_by IS DISTINCT FROM me THEN
        RAISE EXCEPTION 'a block is made by the blocker' USING ERRCODE = '42501';
    END IF;
    IF NEW.status = 'pending' AND (OLD.status <> 'pending' OR NEW.requested_by IS DISTINCT FROM OLD.requested_by) THEN
        RAISE EXCEPTION 'a request is sent by its requester' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.friendships_guard() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER friendships_guard BEFORE INSERT OR UPDATE OR DELETE ON friendships
    FOR EACH ROW EXECUTE FUNCTION app.friendships_guard();

CREATE OR REPLACE TRIGGER friendships_touch_updated_at BEFORE UPDATE ON friendships
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Friends the caller shares with `p_other`: needs the other's friendships, which the caller's
-- policy hides, so it runs as app_profiles. Nothing when the two are a blocked pair.
CREATE OR REPLACE FUNCTION app.mutual_friend_ids(p_other uuid) RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
    WITH me AS (SELECT app.current_user_id() AS id, app.current_company_id() AS company),
    friends_of AS (
        SELECT CASE WHEN f.user_a = x.uid THEN f.user_b ELSE f.user_a END AS friend, x.uid AS of
        FROM me
        CROSS JOIN LATERAL (VALUES (me.id), (p_other)) x (uid)
        JOIN friendships f ON f.company_id = me.company AND f.status = 'accepted'
                          AND x.uid IN (f.user_a, f.user_b)
    )
    SELECT a.friend FROM friends_of a JOIN friends_of b ON a.friend = b.friend, me
    WHERE a.of = me.id AND b.of = p_other AND me.id <> p_other
      AND NOT EXISTS (SELECT 1 FROM friendships f
                      WHERE f.company_id = me.company AND f.status = 'blocked'
                        AND f.user_a = LEAST(me.id, p_other) AND f.user_b = GREATEST(me.id, p_other))
$$;
ALTER FUNCTION app.mutual_friend_ids(uuid) OWNER TO app_profiles;
REVOKE ALL ON FUNCTION app.mutual_friend_ids(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT EXECUTE ON FUNCTION app.mutual_friend_ids(uuid) TO app_user;

-- migration/sql/current/activities.sql --------------------------------------------------------
-- activity_kinds, activities, activity_shares: what people record (a kind of the company, typed
-- metrics), and who else may read it. An activity is its owner's; another user reads it only
-- if its visibility (company, or friends and they are friends) or an explicit share allows it,
-- and never when either of the two blocked the other. Admins read others' activities as
-- anyone does: never a private one that is not shared with them. The metrics of an activity
-- are checked against its kind here (app.activities_check_metrics), whatever the server says.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

-- Whether `p` is a valid list of metric definitions: 1 to 50 objects {name, type, unit?} with
-- distinct names of 1 to 63 characters (lowercase letters, digits and `_`, starting with a
-- letter: they are used as JSON keys in SQL), a type among number, integer, boolean and
-- string, and a unit of at most 20 characters. The CHECK of activity_kinds.metrics.
CREATE OR REPLACE FUNCTION app.activity_metric_definitions_valid(p jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p) IS DISTINCT FROM 'array' THEN false
                WHEN pg_catalog.jsonb_array_length(p) NOT BETWEEN 1 AND 50 THEN false
                ELSE NOT EXISTS (
                    SELECT 1 FROM pg_catalog.jsonb_array_elements(p) e (m)
                    WHERE CASE WHEN pg_catalog.jsonb_typeof(m) IS DISTINCT FROM 'object' THEN true
                               ELSE EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(m) k (key)
                                            WHERE k.key NOT IN ('name', 'type', 'unit'))
                                    OR pg_catalog.jsonb_typeof(m -> 'name') IS DISTINCT FROM 'string'
                                    OR (m ->> 'name') !~ '^[a-z][a-z0-9_]{0,62}$'
                                    OR (m ->> 'type') IS NULL
                                    OR (m ->> 'type') NOT IN ('number', 'integer', 'boolean', 'string')
                                    OR pg_catalog.jsonb_typeof(m -> 'type') IS DISTINCT FROM 'string'
                                    OR COALESCE(pg_catalog.jsonb_typeof(m -> 'unit'), 'null') NOT IN ('string', 'null')
                                    OR COALESCE(pg_catalog.length(m ->> 'unit'), 0) > 20 END)
                     AND (SELECT count(DISTINCT m ->> 'name') FROM pg_catalog.jsonb_array_elements(p) e (m))
                         = pg_catalog.jsonb_array_length(p) END
$$;
REVOKE ALL ON FUNCTION app.activity_metric_definitions_valid(jsonb) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.activity_metric_definitions_valid(jsonb) TO app_user;

-- What is wrong with the metrics `p_metrics` of an activity whose kind defines `p_definitions`:
-- the path of the first offending metric (by name) and why, e.g. `metrics.score: a number`;
-- NULL when nothing is. Every key must be a metric of the kind, of its type (a number of
-- magnitude under 10^15; an integer; a boolean; a string of at most 1,000 characters); metrics
-- may be left out, not set to null.
CREATE OR REPLACE FUNCTION app.activity_metrics_problem(p_definitions jsonb, p_metrics jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p_metrics) IS DISTINCT FROM 'object'
                THEN 'metrics: an object of metric values, by metric name'
                ELSE (SELECT 'metrics.' || k.key || ': '
                             || CASE WHEN d.type IS NULL THEN 'not a metric of this kind'
                                     WHEN d.type = 'number' THEN 'a number of magnitude under 10^15'
                                     WHEN d.type = 'integer' THEN 'an integer of magnitude under 10^15'
                                     WHEN d.type = 'string' THEN 'a string of at most 1000 characters'
                                     ELSE 'a ' || d.type END
                      FROM pg_catalog.jsonb_each(p_metrics) k (key, value)
                      LEFT JOIN LATERAL (SELECT e ->> 'type' AS type
                                         FROM pg_catalog.jsonb_array_elements(p_definitions) e
                                         WHERE e ->> 'name' = k.key LIMIT 1) d ON true
                      WHERE NOT CASE WHEN d.type IN ('number', 'integer')
                                     THEN CASE WHEN pg_catalog.jsonb_typeof(k.value) = 'number'
                                               THEN pg_catalog.abs(k.value::numeric) < 1e15
                                                    AND (d.type = 'number'
                                                         OR k.value::numeric = pg_catalog.trunc(k.value::numeric))
                                               ELSE false END
                                     WHEN d.type = 'boolean' THEN pg_catalog.jsonb_typeof(k.value) = 'boolean'
                                     WHEN d.type = 'string'
                                     THEN CASE WHEN pg_catalog.jsonb_typeof(k.value) = 'string'
                                               THEN pg_catalog.length(k.value #>> '{}') <= 1000
                                               ELSE false END
                                     ELSE false END
                      ORDER BY k.key LIMIT 1) END
$$;
REVOKE ALL ON FUNCTION app.activity_metrics_problem(jsonb, jsonb) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.activity_metrics_problem(jsonb, jsonb) TO app_user;

-- The caller's friends (accepted friendships) and the people in a blocked pair with the caller
-- (either way): what the activity policies ask about the owner of a row. They read the
-- friendships of the caller's company as app_profiles, so that a role which may not list its
-- friendships still never sees across a block. Called once per statement (an InitPlan).
CREATE OR REPLACE FUNCTION app.activity_friend_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE me uuid := app.current_user_id();
BEGIN
    RETURN ARRAY(SELECT CASE WHEN f.user_a = me THEN f.user_b ELSE f.user_a END
                 FROM friendships f
                 WHERE f.company_id = app.current_company_id() AND f.status = 'accepted'
                   AND (f.user_a = me OR f.user_b = me));
END
$$;
ALTER FUNCTION app.activity_friend_ids() OWNER TO app_profiles;
REVOKE ALL ON FUNCTION app.activity_friend_ids() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT EXECUTE ON FUNCTION app.activity_friend_ids() TO app_user;

CREATE OR REPLACE FUNCTION app.activity_blocked_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE me uuid := app.current_user_id();
BEGIN
    RETURN ARRAY(SELECT CASE WHEN f.user_a = me THEN f.user_b ELSE f.user_a END
                 FROM friendships f
                 WHERE f.company_id = app.current_company_id() AND f.status = 'blocked'
                   AND (f.user_a = me OR f.user_b = me));
END
$$;
ALTER FUNCTION app.activity_blocked_ids() OWNER TO app_profiles;
REVOKE ALL ON FUNCTION app.activity_blocked_ids() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT EXECUTE ON FUNCTION app.activity_blocked_ids() TO app_user;

-- Kinds: everyone of the company who may read them; defined by whoever manages them (admins).
-- A kind never changes once defined (its activities were checked against it).
ALTER TABLE activity_kinds ENABLE ROW LEVEL SECURITY;
ALTER TABLE activity_kinds FORCE ROW LEVEL SECURITY;
REVOKE ALL ON activity_kinds FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT ON activity_kinds TO app_user;

DROP POLICY IF EXISTS activity_kinds_select ON activity_kinds;
CREATE POLICY activity_kinds_select ON activity_kinds FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity_kind', 'read')));

DROP POLICY IF EXISTS activity_kinds_insert ON activity_kinds;
CREATE POLICY activity_kinds_insert ON activity_kinds FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity_kind', 'create')));

-- Activities: the owner writes their own; readers as the header says.
ALTER TABLE activities ENABLE ROW LEVEL SECURITY;
ALTER TABLE activities FORCE ROW LEVEL SECURITY;
REVOKE ALL ON activities FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE, UPDATE (occurred_at, metrics, note, visibility) ON activities TO app_user;

DROP POLICY IF EXISTS activities_select ON activities;
CREATE POLICY activities_select ON activities FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'read'))
           AND (user_id = (SELECT app.current_user_id())
                OR (NOT (user_id = ANY ((SELECT app.activity_blocked_ids())::uuid[]))
                    AND (visibility = 'company'
                         OR (visibility = 'friends' AND user_id = ANY ((SELECT app.activity_friend_ids())::uuid[]))
                         OR EXISTS (SELECT 1 FROM activity_shares s
                                    WHERE s.company_id = activities.company_id
                                      AND s.activity_id = activities.id
                                      AND s.user_id = (SELECT app.current_user_id()))))));

DROP POLICY IF EXISTS activities_insert ON activities;
CREATE POLICY activities_insert ON activities FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'create'))
                AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS activities_update ON activities;
CREATE POLICY activities_update ON activities FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'update'))
           AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS activities_delete ON activities;
CREATE POLICY activities_delete ON activities FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'delete'))
           AND user_id = (SELECT app.current_user_id()));

-- The metrics of a row match its kind: every writer, every path (requests, definer functions,
-- the owner). A kind the writer cannot read is no kind.
CREATE OR REPLACE FUNCTION app.activities_check_metrics() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    definitions jsonb;
    problem text;
BEGIN
    SELECT k.metrics INTO definitions FROM activity_kinds k
    WHERE k.company_id = NEW.company_id AND k.id = NEW.kind_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'kind: no such activity kind' USING ERRCODE = '23503';
    END IF;
    problem := app.activity_metrics_problem(definitions, NEW.metrics);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = '23514', CONSTRAINT = 'activities_metrics_match_kind';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.activities_check_metrics() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER activities_check_metrics BEFORE INSERT OR UPDATE OF kind_id, metrics ON activities
    FOR EACH ROW EXECUTE FUNCTION app.activities_check_metrics();

CREATE OR REPLACE TRIGGER activities_touch_updated_at BEFORE UPDATE ON activities
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Shares: the owner of the activity shares it and takes the share back; the owner and the one
-- it is shared with see it. (owner_id is the activity's user, through the foreign key, so that
-- these policies need not read activities, whose policy reads them.)
ALTER TABLE activity_shares ENABLE ROW LEVEL SECURITY;
ALTER TABLE activity_shares FORCE ROW LEVEL SECURITY;
REVOKE ALL ON activity_shares FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE ON activity_shares TO app_user;

DROP POLICY IF EXISTS activity_shares_select ON activity_shares;
CREATE POLICY activity_shares_select ON activity_shares FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'read'))
           AND (user_id = (SELECT app.current_user_id()) OR owner_id = (SELECT app.current_user_id())));

DROP POLICY IF EXISTS activity_shares_insert ON activity_shares;
CREATE POLICY activity_shares_insert ON activity_shares FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'update'))
                AND owner_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS activity_shares_delete ON activity_shares;
CREATE POLICY activity_shares_delete ON activity_shares FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'update'))
           AND owner_id = (SELECT app.current_user_id()));

-- migration/sql/current/conversations.sql -----------------------------------------------------
-- conversations: only their owner, in their company, as their conversation permissions allow. Not
-- even an admin reads someone else's chat; the one exception is app.training_export
-- (training.sql), which reads, for a caller allowed to export training data, the conversations
-- of the caller's company that their owners allow.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
REVOKE ALL ON conversations FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON conversations TO app_user;
GRANT SELECT ON conversations TO app_auth;

DROP POLICY IF EXISTS conversations_select ON conversations;
CREATE POLICY conversations_select ON conversations FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'read')));

DROP POLICY IF EXISTS conversations_insert ON conversations;
CREATE POLICY conversations_insert ON conversations FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND (SELECT app.may('conversation', 'create')));

DROP POLICY IF EXISTS conversations_update ON conversations;
CREATE POLICY conversations_update ON conversations FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS conversations_delete ON conversations;
CREATE POLICY conversations_delete ON conversations FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'delete')));

CREATE OR REPLACE TRIGGER conversations_touch_updated_at BEFORE UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- The owner of app.training_export reads conversations of the caller's company only, and only
-- while the caller may export training data: the function's own filter is not the only guard.
DROP POLICY IF EXISTS conversations_training_export ON conversations;
CREATE POLICY conversations_training_export ON conversations FOR SELECT TO app_auth
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('training_data', 'read')));

-- A conversation's training choice (training_allowed; NULL follows the company's default) may be
-- set or changed only while the company lets its people choose (companies.training_users_may_change):
-- 42501 otherwise. A definer, so that it reads the company's policy whatever the caller may read.
CREATE OR REPLACE FUNCTION app.conversations_training_choice() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.training_allowed IS NOT DISTINCT FROM OLD.training_allowed THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.training_allowed IS NULL THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM companies c
                    WHERE c.id = NEW.company_id AND c.training_users_may_change) THEN
        RAISE EXCEPTION 'this company does not let its people choose whether a conversation is used for training'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION app.conversations_training_choice() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.conversations_training_choice() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER conversations_training_choice BEFORE INSERT OR UPDATE OF training_allowed ON conversations
    FOR EACH ROW EXECUTE FUNCTION app.conversations_training_choice();

-- migration/sql/current/knowledge.sql ---------------------------------------------------------
-- knowledge: only their owner, in their company, as their conversation permissions allow. Not
-- even an admin reads someone else's chat.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE knowledge ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge FORCE ROW LEVEL SECURITY;
REVOKE ALL ON knowledge FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON knowledge TO app_user;

DROP POLICY IF EXISTS knowledge_select ON knowledge;
CREATE POLICY knowledge_select ON knowledge FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'read')));

DROP POLICY IF EXISTS knowledge_insert ON knowledge;
CREATE POLICY knowledge_insert ON knowledge FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND (SELECT app.may('conversation', 'create')));

DROP POLICY IF EXISTS knowledge_update ON knowledge;
CREATE POLICY knowledge_update ON knowledge FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS knowledge_delete ON knowledge;
CREATE POLICY knowledge_delete ON knowledge FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'delete')));

CREATE OR REPLACE TRIGGER knowledge_touch_updated_at BEFORE UPDATE ON knowledge
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- migration/sql/current/messages.sql ----------------------------------------------------------
-- messages: a message belongs to a conversation of its own user. A request adds the user's
-- message and an empty streaming placeholder for the reply, and may only cancel a streaming
-- reply. The reply's text, heartbeat and outcome are stored by definer functions (of app_auth)
-- that only app_worker, background work, may execute.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
REVOKE ALL ON messages FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE ON messages TO app_auth;
GRANT SELECT, INSERT, DELETE, UPDATE (status) ON messages TO app_user;

DROP POLICY IF EXISTS messages_select ON messages;
CREATE POLICY messages_select ON messages FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'read')));

DROP POLICY IF EXISTS messages_insert ON messages;
CREATE POLICY messages_insert ON messages FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND (SELECT app.may('message', 'create'))
                AND ((role = 'user' AND status = 'complete')
                     OR (role = 'assistant' AND status = 'streaming' AND content = ''))
                AND model IS NULL AND prompt_tokens IS NULL AND completion_tokens IS NULL AND error IS NULL);

DROP POLICY IF EXISTS messages_cancel ON messages;
CREATE POLICY messages_cancel ON messages FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'update')) AND status = 'streaming')
    WITH CHECK (status = 'cancelled');

DROP POLICY IF EXISTS messages_delete ON messages;
CREATE POLICY messages_delete ON messages FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'delete')));

-- The definer role may read messages (an UPDATE whose WHERE reads columns checks the new row
-- against SELECT policies), keep a streaming reply streaming (its text so far, its heartbeat)
-- and finish it, and change nothing else.
DROP POLICY IF EXISTS messages_definer_select ON messages;
CREATE POLICY messages_definer_select ON messages FOR SELECT TO app_auth USING (true);

DROP POLICY IF EXISTS messages_definer_progress ON messages;
CREATE POLICY messages_definer_progress ON messages FOR UPDATE TO app_auth
    USING (status = 'streaming') WITH CHECK (status = 'streaming');

DROP POLICY IF EXISTS messages_definer_finish ON messages;
CREATE POLICY messages_definer_finish ON messages FOR UPDATE TO app_auth
    USING (status = 'streaming') WITH CHECK (status IN ('complete', 'failed', 'cancelled'));

-- A request never chooses a heartbeat nor a delta count: every new message starts with a
-- heartbeat of now and no delta.
CREATE OR REPLACE FUNCTION app.messages_stamp_heartbeat() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    NEW.heartbeat_at := now();
    NEW.content_deltas := 0;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.messages_stamp_heartbeat() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER messages_stamp_heartbeat BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION app.messages_stamp_heartbeat();

CREATE OR REPLACE TRIGGER messages_touch_updated_at BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Stores the outcome of a generation. Only a message still streaming changes, so a cancel
-- that raced a completion (or a cleared conversation) is not overwritten. Returns whether it
-- changed.
CREATE OR REPLACE FUNCTION app.chat_finish_message(p_company uuid, p_message uuid, p_content text,
                                                   p_status text, p_model text, p_prompt_tokens integer,
                                                   p_completion_tokens integer, p_error text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF p_status NOT IN ('complete', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'bad final status %', p_status;
    END IF;
    UPDATE messages
       SET content = p_content, status = p_status, model = p_model, prompt_tokens = p_prompt_tokens,
           completion_tokens = p_completion_tokens, error = p_error
     WHERE company_id = p_company AND id = p_message AND status = 'streaming';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) TO app_worker;

-- The generator of a streaming reply is alive: stores the text so far (unless NULL), made of
-- its first p_deltas deltas, unless the stored text holds more already, and a fresh heartbeat.
-- Returns whether the reply still streams; false when it was finalised elsewhere, cancelled or
-- deleted, and the generator stops.
CREATE OR REPLACE FUNCTION app.chat_progress_message(p_company uuid, p_message uuid, p_content text,
                                                     p_deltas bigint)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE messages
       SET content = CASE WHEN p_content IS NOT NULL
                           AND (content_deltas IS NULL OR content_deltas <= p_deltas)
                          THEN p_content ELSE content END,
           content_deltas = CASE WHEN p_content IS NOT NULL
                                  AND (content_deltas IS NULL OR content_deltas <= p_deltas)
                                 THEN p_deltas ELSE content_deltas END,
           heartbeat_at = now()
     WHERE company_id = p_company AND id = p_message AND status = 'streaming';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.chat_progress_message(uuid, uuid, text, bigint) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_progress_message(uuid, uuid, text, bigint) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.chat_progress_message(uuid, uuid, text, bigint) TO app_worker;

-- The form older generators call (during a rolling deploy): their text comes without a delta
-- count, so the count becomes unknown and no subscriber catches up from it.
CREATE OR REPLACE FUNCTION app.chat_progress_message(p_company uuid, p_message uuid, p_content text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE messages
       SET content = COALESCE(p_content, content),
           content_deltas = CASE WHEN p_content IS NULL THEN content_deltas END,
           heartbeat_at = now()
     WHERE company_id = p_company AND id = p_message AND status = 'streaming';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.chat_progress_message(uuid, uuid, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_progress_message(uuid, uuid, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.chat_progress_message(uuid, uuid, text) TO app_worker;

-- Streaming replies whose generator has been silent for longer than p_silence, oldest first.
CREATE OR REPLACE FUNCTION app.chat_silent_replies(p_silence interval, p_limit integer)
    RETURNS TABLE (id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT m.id FROM messages m
     WHERE m.status = 'streaming' AND m.heartbeat_at < now() - p_silence
     ORDER BY m.heartbeat_at
     LIMIT p_limit
$$;
ALTER FUNCTION app.chat_silent_replies(interval, integer) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_silent_replies(interval, integer) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.chat_silent_replies(interval, integer) TO app_worker;

-- Finalises a reply whose generator has been silent for longer than p_silence: FAILED with
-- p_reason and the text so far, p_content (the generator's live text) when it extends the
-- stored text, else the stored text. Exactly once: a concurrent caller skips the locked row,
-- and only a reply still streaming and silent changes. Returns the finalised message, or no row.
CREATE OR REPLACE FUNCTION app.chat_interrupt_message(p_message uuid, p_content text, p_reason text,
                                                      p_silence interval)
    RETURNS TABLE (company_id uuid, conversation_id uuid, role text, content text,
                   created_at timestamptz, model text, prompt_tokens integer, completion_tokens integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    UPDATE messages m
       SET status = 'failed', error = p_reason,
           content = CASE WHEN p_content IS NOT NULL AND starts_with(p_content, m.content)
                          THEN p_content ELSE m.content END
     WHERE m.id = (SELECT s.id FROM messages s
                    WHERE s.id = p_message AND s.status = 'streaming'
                      AND s.heartbeat_at < now() - p_silence
                      FOR UPDATE SKIP LOCKED)
    RETURNING m.company_id, m.conversation_id, m.role, m.content, m.created_at, m.model,
              m.prompt_tokens, m.completion_tokens
$$;
ALTER FUNCTION app.chat_interrupt_message(uuid, text, text, interval) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_interrupt_message(uuid, text, text, interval) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.chat_interrupt_message(uuid, text, text, interval) TO app_worker;

-- migration/sql/current/training.sql ----------------------------------------------------------
-- Conversations as training data: the one way anyone reads other people's conversations. For a
-- caller allowed to export training data (app.may('training_data', 'read'): admins), the
-- conversations of the caller's company whose use for training is allowed, one OpenAI chat
-- fine-tuning line each.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

-- One JSON Lines line per conversation: {"messages": [{"role": ..., "content": ...}, ...]}, the
-- conversation's system prompt first (when it has one), then its exchanges in order. An exchange
-- is a user message and the reply that follows it, taken only when the reply is complete (not
-- streaming, failed or cancelled) and not empty, and when the user message was sent in
-- [p_since, p_until) (NULL: unbounded). A conversation without such an exchange (a cleared one,
-- say) has no line; a deleted one is gone. Allowed: the owner's choice while the company lets its
-- people choose, else the company's default. Lines come in no particular order.
--
-- Other callers get no line: the function checks the permission, and the policy
-- conversations_training_export lets its owner read conversations only for such a caller, of
-- the caller's company.
--
-- SQL, not PL/pgSQL, on purpose (unlike the other definer functions): called in a select list
-- (`SELECT app.training_export(...)`), a SQL function's last query runs lazily, a row at a time,
-- so a cursor over it streams the export; PL/pgSQL would collect the whole result first.
CREATE OR REPLACE FUNCTION app.training_export(p_since timestamptz, p_until timestamptz)
    RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT json_build_object('messages', x.messages)::text
      FROM companies co
      JOIN conversations c ON c.company_id = co.id
      CROSS JOIN LATERAL (
          SELECT json_agg(json_build_object('role', t.role, 'content', t.content) ORDER BY t.seq) AS messages,
                 count(*) FILTER (WHERE t.role = 'assistant') AS replies
            FROM (
                SELECT -1::bigint AS seq, 'system'::text AS role, c.system_prompt AS content
                 WHERE c.system_prompt IS NOT NULL AND btrim(c.system_prompt) <> ''
                UNION ALL
                SELECT e.seq, e.role, e.content
                  FROM (SELECT m.seq, m.role, m.content, m.status, m.created_at,
                               lead(m.role) OVER w AS next_role, lead(m.status) OVER w AS next_status,
                               lead(m.content) OVER w AS next_content,
                               lag(m.role) OVER w AS prev_role, lag(m.created_at) OVER w AS prev_created_at
                          FROM messages m
                         WHERE m.company_id = c.company_id AND m.conversation_id = c.id
                        WINDOW w AS (ORDER BY m.seq)) e
                 WHERE (e.role = 'user' AND e.next_role = 'assistant' AND e.next_status = 'complete'
                        AND e.next_content <> ''
                        AND (p_since IS NULL OR e.created_at >= p_since)
                        AND (p_until IS NULL OR e.created_at < p_until))
                    OR (e.role = 'assistant' AND e.status = 'complete' AND e.content <> ''
                        AND e.prev_role = 'user'
                        AND (p_since IS NULL OR e.prev_created_at >= p_since)
                        AND (p_until IS NULL OR e.prev_created_at < p_until))
            ) t
      ) x
     WHERE co.id = (SELECT app.current_company_id())
       AND (SELECT app.may('training_data', 'read'))
       AND CASE WHEN co.training_users_may_change
                THEN coalesce(c.training_allowed, co.training_default_allowed)
                ELSE co.training_default_allowed END
       AND x.replies > 0
$$;
ALTER FUNCTION app.training_export(timestamptz, timestamptz) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.training_export(timestamptz, timestamptz) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.training_export(timestamptz, timestamptz) TO app_user;

-- migration/sql/current/user_profiles.sql -----------------------------------------------------
-- user_profiles (users and friendships): people as the caller may see them, owned by the NOLOGIN
-- role app_profiles, which reads the caller's company and nothing else. `relation` is the
-- caller's view of the pair: self, none, pending_outgoing, pending_incoming, friends, blocked
-- (the caller blocked them) or blocked_by (they blocked the caller; the API shows that as none).
-- Privacy settings are shown to the user themselves and admins only.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

-- Only for those who may read users (oneself always). No security barrier, so pages walk the index: masking happens in the
-- select list, so a caller's condition only ever sees masked values.
CREATE OR REPLACE VIEW user_profiles WITH (security_barrier = false) AS
SELECT u.id,
       u.company_id,
       CASE WHEN p.sees THEN u.email END AS email,
       u.display_name,
       u.role,
       CASE WHEN p.full_view OR (p.sees AND u.visible_attributes IS NULL) THEN u.attributes
            WHEN p.sees THEN (SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
                              FROM jsonb_each(u.attributes) e
                              WHERE e.key = ANY (u.visible_attributes))
            ELSE '{}'::jsonb END AS attributes,
       u.is_active,
       u.created_at,
       u.updated_at,
       u.last_active_at,
       p.relation,
       CASE WHEN p.full_view THEN u.profile_visibility END AS profile_visibility,
       CASE WHEN p.full_view THEN u.visible_attributes END AS visible_attributes,
       u.email_verified_at IS NOT NULL AS email_verified
FROM users u
LEFT JOIN LATERAL (
    SELECT fr.status, fr.requested_by, fr.blocked_by
    FROM friendships fr
    WHERE fr.company_id = u.company_id
      AND fr.user_a = LEAST(u.id, (SELECT app.current_user_id()))
      AND fr.user_b = GREATEST(u.id, (SELECT app.current_user_id()))
    LIMIT 1
) f ON true
CROSS JOIN LATERAL (
    SELECT v.full_view,
           v.full_view OR (COALESCE(f.status, '') <> 'blocked'
                           AND (u.profile_visibility = 'company'
                                OR (u.profile_visibility = 'friends' AND f.status = 'accepted'))) AS sees,
           CASE WHEN u.id = (SELECT app.current_user_id()) THEN 'self'
                WHEN f.status = 'accepted' THEN 'friends'
                WHEN f.status = 'pending' AND f.requested_by = u.id THEN 'pending_incoming'
                WHEN f.status = 'pending' THEN 'pending_outgoing'
                WHEN f.status = 'blocked' AND f.blocked_by = u.id THEN 'blocked_by'
                WHEN f.status = 'blocked' THEN 'blocked'
                ELSE 'none' END AS relation
    FROM (SELECT u.id = (SELECT app.current_user_id())
                 OR (SELECT app.current_role()) = 'admin' AS full_view) v
) p
WHERE u.company_id = (SELECT app.current_company_id())
  AND (u.id = (SELECT app.current_user_id()) OR (SELECT app.may('user', 'read')));
ALTER VIEW user_profiles OWNER TO app_profiles;
REVOKE ALL ON user_profiles FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON user_profiles TO app_user;

-- migration/sql/current/audience_users.sql ----------------------------------------------------
-- The audience views (users, friendships and the audience bitmaps): security barriers of
-- app_profiles, and a blocked pair never reads each other.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

CREATE OR REPLACE VIEW audience_users_admin WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.current_role()) = 'admin'
  AND (SELECT app.may('audience', 'read'));
ALTER VIEW audience_users_admin OWNER TO app_profiles;
REVOKE ALL ON audience_users_admin FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_users_admin TO app_user;

CREATE OR REPLACE VIEW audience_users WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.may('audience', 'read'))
  AND (u.id = (SELECT app.current_user_id())
       OR (u.profile_visibility = 'company' AND u.visible_attributes IS NULL
           AND NOT EXISTS (SELECT 1 FROM friendships f
                           WHERE f.company_id = u.company_id AND f.status = 'blocked'
                             AND f.user_a = LEAST(u.id, (SELECT app.current_user_id()))
                             AND f.user_b = GREATEST(u.id, (SELECT app.current_user_id())))));
ALTER VIEW audience_users OWNER TO app_profiles;
REVOKE ALL ON audience_users FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_users TO app_user;

-- The bitmaps of audience counts (audience_bits), masked to the people the caller may segment,
-- as the two views above draw them: admins the whole company; anyone else those who share their
-- whole profile with the company (`#shares`), less both members of a blocked pair, plus
-- themselves. A row shows only when some of those people hold its term, so no term is seen that
-- only others hold.
CREATE OR REPLACE VIEW audience_bitmaps WITH (security_barrier = true) AS
SELECT b.company_id, b.term, b.seg, b.bits & m.bits AS bits
FROM audience_bits b
JOIN (
    SELECT e.seg,
           CASE WHEN (SELECT app.current_role()) = 'admin' THEN e.bits
                ELSE (COALESCE(s.bits, B'0'::bit(1024)) & ~COALESCE(k.bits, B'0'::bit(1024)))
                     | (e.bits & COALESCE(me.bits, B'0'::bit(1024)))
           END AS bits
    FROM audience_bits e
    LEFT JOIN (SELECT h.seg, h.bits FROM audience_bits h
               WHERE h.company_id = (SELECT app.current_company_id()) AND h.term = '#shares'
                 AND (SELECT app.current_role()) IS DISTINCT FROM 'admin') s ON s.seg = e.seg
    LEFT JOIN (SELECT p.member / 1024 AS seg, bit_or(set_bit(B'0'::bit(1024), p.member % 1024, 1)) AS bits
               FROM audience_members p
               WHERE p.company_id = (SELECT app.current_company_id())
                 AND p.user_id IN (SELECT CASE WHEN f.user_a = (SELECT app.current_user_id()) THEN f.user_b
                                               ELSE f.user_a END
                                   FROM friendships f
                                   WHERE f.company_id = (SELECT app.current_company_id())
                                     AND f.status = 'blocked'
                                     AND (SELECT app.current_user_id()) IN (f.user_a, f.user_b))
               GROUP BY 1) k ON k.seg = e.seg
    LEFT JOIN (SELECT p.member / 1024 AS seg, set_bit(B'0'::bit(1024), p.member % 1024, 1) AS bits
               FROM audience_members p
               WHERE p.company_id = (SELECT app.current_company_id())
                 AND p.user_id = (SELECT app.current_user_id())) me ON me.seg = e.seg
    WHERE e.company_id = (SELECT app.current_company_id()) AND e.term = '*'
) m ON m.seg = b.seg
WHERE b.company_id = (SELECT app.current_company_id())
  AND (SELECT app.may('audience', 'read'))
  AND (b.bits & m.bits) <> B'0'::bit(1024);
ALTER VIEW audience_bitmaps OWNER TO app_profiles;
REVOKE ALL ON audience_bitmaps FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_bitmaps TO app_user;

-- migration/sql/current/audience_activities.sql -----------------------------------------------
-- Audience conditions over activities: what an audience filter may aggregate. Only activities
-- shared with the whole company (visibility 'company'), for admins too (no one reads a private
-- or friends-only activity through an audience count), of the caller's company, for callers who
-- may read audiences, and never those of someone in a blocked pair with the caller (as the
-- policies of activities say). A security barrier of app_profiles, like the audience views of
-- users; the people an audience is drawn from are still those of audience_users(_admin).
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs. It comes after activities.sql, whose grants it extends.

GRANT SELECT ON activities TO app_profiles;

DROP POLICY IF EXISTS activities_audience ON activities;
CREATE POLICY activities_audience ON activities FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()) AND visibility = 'company');

CREATE OR REPLACE VIEW audience_activities WITH (security_barrier = true) AS
SELECT a.company_id, a.user_id, a.kind_id, a.occurred_at, a.metrics
FROM activities a
WHERE a.company_id = (SELECT app.current_company_id())
  AND a.visibility = 'company'
  AND (SELECT app.may('audience', 'read'))
  AND NOT (a.user_id = ANY ((SELECT app.activity_blocked_ids())::uuid[]));
ALTER VIEW audience_activities OWNER TO app_profiles;
REVOKE ALL ON audience_activities FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_activities TO app_user;

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
