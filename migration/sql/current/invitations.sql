-- invitations: read by whoever may read invitations, made by whoever may create them, in their
-- own name; accepted only through app.accept_invitation.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
REVOKE ALL ON invitations FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON invitations TO app_auth;
GRANT SELECT, INSERT ON invitations TO app_user;

DROP POLICY IF EXISTS invitations_definer ON invitations;
CREATE POLICY invitations_definer ON invitations FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS invitations_select ON invitations;
CREATE POLICY invitations_select ON invitations FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'read')));

DROP POLICY IF EXISTS invitations_insert ON invitations;
CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND invited_by = (SELECT app.current_user_id()) AND accepted_at IS NULL
                AND accepted_user_id IS NULL);

CREATE OR REPLACE TRIGGER invitations_touch_updated_at BEFORE UPDATE ON invitations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
