DROP FUNCTION IF EXISTS app.confirm_company_domain(uuid);
DROP FUNCTION IF EXISTS app.sign_up_member(uuid, text, text, text);
GRANT CREATE ON SCHEMA app TO app_auth;
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

REVOKE CREATE ON SCHEMA app FROM app_auth;
DROP TABLE IF EXISTS company_domains;
ALTER TABLE users DROP COLUMN IF EXISTS awaiting_verification;
