-- company_domains: a company's e-mail domains. Its admins add and remove them; a domain counts
-- (verified_at) once an admin whose own address is verified and in that domain confirms it,
-- through app.confirm_company_domain; one company at most verifies a domain.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

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
    USING (company_id = app.current_company_id() AND app.may('company', 'update'))
    WITH CHECK (company_id = app.current_company_id() AND app.may('company', 'update')
                AND verified_at IS NULL AND verified_by IS NULL
                AND added_by = app.current_user_id());

CREATE OR REPLACE TRIGGER company_domains_touch_updated_at BEFORE UPDATE ON company_domains
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
