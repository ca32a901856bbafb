-- invite_links: links anyone may sign up with into the company, with the link's role, until it
-- expires, is revoked or is used up. Read by whoever may read invitations, made by whoever may
-- create them (in their own name, unused), revoked by whoever may delete them; used only through
-- app.accept_invite_link, which counts each use atomically.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE invite_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE invite_links FORCE ROW LEVEL SECURITY;
REVOKE ALL ON invite_links FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE ON invite_links TO app_auth;
GRANT SELECT, INSERT ON invite_links TO app_user;
GRANT UPDATE (revoked_at) ON invite_links TO app_user;

DROP POLICY IF EXISTS invite_links_definer ON invite_links;
CREATE POLICY invite_links_definer ON invite_links FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS invite_links_select ON invite_links;
CREATE POLICY invite_links_select ON invite_links FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('invitation', 'read'));

DROP POLICY IF EXISTS invite_links_insert ON invite_links;
CREATE POLICY invite_links_insert ON invite_links FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('invitation', 'create')
                AND created_by = app.current_user_id() AND uses = 0 AND revoked_at IS NULL);

DROP POLICY IF EXISTS invite_links_revoke ON invite_links;
CREATE POLICY invite_links_revoke ON invite_links FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('invitation', 'delete'))
    WITH CHECK (company_id = app.current_company_id() AND revoked_at IS NOT NULL);

CREATE OR REPLACE TRIGGER invite_links_touch_updated_at BEFORE UPDATE ON invite_links
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
