-- Companies verify e-mail domains: an admin adds a domain, and it counts once an admin whose
-- own address is verified and in that domain confirms it. Signing up with `joinCompany` and an
-- address in a verified domain makes a member of that company, inactive until the address is
-- verified (`users.awaiting_verification`).

GRANT CREATE ON SCHEMA app TO app_auth;

ALTER TABLE users ADD COLUMN IF NOT EXISTS awaiting_verification boolean NOT NULL DEFAULT false;

CREATE TABLE IF NOT EXISTS company_domains (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    domain       text NOT NULL,
    added_by     uuid,
    verified_at  timestamptz,
    verified_by  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT company_domains_domain_check CHECK (
        domain = lower(domain) AND length(domain) <= 253
        AND domain ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT company_domains_company_id_domain_key UNIQUE (company_id, domain)
);
-- One company at most verifies a domain.
CREATE UNIQUE INDEX IF NOT EXISTS company_domains_verified_key ON company_domains (domain)
    WHERE verified_at IS NOT NULL;

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

-- Uses a verification token once: while the address it was sent to is still its user's, that
-- address is verified, and a member who joined by the company's domain becomes active. The user,
-- or no row.
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
    UPDATE users SET email_verified_at = COALESCE(email_verified_at, now()),
                     is_active = is_active OR awaiting_verification, awaiting_verification = false
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

-- Signs up user p_user as a member of the company that verified the domain of p_email, if one
-- did: inactive until the address is verified (app.verify_email). The company, or NULL when no
-- company verified that domain.
CREATE OR REPLACE FUNCTION app.sign_up_member(p_user uuid, p_email text, p_password_hash text, p_display_name text)
    RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE v_company uuid;
BEGIN
    SELECT d.company_id INTO v_company FROM company_domains d
     WHERE d.domain = lower(split_part(btrim(p_email), '@', 2)) AND d.verified_at IS NOT NULL;
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
    IF EXISTS (SELECT 1 FROM company_domains o WHERE o.domain = d.domain AND o.verified_at IS NOT NULL) THEN
        RETURN 'taken';
    END IF;
    UPDATE company_domains SET verified_at = now(), verified_by = u.id WHERE id = d.id;
    RETURN 'confirmed';
END
$$;
ALTER FUNCTION app.confirm_company_domain(uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.confirm_company_domain(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.confirm_company_domain(uuid) TO app_user;

REVOKE CREATE ON SCHEMA app FROM app_auth;
