-- roles (custom roles): read by everyone of the company (each request's permissions are read
-- from here, in its own transaction), written by whoever manages the company. app.may, a
-- definer of app_auth, reads the caller's company's roles and nothing else.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
REVOKE ALL ON roles FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT ON roles TO app_auth;
GRANT SELECT, INSERT, UPDATE, DELETE ON roles TO app_user;

DROP POLICY IF EXISTS roles_definer ON roles;
CREATE POLICY roles_definer ON roles FOR SELECT TO app_auth
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS roles_select ON roles;
CREATE POLICY roles_select ON roles FOR SELECT TO app_user
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS roles_insert ON roles;
CREATE POLICY roles_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS roles_update ON roles;
CREATE POLICY roles_update ON roles FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS roles_delete ON roles;
CREATE POLICY roles_delete ON roles FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

CREATE OR REPLACE TRIGGER roles_touch_updated_at BEFORE UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
