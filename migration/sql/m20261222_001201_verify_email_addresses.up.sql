-- Addresses are verified: a user's address counts as theirs once they follow a one-time link
-- sent to it (`email_verifications`, hashed tokens, single use, expiring), or once they used a
-- password reset or an invitation that came to it. `user_profiles` shows whether it is.

GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

ALTER TABLE users ADD COLUMN IF NOT EXISTS email_verified_at timestamptz;

CREATE TABLE IF NOT EXISTS email_verifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid NOT NULL,
    user_id     uuid NOT NULL,
    -- The address the token was sent to: it verifies only while it is still the user's.
    email       text NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT email_verifications_user_fkey FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS email_verifications_user_idx ON email_verifications (company_id, user_id);

ALTER TABLE email_verifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_verifications FORCE ROW LEVEL SECURITY;
REVOKE ALL ON email_verifications FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON email_verifications TO app_auth;

DROP POLICY IF EXISTS email_verifications_definer ON email_verifications;
CREATE POLICY email_verifications_definer ON email_verifications FOR ALL TO app_auth USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER email_verifications_touch_updated_at BEFORE UPDATE ON email_verifications
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Uses a reset token once: sets the password and revokes every session of that user. The token
-- came by e-mail, so the address is verified too.
-- Returns the revoked session ids (and the user) or nothing when the token is not usable.
CREATE OR REPLACE FUNCTION app.consume_password_reset(p_token_hash text, p_password_hash text)
    RETURNS TABLE (user_id uuid, company_id uuid, revoked_session uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE r password_resets%ROWTYPE;
BEGIN
    SELECT * INTO r FROM password_resets
        WHERE token_hash = p_token_hash AND used_at IS NULL AND expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE password_resets SET used_at = now() WHERE id = r.id;
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
ALTER FUNCTION app.consume_password_reset(text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.consume_password_reset(text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.consume_password_reset(text, text) TO app_anon;

CREATE OR REPLACE FUNCTION app.accept_invitation(p_token_hash text, p_user uuid, p_password_hash text, p_display_name text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE i invitations%ROWTYPE;
BEGIN
    SELECT * INTO i FROM invitations
        WHERE token_hash = p_token_hash AND accepted_at IS NULL AND expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The invitation came to that address: it is verified.
    INSERT INTO users (id, company_id, email, password_hash, display_name, role, email_verified_at)
        VALUES (p_user, i.company_id, i.email, p_password_hash, btrim(p_display_name), i.role, now());
    UPDATE invitations SET accepted_at = now(), accepted_user_id = p_user WHERE id = i.id;
    RETURN QUERY SELECT p_user, i.company_id, i.role;
END
$$;
ALTER FUNCTION app.accept_invitation(text, uuid, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.accept_invitation(text, uuid, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.accept_invitation(text, uuid, text, text) TO app_anon;

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
-- address is verified. The user, or no row.
CREATE OR REPLACE FUNCTION app.verify_email(p_token_hash text)
    RETURNS TABLE (user_id uuid, company_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE v email_verifications%ROWTYPE;
BEGIN
    SELECT * INTO v FROM email_verifications
     WHERE token_hash = p_token_hash AND used_at IS NULL AND expires_at > now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE email_verifications SET used_at = now() WHERE id = v.id;
    UPDATE users SET email_verified_at = COALESCE(email_verified_at, now())
     WHERE id = v.user_id AND users.company_id = v.company_id AND lower(email) = lower(v.email);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT v.user_id, v.company_id;
END
$$;
ALTER FUNCTION app.verify_email(text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.verify_email(text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.verify_email(text) TO app_anon;

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

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
