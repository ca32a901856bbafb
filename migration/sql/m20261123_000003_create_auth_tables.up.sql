
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_auth') THEN
        CREATE ROLE app_auth NOLOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
GRANT app_auth TO CURRENT_USER;
GRANT USAGE ON SCHEMA app TO app_auth;
GRANT USAGE ON SCHEMA public TO app_auth;
-- Owners of definer objects must be allowed to create in the schema while they are handed
-- over (superusers skip that check; a managed service's CREATEROLE owner does not).
GRANT CREATE ON SCHEMA app, public TO app_auth;

CREATE TABLE IF NOT EXISTS sessions (
    id                   uuid PRIMARY KEY,
    company_id           uuid NOT NULL,
    user_id              uuid NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    last_used_at         timestamptz NOT NULL DEFAULT now(),
    -- Sliding: each refresh moves it, never past absolute_expires_at.
    expires_at           timestamptz NOT NULL,
    absolute_expires_at  timestamptz NOT NULL,
    revoked_at           timestamptz,
    revoked_reason       text,
    user_agent           text,
    ip                   text,
    fingerprint_hash     text NOT NULL,
    CONSTRAINT sessions_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT sessions_user_fkey FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS sessions_user_idx ON sessions (company_id, user_id) WHERE revoked_at IS NULL;

CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash     text PRIMARY KEY,
    company_id     uuid NOT NULL,
    session_id     uuid NOT NULL,
    user_id        uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    superseded_at  timestamptz,
    CONSTRAINT refresh_tokens_session_fkey FOREIGN KEY (company_id, session_id)
        REFERENCES sessions (company_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS refresh_tokens_session_idx ON refresh_tokens (session_id);
-- A family has exactly one live token.
CREATE UNIQUE INDEX IF NOT EXISTS refresh_tokens_live_key ON refresh_tokens (session_id) WHERE superseded_at IS NULL;

CREATE TABLE IF NOT EXISTS password_resets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid NOT NULL,
    user_id     uuid NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT password_resets_user_fkey FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS invitations (
    id                uuid PRIMARY KEY,
    company_id        uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    email             text NOT NULL CHECK (position('@' IN email) > 1 AND length(email) <= 320),
    role              text NOT NULL,
    token_hash        text NOT NULL UNIQUE,
    invited_by        uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    accepted_at       timestamptz,
    accepted_user_id  uuid,
    CONSTRAINT invitations_company_id_id_key UNIQUE (company_id, id)
);
CREATE INDEX IF NOT EXISTS invitations_company_idx ON invitations (company_id, created_at);

-- What a mailer drains: it reads unsent rows as the owner (or a role of its own), sends, and
-- sets sent_at. Request roles may only add to it: the bodies hold one-time links.
CREATE TABLE IF NOT EXISTS outbound_emails (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    recipient   text NOT NULL,
    template    text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text
);
CREATE INDEX IF NOT EXISTS outbound_emails_unsent_idx ON outbound_emails (created_at) WHERE sent_at IS NULL;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sessions', 'refresh_tokens', 'password_resets', 'invitations', 'outbound_emails'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_touch_updated_at', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at()',
                       t || '_touch_updated_at', t);
    END LOOP;
END
$$;

-- Request roles ------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE ON sessions TO app_user;
GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO app_user;
GRANT SELECT, INSERT, UPDATE ON invitations TO app_user;
GRANT INSERT ON outbound_emails TO app_user;

DROP POLICY IF EXISTS sessions_own ON sessions;
CREATE POLICY sessions_own ON sessions FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
-- Admins see and revoke the sessions of their company (deactivating a user revokes them).
DROP POLICY IF EXISTS sessions_admin ON sessions;
CREATE POLICY sessions_admin ON sessions FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');

DROP POLICY IF EXISTS refresh_tokens_own ON refresh_tokens;
CREATE POLICY refresh_tokens_own ON refresh_tokens FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS invitations_admin ON invitations;
CREATE POLICY invitations_admin ON invitations FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');

DROP POLICY IF EXISTS outbound_emails_insert ON outbound_emails;
CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()));

-- The definer role: exactly what its functions need ------------------------------------------
GRANT SELECT, INSERT, UPDATE ON companies, users, sessions, refresh_tokens, password_resets, invitations TO app_auth;
GRANT INSERT ON outbound_emails TO app_auth;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['companies', 'users', 'sessions', 'refresh_tokens', 'password_resets', 'invitations', 'outbound_emails'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON %I', t || '_definer', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR ALL TO app_auth USING (true) WITH CHECK (true)', t || '_definer', t);
    END LOOP;
END
$$;

