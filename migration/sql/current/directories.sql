-- Directory tables: what must be unique across companies, keyed by that value, with the
-- company (and row) it belongs to. A lookup that starts without a company (signing in by
-- e-mail, by an OpenID identity, signing up by a verified domain) reads one row here by its
-- key, then the tenant tables by (company_id, ...): never a search of every company. Each is
-- kept in step with its tenant table by the triggers below, in the same transaction as the
-- write; its primary key is what enforces the uniqueness across companies. Only the definer
-- role app_auth reads or writes them (through the definer functions and these triggers);
-- request roles have no grant at all. `migration::DIRECTORY_TABLES` lists them with how a
-- distributed deployment places each.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

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
