-- presets: one's own and the company's shared ones; whoever manages audiences sees and changes
-- every preset of the company. A preset keeps its owner.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE presets ENABLE ROW LEVEL SECURITY;
ALTER TABLE presets FORCE ROW LEVEL SECURITY;
REVOKE ALL ON presets FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE, UPDATE (name, description, filter, visibility) ON presets TO app_user;

DROP POLICY IF EXISTS presets_select ON presets;
CREATE POLICY presets_select ON presets FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('preset', 'read')
           AND (owner_id = app.current_user_id() OR visibility = 'company'
                OR app.may('audience', 'manage')));

DROP POLICY IF EXISTS presets_insert ON presets;
CREATE POLICY presets_insert ON presets FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('preset', 'create')
                AND owner_id = app.current_user_id());

DROP POLICY IF EXISTS presets_update ON presets;
CREATE POLICY presets_update ON presets FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('preset', 'update')
           AND (owner_id = app.current_user_id() OR app.may('audience', 'manage')))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS presets_delete ON presets;
CREATE POLICY presets_delete ON presets FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('preset', 'delete')
           AND (owner_id = app.current_user_id() OR app.may('audience', 'manage')));

CREATE OR REPLACE TRIGGER presets_touch_updated_at BEFORE UPDATE ON presets
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
