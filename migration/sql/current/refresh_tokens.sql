-- refresh_tokens: only the definer functions (app_auth) touch them; request roles have no grant.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
REVOKE ALL ON refresh_tokens FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO app_auth;

DROP POLICY IF EXISTS refresh_tokens_definer ON refresh_tokens;
CREATE POLICY refresh_tokens_definer ON refresh_tokens FOR ALL TO app_auth USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER refresh_tokens_touch_updated_at BEFORE UPDATE ON refresh_tokens
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
