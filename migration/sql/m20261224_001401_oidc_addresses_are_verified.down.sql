-- Users created by a first OpenID sign-in start unverified again.

CREATE OR REPLACE FUNCTION app.oidc_sign_up(p_company uuid, p_company_name text, p_user uuid, p_email text,
                                            p_display_name text, p_identity uuid, p_provider text,
                                            p_issuer text, p_subject text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    INSERT INTO companies (id, name) VALUES (p_company, btrim(p_company_name));
    INSERT INTO users (id, company_id, email, password_hash, display_name, role)
        VALUES (p_user, p_company, btrim(p_email), NULL, btrim(p_display_name), 'admin');
    INSERT INTO identities (id, company_id, user_id, provider, issuer, subject, email, last_used_at)
        VALUES (p_identity, p_company, p_user, p_provider, p_issuer, p_subject, btrim(p_email), now());
END
$$;

CREATE OR REPLACE FUNCTION app.oidc_join(p_company uuid, p_user uuid, p_email text, p_display_name text,
                                         p_role text, p_identity uuid, p_provider text, p_issuer text,
                                         p_subject text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    INSERT INTO users (id, company_id, email, password_hash, display_name, role)
        VALUES (p_user, p_company, btrim(p_email), NULL, btrim(p_display_name), p_role);
    INSERT INTO identities (id, company_id, user_id, provider, issuer, subject, email, last_used_at)
        VALUES (p_identity, p_company, p_user, p_provider, p_issuer, p_subject, btrim(p_email), now());
END
$$;