-- Opens every request transaction in one round trip: switches to app_user (or app_anon when
-- p_user is NULL), sets the identity the policies read, optionally makes the transaction
-- read-only, and reports whether the identity is a live user of that company with that role
-- and a live session. Everything is transaction-local, so nothing survives into the next use
-- of the connection. (No SET clause on purpose: names are schema-qualified instead, and the
-- role change must outlive the call.)
CREATE OR REPLACE FUNCTION app.begin_request(p_user uuid, p_company uuid, p_role text, p_session uuid, p_read_only boolean)
    RETURNS boolean
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF p_read_only THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
    IF p_user IS NULL THEN
        PERFORM pg_catalog.set_config('role', 'app_anon', true);
        RETURN true;
    END IF;
    PERFORM pg_catalog.set_config('role', 'app_user', true),
            pg_catalog.set_config('app.user_id', p_user::text, true),
            pg_catalog.set_config('app.company_id', p_company::text, true),
            pg_catalog.set_config('app.role', p_role, true);
    RETURN EXISTS (
        SELECT 1 FROM public.users u
        WHERE u.id = p_user AND u.company_id = p_company AND u.role = p_role AND u.is_active
    ) AND EXISTS (
        SELECT 1 FROM public.sessions s
        WHERE s.id = p_session AND s.company_id = p_company AND s.user_id = p_user
          AND s.revoked_at IS NULL AND s.absolute_expires_at > now()
    );
END
$$;
REVOKE ALL ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) TO app_authenticator;

-- 'active', 'revoked' (or expired) or 'missing': what the session cache stores.
CREATE OR REPLACE FUNCTION app.session_state(p_session uuid) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    SELECT COALESCE((
        SELECT CASE WHEN s.revoked_at IS NULL AND s.absolute_expires_at > now() AND u.is_active
                    THEN 'active' ELSE 'revoked' END
        FROM sessions s JOIN users u ON u.company_id = s.company_id AND u.id = s.user_id
        WHERE s.id = p_session), 'missing')
$$;

