-- email_verifications: one-time tokens that verify a user's address; only the definer
-- functions (app_auth) touch them; request roles have no grant.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE email_verifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_verifications FORCE ROW LEVEL SECURITY;
REVOKE ALL ON email_verifications FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON email_verifications TO app_auth;

DROP POLICY IF EXISTS email_verifications_definer ON email_verifications;
CREATE POLICY email_verifications_definer ON email_verifications FOR ALL TO app_auth USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER email_verifications_touch_updated_at BEFORE UPDATE ON email_verifications
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
