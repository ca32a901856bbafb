-- Directory tables for what must be unique across companies: login_emails (an address, any
-- case), oidc_subjects (an OpenID provider's subject) and verified_domains (a domain one company
-- verified). Each is keyed by that value and names the company (and row) it belongs to, so a
-- lookup that starts without a company reads one row by its key, then the tenant tables by
-- (company_id, ...); triggers keep each in step with its tenant table in the same transaction,
-- and its primary key enforces the uniqueness the unique indexes of the tenant tables did
-- (users_email_key, identities_issuer_subject_key and company_domains_verified_key go: a
-- tenant table's unique keys all include company_id). The definer functions that looked up by
-- those values now read the directories. Current definitions: migration/sql/current/
-- directories.sql, auth.sql and identities.sql.

GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

CREATE TABLE IF NOT EXISTS login_emails (
    email       text NOT NULL CHECK (email = lower(email)),
    company_id  uuid NOT NULL,
    user_id     uuid NOT NULL,
    CONSTRAINT login_emails_pkey PRIMARY KEY (email)
);
CREATE TABLE IF NOT EXISTS oidc_subjects (
    issuer       text NOT NULL,
    subject      text NOT NULL,
    company_id   uuid NOT NULL,
    user_id      uuid NOT NULL,
    identity_id  uuid NOT NULL,
    CONSTRAINT oidc_subjects_pkey PRIMARY KEY (issuer, subject)
);
CREATE TABLE IF NOT EXISTS verified_domains (
    domain      text NOT NULL,
    company_id  uuid NOT NULL,
    domain_id   uuid NOT NULL,
    CONSTRAINT verified_domains_pkey PRIMARY KEY (domain)
);

-- What is there already (the owner reads every company's rows while RLS is not forced).
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE identities NO FORCE ROW LEVEL SECURITY;
ALTER TABLE company_domains NO FORCE ROW LEVEL SECURITY;
INSERT INTO login_emails (email, company_id, user_id)
    SELECT lower(u.email), u.company_id, u.id FROM users u;
INSERT INTO oidc_subjects (issuer, subject, company_id, user_id, identity_id)
    SELECT i.issuer, i.subject, i.company_id, i.user_id, i.id FROM identities i;
INSERT INTO verified_domains (domain, company_id, domain_id)
    SELECT d.domain, d.company_id, d.id FROM company_domains d WHERE d.verified_at IS NOT NULL;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE identities FORCE ROW LEVEL SECURITY;
ALTER TABLE company_domains FORCE ROW LEVEL SECURITY;

DROP INDEX IF EXISTS users_email_key;
ALTER TABLE identities DROP CONSTRAINT IF EXISTS identities_issuer_subject_key;
DROP INDEX IF EXISTS company_domains_verified_key;

ALTER TABLE login_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE login_emails FORCE ROW LEVEL SECURITY;
REVOKE ALL ON login_emails FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE ON login_emails TO app_auth;
DROP POLICY IF EXISTS login_emails_definer ON login_emails;
CREATE POLICY login_emails_definer ON login_emails FOR ALL TO app_auth USING (true) WITH CHECK (true);

ALTER TABLE oidc_subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_subjects FORCE ROW LEVEL SECURITY;
REVOKE ALL ON oidc_subjects FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE ON oidc_subjects TO app_auth;
DROP POLICY IF EXISTS oidc_subjects_definer ON oidc_subjects;
CREATE POLICY oidc_subjects_definer ON oidc_subjects FOR ALL TO app_auth USING (true) WITH CHECK (true);

ALTER TABLE verified_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE verified_domains FORCE ROW LEVEL SECURITY;
REVOKE ALL ON verified_domains FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE ON verified_domains TO app_auth;
DROP POLICY IF EXISTS verified_domains_definer ON verified_domains;
CREATE POLICY verified_domains_definer ON verified_domains FOR ALL TO app_auth USING (true) WITH CHECK (true);

-- users -> login_emails: one row per address (lowercase). An address another user has already
-- fails the write with a violation of login_emails_pkey.
CREATE OR REPLACE FUNCTION app.login_emails_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO login_emails (email, company_id, user_id)
        SELECT lower(n.email), n.company_id, n.id FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM login_emails e USING old_rows o
         WHERE e.email = lower(o.email) AND e.company_id = o.company_id AND e.user_id = o.id;
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.login_emails_sync() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.login_emails_sync() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

-- A changed address: the old key goes and the new one comes (a key is never updated in place,
-- so a directory distributed by its key moves the row between shards).
CREATE OR REPLACE FUNCTION app.login_emails_readdress() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    DELETE FROM login_emails e
     WHERE e.email = lower(OLD.email) AND e.company_id = OLD.company_id AND e.user_id = OLD.id;
    INSERT INTO login_emails (email, company_id, user_id) VALUES (lower(NEW.email), NEW.company_id, NEW.id);
    RETURN NULL;
END
$$;
ALTER FUNCTION app.login_emails_readdress() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.login_emails_readdress() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER users_login_emails_inserted AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.login_emails_sync();
CREATE OR REPLACE TRIGGER users_login_emails_deleted AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.login_emails_sync();
CREATE OR REPLACE TRIGGER users_login_emails_readdressed AFTER UPDATE OF email, company_id, id ON users
    FOR EACH ROW WHEN ((lower(OLD.email), OLD.company_id, OLD.id) IS DISTINCT FROM (lower(NEW.email), NEW.company_id, NEW.id))
    EXECUTE FUNCTION app.login_emails_readdress();

-- identities -> oidc_subjects: one row per (issuer, subject). An identity another user has
-- linked already fails the write with a violation of oidc_subjects_pkey.
CREATE OR REPLACE FUNCTION app.oidc_subjects_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM oidc_subjects s
         WHERE s.issuer = OLD.issuer AND s.subject = OLD.subject AND s.company_id = OLD.company_id
           AND s.identity_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO oidc_subjects (issuer, subject, company_id, user_id, identity_id)
            VALUES (NEW.issuer, NEW.subject, NEW.company_id, NEW.user_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.oidc_subjects_sync() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.oidc_subjects_sync() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER identities_oidc_subjects_added_or_removed AFTER INSERT OR DELETE ON identities
    FOR EACH ROW EXECUTE FUNCTION app.oidc_subjects_sync();
CREATE OR REPLACE TRIGGER identities_oidc_subjects_updated AFTER UPDATE OF issuer, subject, company_id, user_id, id ON identities
    FOR EACH ROW WHEN ((OLD.issuer, OLD.subject, OLD.company_id, OLD.user_id, OLD.id)
                       IS DISTINCT FROM (NEW.issuer, NEW.subject, NEW.company_id, NEW.user_id, NEW.id))
    EXECUTE FUNCTION app.oidc_subjects_sync();

-- company_domains -> verified_domains: one row per verified domain. A domain another company
-- has verified already fails the write with a violation of verified_domains_pkey.
CREATE OR REPLACE FUNCTION app.verified_domains_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.verified_at IS NOT NULL THEN
        DELETE FROM verified_domains v
         WHERE v.domain = OLD.domain AND v.company_id = OLD.company_id AND v.domain_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.verified_at IS NOT NULL THEN
        INSERT INTO verified_domains (domain, company_id, domain_id) VALUES (NEW.domain, NEW.company_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.verified_domains_sync() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.verified_domains_sync() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER company_domains_verified_domains_added_or_removed AFTER INSERT OR DELETE ON company_domains
    FOR EACH ROW EXECUTE FUNCTION app.verified_domains_sync();
CREATE OR REPLACE TRIGGER company_domains_verified_domains_updated
    AFTER UPDATE OF verified_at, domain, company_id, id ON company_domains
    FOR EACH ROW WHEN ((OLD.verified_at IS NULL, OLD.domain, OLD.company_id, OLD.id)
                       IS DISTINCT FROM (NEW.verified_at IS NULL, NEW.domain, NEW.company_id, NEW.id))
    EXECUTE FUNCTION app.verified_domains_sync();

-- The user of an address, of whichever company: the directory login_emails by its key, then
-- that company's user (each a lookup by a key; see directories.sql).
CREATE OR REPLACE FUNCTION app.login_lookup(p_email text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text, password_hash text, is_active boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE e login_emails%ROWTYPE;
BEGIN
    SELECT * INTO e FROM login_emails l WHERE l.email = lower(btrim(p_email));
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT u.id, u.company_id, u.role, u.password_hash, u.is_active
        FROM users u WHERE u.company_id = e.company_id AND u.id = e.user_id;
END
$$;
ALTER FUNCTION app.login_lookup(text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.login_lookup(text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.login_lookup(text) TO app_anon;

CREATE OR REPLACE FUNCTION app.create_password_reset(p_email text, p_token_hash text, p_expires_at timestamptz,
                                                     p_subject text, p_body text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    e login_emails%ROWTYPE;
    u users%ROWTYPE;
BEGIN
    SELECT * INTO e FROM login_emails WHERE email = lower(btrim(p_email));
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
    SELECT v.company_id INTO v_company FROM verified_domains v
     WHERE v.domain = lower(split_part(btrim(p_email), '@', 2));
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
    IF EXISTS (SELECT 1 FROM verified_domains v WHERE v.domain = d.domain) THEN
        RETURN 'taken';
    END IF;
    UPDATE company_domains SET verified_at = now(), verified_by = u.id WHERE company_id = d.company_id AND id = d.id;
    RETURN 'confirmed';
END
$$;
ALTER FUNCTION app.confirm_company_domain(uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.confirm_company_domain(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.confirm_company_domain(uuid) TO app_user;

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

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