CREATE OR REPLACE FUNCTION app.login_lookup(p_email text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text, password_hash text, is_active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    SELECT u.id, u.company_id, u.role, u.password_hash, u.is_active
    FROM users u WHERE lower(u.email) = lower(btrim(p_email))
$$;

CREATE OR REPLACE FUNCTION app.sign_up(p_company uuid, p_company_name text, p_user uuid, p_email text,
                                       p_password_hash text, p_display_name text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
BEGIN
    INSERT INTO companies (id, name) VALUES (p_company, btrim(p_company_name));
    INSERT INTO users (id, company_id, email, password_hash, display_name, role)
        VALUES (p_user, p_company, btrim(p_email), p_password_hash, btrim(p_display_name), 'admin');
END
$$;

CREATE OR REPLACE FUNCTION app.create_session(p_session uuid, p_user uuid, p_company uuid, p_token_hash text,
                                              p_expires_at timestamptz, p_absolute_expires_at timestamptz,
                                              p_user_agent text, p_ip text, p_fingerprint text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
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

-- Rotates a refresh token. The successor of a token is derived from it (an HMAC the server
-- computes), so p_next_hash is the same for every presentation of the same token: a retry of
-- the direct predecessor within the grace window gets the same live family, never a second.
-- outcome: rotated | replayed | invalid | revoked | expired | inactive | fingerprint | reused
CREATE OR REPLACE FUNCTION app.refresh_session(p_token_hash text, p_next_hash text, p_fingerprint text,
                                               p_grace interval, p_sliding interval)
    RETURNS TABLE (outcome text, session_id uuid, user_id uuid, company_id uuid, role text, expires_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
DECLARE
    t refresh_tokens%ROWTYPE;
    s sessions%ROWTYPE;
    u users%ROWTYPE;
    next_expiry timestamptz;
BEGIN
    SELECT * INTO t FROM refresh_tokens WHERE token_hash = p_token_hash;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::timestamptz;
        RETURN;
    END IF;
    -- Serialize refreshes of one family.
    SELECT * INTO s FROM sessions WHERE id = t.session_id FOR UPDATE;
    SELECT * INTO t FROM refresh_tokens WHERE token_hash = p_token_hash;
    SELECT * INTO u FROM users WHERE id = s.user_id AND users.company_id = s.company_id;
    IF s.revoked_at IS NOT NULL THEN
        RETURN QUERY SELECT 'revoked'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    IF now() >= s.expires_at OR now() >= s.absolute_expires_at THEN
        RETURN QUERY SELECT 'expired'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    IF NOT u.is_active THEN
        UPDATE sessions SET revoked_at = now(), revoked_reason = 'inactive' WHERE id = s.id;
        RETURN QUERY SELECT 'inactive'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    IF s.fingerprint_hash <> p_fingerprint THEN
        UPDATE sessions SET revoked_at = now(), revoked_reason = 'fingerprint' WHERE id = s.id;
        RETURN QUERY SELECT 'fingerprint'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    next_expiry := least(now() + p_sliding, s.absolute_expires_at);
    IF t.superseded_at IS NULL THEN
        UPDATE refresh_tokens SET superseded_at = now() WHERE token_hash = p_token_hash;
        INSERT INTO refresh_tokens (token_hash, company_id, session_id, user_id)
            VALUES (p_next_hash, s.company_id, s.id, s.user_id);
        UPDATE sessions SET last_used_at = now(), expires_at = next_expiry WHERE id = s.id;
        RETURN QUERY SELECT 'rotated'::text, s.id, s.user_id, s.company_id, u.role, next_expiry;
        RETURN;
    END IF;
    IF now() - t.superseded_at <= p_grace AND EXISTS (
        SELECT 1 FROM refresh_tokens r
        WHERE r.session_id = s.id AND r.token_hash = p_next_hash AND r.superseded_at IS NULL
    ) THEN
        RETURN QUERY SELECT 'replayed'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
        RETURN;
    END IF;
    UPDATE sessions SET revoked_at = now(), revoked_reason = 'reuse' WHERE id = s.id;
    RETURN QUERY SELECT 'reused'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
END
$$;

CREATE OR REPLACE FUNCTION app.create_password_reset(p_email text, p_token_hash text, p_expires_at timestamptz,
                                                     p_subject text, p_body text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
DECLARE u users%ROWTYPE;
BEGIN
    SELECT * INTO u FROM users WHERE lower(email) = lower(btrim(p_email)) AND is_active;
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

-- Uses a reset token once: sets the password and revokes every session of that user.
-- Returns the revoked session ids (and the user) or nothing when the token is not usable.
CREATE OR REPLACE FUNCTION app.consume_password_reset(p_token_hash text, p_password_hash text)
    RETURNS TABLE (user_id uuid, company_id uuid, revoked_session uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
DECLARE r password_resets%ROWTYPE;
BEGIN
    SELECT * INTO r FROM password_resets
        WHERE token_hash = p_token_hash AND used_at IS NULL AND expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE password_resets SET used_at = now() WHERE id = r.id;
    UPDATE users SET password_hash = p_password_hash WHERE id = r.user_id AND users.company_id = r.company_id AND is_active;
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

CREATE OR REPLACE FUNCTION app.accept_invitation(p_token_hash text, p_user uuid, p_password_hash text, p_display_name text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
DECLARE i invitations%ROWTYPE;
BEGIN
    SELECT * INTO i FROM invitations
        WHERE token_hash = p_token_hash AND accepted_at IS NULL AND expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO users (id, company_id, email, password_hash, display_name, role)
        VALUES (p_user, i.company_id, i.email, p_password_hash, btrim(p_display_name), i.role);
    UPDATE invitations SET accepted_at = now(), accepted_user_id = p_user WHERE id = i.id;
    RETURN QUERY SELECT p_user, i.company_id, i.role;
END
$$;

-- The e-mail a usable reset token or invitation is for (to check the password policy first).
CREATE OR REPLACE FUNCTION app.pending_password_reset(p_token_hash text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    SELECT u.email FROM password_resets r JOIN users u ON u.company_id = r.company_id AND u.id = r.user_id
    WHERE r.token_hash = p_token_hash AND r.used_at IS NULL AND r.expires_at > now() AND u.is_active
$$;
CREATE OR REPLACE FUNCTION app.pending_invitation(p_token_hash text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    SELECT i.email FROM invitations i
    WHERE i.token_hash = p_token_hash AND i.accepted_at IS NULL AND i.expires_at > now()
$$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app.pending_password_reset(text)',
        'app.pending_invitation(text)',
        'app.session_state(uuid)',
        'app.login_lookup(text)',
        'app.sign_up(uuid, text, uuid, text, text, text)',
        'app.create_session(uuid, uuid, uuid, text, timestamptz, timestamptz, text, text, text)',
        'app.refresh_session(text, text, text, interval, interval)',
        'app.create_password_reset(text, text, timestamptz, text, text)',
        'app.consume_password_reset(text, text)',
        'app.accept_invitation(text, uuid, text, text)'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO app_auth', f);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_authenticator', f);
    END LOOP;
END
$$;
REVOKE CREATE ON SCHEMA app, public FROM app_auth;
