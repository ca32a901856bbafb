-- The unique indexes of the tenant tables again instead of the directory tables, and the
-- definer functions that looked up by those values as they were.

GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

CREATE OR REPLACE FUNCTION app.login_lookup(p_email text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text, password_hash text, is_active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT u.id, u.company_id, u.role, u.password_hash, u.is_active
    FROM users u WHERE lower(u.email) = lower(btrim(p_email))
$$;
ALTER FUNCTION app.login_lookup(text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.login_lookup(text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.login_lookup(text) TO app_anon;

CREATE OR REPLACE FUNCTION app.create_password_reset(p_email text, p_token_hash text, p_expires_at timestamptz,
                                                     p_subject text, p_body text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
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
ALTER FUNCTION app.create_password_reset(text, text, timestamptz, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.create_password_reset(text, text, timestamptz, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.create_password_reset(text, text, timestamptz, text, text) TO app_anon;

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

-- The user an identity is linked to, of whichever company; notes that it was used.
CREATE OR REPLACE FUNCTION app.oidc_identity(p_issuer text, p_subject text)
    RETURNS TABLE (identity_id uuid, user_id uuid, company_id uuid, role text, is_active boolean)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
    UPDATE identities i SET last_used_at = now()
    FROM users u
    WHERE i.issuer = p_issuer AND i.subject = p_subject AND u.company_id = i.company_id AND u.id = i.user_id
    RETURNING i.id, u.id, u.company_id, u.role, u.is_active
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
    linked_user uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user AND company_id = p_company AND is_active) THEN
        RETURN 'no_user';
    END IF;
    INSERT INTO identities (id, company_id, user_id, provider, issuer, subject, email, last_used_at)
        VALUES (p_id, p_company, p_user, p_provider, p_issuer, p_subject, p_email, now())
        ON CONFLICT ON CONSTRAINT identities_issuer_subject_key DO NOTHING;
    IF FOUND THEN
        RETURN 'linked';
    END IF;
    SELECT i.user_id INTO linked_user FROM identities i WHERE i.issuer = p_issuer AND i.subject = p_subject;
    IF linked_user = p_user THEN
        RETURN 'already';
    END IF;
    RETURN 'taken';
END
$$;
ALTER FUNCTION app.oidc_link(uuid, uuid, uuid, text, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.oidc_link(uuid, uuid, uuid, text, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.oidc_link(uuid, uuid, uuid, text, text, text, text) TO app_anon;

DROP TRIGGER IF EXISTS company_domains_verified_domains_updated ON company_domains;
DROP TRIGGER IF EXISTS company_domains_verified_domains_added_or_removed ON company_domains;
DROP TRIGGER IF EXISTS identities_oidc_subjects_updated ON identities;
DROP TRIGGER IF EXISTS identities_oidc_subjects_added_or_removed ON identities;
DROP TRIGGER IF EXISTS users_login_emails_readdressed ON users;
DROP TRIGGER IF EXISTS users_login_emails_deleted ON users;
DROP TRIGGER IF EXISTS users_login_emails_inserted ON users;
DROP FUNCTION IF EXISTS app.verified_domains_sync();
DROP FUNCTION IF EXISTS app.oidc_subjects_sync();
DROP FUNCTION IF EXISTS app.login_emails_readdress();
DROP FUNCTION IF EXISTS app.login_emails_sync();
DROP TABLE IF EXISTS verified_domains;
DROP TABLE IF EXISTS oidc_subjects;
DROP TABLE IF EXISTS login_emails;

CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email));
ALTER TABLE identities ADD CONSTRAINT identities_issuer_subject_key UNIQUE (issuer, subject);
CREATE UNIQUE INDEX IF NOT EXISTS company_domains_verified_key ON company_domains (domain)
    WHERE verified_at IS NOT NULL;

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
