-- password_resets: only the definer functions (app_auth) touch them; request roles have no grant.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_resets FORCE ROW LEVEL SECURITY;
REVOKE ALL ON password_resets FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON password_resets TO app_auth;

DROP POLICY IF EXISTS password_resets_definer ON password_resets;
CREATE POLICY password_resets_definer ON password_resets FOR ALL TO app_auth USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER password_resets_touch_updated_at BEFORE UPDATE ON password_resets
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
