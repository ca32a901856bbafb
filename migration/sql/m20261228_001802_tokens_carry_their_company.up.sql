-- One-time secrets carry their company: a refresh, password-reset, invitation, verification or
-- invite-link token is a prefix, the company's id and 256 random bits (server/src/auth/
-- tokens.rs), so the server knows the company before any lookup and the definer functions look
-- the token's hash up by (company_id, token_hash), never across companies. Each function that
-- takes a token takes its company first (the old signatures go: tokens issued before have no
-- company and are refused). The tokens' unique keys are (company_id, token_hash). A session's
-- state is looked up by its company too (app.session_state).
-- Current definitions: migration/sql/current/auth.sql.

GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

ALTER TABLE password_resets DROP CONSTRAINT IF EXISTS password_resets_token_hash_key;
ALTER TABLE password_resets ADD CONSTRAINT password_resets_company_id_token_hash_key UNIQUE (company_id, token_hash);
ALTER TABLE invitations DROP CONSTRAINT IF EXISTS invitations_token_hash_key;
ALTER TABLE invitations ADD CONSTRAINT invitations_company_id_token_hash_key UNIQUE (company_id, token_hash);
ALTER TABLE email_verifications DROP CONSTRAINT IF EXISTS email_verifications_token_hash_key;
ALTER TABLE email_verifications ADD CONSTRAINT email_verifications_company_id_token_hash_key UNIQUE (company_id, token_hash);
ALTER TABLE invite_links DROP CONSTRAINT IF EXISTS invite_links_token_hash_key;
ALTER TABLE invite_links ADD CONSTRAINT invite_links_company_id_token_hash_key UNIQUE (company_id, token_hash);

DROP FUNCTION IF EXISTS app.session_state(uuid);
DROP FUNCTION IF EXISTS app.refresh_session(text, text, text, interval, interval);
DROP FUNCTION IF EXISTS app.create_password_reset(text, text, timestamptz, text, text);
DROP FUNCTION IF EXISTS app.consume_password_reset(text, text);
DROP FUNCTION IF EXISTS app.accept_invitation(text, uuid, text, text);
DROP FUNCTION IF EXISTS app.pending_password_reset(text);
DROP FUNCTION IF EXISTS app.pending_invitation(text);
DROP FUNCTION IF EXISTS app.verify_email(text);
DROP FUNCTION IF EXISTS app.accept_invite_link(text, uuid, text, text, text);

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

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
