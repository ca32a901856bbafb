-- audience_fields: read with audiences, written by whoever manages audiences.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE audience_fields ENABLE ROW LEVEL SECURITY;
ALTER TABLE audience_fields FORCE ROW LEVEL SECURITY;
REVOKE ALL ON audience_fields FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON audience_fields TO app_user;

DROP POLICY IF EXISTS audience_fields_select ON audience_fields;
CREATE POLICY audience_fields_select ON audience_fields FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('audience', 'read'));

DROP POLICY IF EXISTS audience_fields_insert ON audience_fields;
CREATE POLICY audience_fields_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('audience', 'manage'));

DROP POLICY IF EXISTS audience_fields_update ON audience_fields;
CREATE POLICY audience_fields_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('audience', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS audience_fields_delete ON audience_fields;
CREATE POLICY audience_fields_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('audience', 'manage'));

CREATE OR REPLACE TRIGGER audience_fields_touch_updated_at BEFORE UPDATE ON audience_fields
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
