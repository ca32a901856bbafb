-- sessions: created by definer functions. A request sees and revokes its user's own live
-- sessions, or any of the company's as someone who manages users (deactivation); a revoked
-- session never comes back and none is extended.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
REVOKE ALL ON sessions FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON sessions TO app_auth;
GRANT SELECT, UPDATE (revoked_at, revoked_reason) ON sessions TO app_user;

DROP POLICY IF EXISTS sessions_definer ON sessions;
CREATE POLICY sessions_definer ON sessions FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS sessions_select ON sessions;
CREATE POLICY sessions_select ON sessions FOR SELECT TO app_user
    USING (company_id = app.current_company_id()
           AND ((user_id = app.current_user_id() AND app.may('session', 'read'))
                OR app.may('user', 'manage')));

DROP POLICY IF EXISTS sessions_revoke ON sessions;
CREATE POLICY sessions_revoke ON sessions FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND revoked_at IS NULL
           AND ((user_id = app.current_user_id() AND app.may('session', 'delete'))
                OR app.may('user', 'manage')))
    WITH CHECK (revoked_at IS NOT NULL);

CREATE OR REPLACE TRIGGER sessions_touch_updated_at BEFORE UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
