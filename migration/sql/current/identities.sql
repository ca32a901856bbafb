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
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('session', 'read'));

DROP POLICY IF EXISTS identities_delete ON identities;
CREATE POLICY identities_delete ON identities FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('session', 'delete'));

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
