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
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_oidc_providers_insert ON company_oidc_providers;
CREATE POLICY company_oidc_providers_insert ON company_oidc_providers FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_oidc_providers_update ON company_oidc_providers;
CREATE POLICY company_oidc_providers_update ON company_oidc_providers FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS company_oidc_providers_delete ON company_oidc_providers;
CREATE POLICY company_oidc_providers_delete ON company_oidc_providers FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

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
