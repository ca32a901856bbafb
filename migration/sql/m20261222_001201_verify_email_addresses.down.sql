DROP FUNCTION IF EXISTS app.change_email(uuid, uuid, text, text, timestamptz, text, text);
DROP FUNCTION IF EXISTS app.verify_email(text);
DROP FUNCTION IF EXISTS app.create_email_verification(uuid, uuid, text, timestamptz, text, text);
GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;
-- Uses a reset token once: sets the password and revokes every session of that user.
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
    INSERT INTO users (id, company_id, email, password_hash, display_name, role)
        VALUES (p_user, i.company_id, i.email, p_password_hash, btrim(p_display_name), i.role);
    UPDATE invitations SET accepted_at = now(), accepted_user_id = p_user WHERE id = i.id;
    RETURN QUERY SELECT p_user, i.company_id, i.role;
END
$$;
ALTER FUNCTION app.accept_invitation(text, uuid, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.accept_invitation(text, uuid, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.accept_invitation(text, uuid, text, text) TO app_anon;

DROP VIEW IF EXISTS user_profiles;
CREATE VIEW user_profiles WITH (security_barrier = false) AS
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
       CASE WHEN p.full_view THEN u.visible_attributes END AS visible_attributes
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
DROP TABLE IF EXISTS email_verifications;
ALTER TABLE users DROP COLUMN IF EXISTS email_verified_at;
