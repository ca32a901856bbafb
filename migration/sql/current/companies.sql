-- companies: members read their company; who manages it renames it and sets its training-data
-- policy (the default for conversations, and whether its people may choose otherwise). Created by
-- app.sign_up.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
REVOKE ALL ON companies FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON companies TO app_auth;
GRANT SELECT, UPDATE (name, training_default_allowed, training_users_may_change) ON companies TO app_user;

DROP POLICY IF EXISTS companies_definer ON companies;
CREATE POLICY companies_definer ON companies FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS companies_select ON companies;
CREATE POLICY companies_select ON companies FOR SELECT TO app_user
    USING (id = app.current_company_id() AND app.may('company', 'read'));

DROP POLICY IF EXISTS companies_update ON companies;
CREATE POLICY companies_update ON companies FOR UPDATE TO app_user
    USING (id = app.current_company_id() AND app.may('company', 'update'))
    WITH CHECK (id = app.current_company_id());

CREATE OR REPLACE TRIGGER companies_touch_updated_at BEFORE UPDATE ON companies
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
